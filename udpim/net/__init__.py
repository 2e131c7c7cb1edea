"""Trio shells around the sans-IO core and IM layer: the only udpim code that awaits.

Services: ``hub.serve_hub`` and ``peer.serve_peer`` (with ``peerhandle.PeerHandle``).
Their parts: ``udp`` (the endpoint driver: one socket, a receive loop and a timer loop),
``actions`` (executing a core's actions, the store completion task, closing sessions),
``reconnect`` (the daemon's dialling, backoff and hub key), ``keyquery`` (learning an
open hub's key on first use), ``natprobe`` (NAT-probe datagrams, the hub's echo
scheduler), ``natlearning`` (the daemon's keepalive: NAT-timeout learning, path changes),
``reachability`` (the hub's reachability report, the daemon's history), ``control``
(the Unix control socket, server and client), ``peercontrol`` (the daemon's control
commands), ``datadir`` (one service per data directory), ``listen`` (binding),
``droplog`` (rate-limited drop logs), ``wallclock``, ``errors`` (one-line errors).
"""
