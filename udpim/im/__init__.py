"""udpim's sans-IO IM layer: frames, store operations and the hub and peer state machines.

Imports nothing from trio, sqlite3, os, time or random: times come in as unix ms ints,
randomness as an injected ``rng`` callable, and every effect goes out as an action
(``udpim.im.actions``) that the shell executes in order. docs/IM.md is the specification.

Modules: ``protocol`` (the codec), ``frames``, ``formats`` (names, ids, limits), ``ops``
(store operations and their results), ``actions``, ``events`` (notices for the shell),
``hubcore`` (``HubCore``), ``peercore`` (``PeerCore``), ``natlearn`` (``NatLearner``,
learning the NAT's mapping timeout; its ``now`` is monotonic float seconds, like the
session layer's), ``liveness`` (timeouts from a heartbeat interval), and their parts:
``accounts``, ``hubsession``, ``hubrouting``, ``mailbox``, ``presence``, ``outbox``,
``inboxacks``, ``contacts``, ``peerrecords``, ``pending``.
"""

from udpim.im.actions import Action, Close, Notify, Send, Store
from udpim.im.hubcore import HubCore
from udpim.im.hubsession import HubStatistics
from udpim.im.peercore import PeerCore
from udpim.im.peerrecords import ConnectionPhase
from udpim.im.protocol import BadFrame, UnknownFrame, decode_frame_untrusted, encode_frame

__all__ = [
    "Action",
    "BadFrame",
    "Close",
    "ConnectionPhase",
    "HubCore",
    "HubStatistics",
    "Notify",
    "PeerCore",
    "Send",
    "Store",
    "UnknownFrame",
    "decode_frame_untrusted",
    "encode_frame",
]
