"""udpim's sans-IO core: wire format, crypto and the reliable session state machine.

Imports nothing from trio, socket, time, logging or os.urandom: time is passed in as
``now``, randomness as an ``rng`` callable, and output is pulled by the caller.
"""
