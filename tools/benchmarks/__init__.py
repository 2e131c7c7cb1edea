"""udpim's benchmark suite, run as ``tools/bench COMMAND`` (``python -m tools.benchmarks``).

Benchmarks are measurements, never tests: each prints its figures beside a baseline
measured in the same run and beside the targets of TARGETS.md. Everything runs on
loopback (127.0.0.1), through netsim's real UDP impairment proxy used as a library.

Subcommands (``__main__.SUBCOMMANDS``): ``latency`` (small messages under loss, udpim vs
raw UDP, with a tail profile from the decrypted capture), ``bulk`` (one 1 MiB message
under loss), ``oneway`` (the maximum one-way message rate, udpim vs raw Trio UDP, the
receiver in another process), ``relay``, ``simspeed`` (netsim's speed on a hub and ten
daemons, beside a trivial ping scenario), ``core`` (CPU per datagram in the sans-IO
core, beside the raw AEAD) and ``all``. docs/BENCHMARKS.md has the commands, the figures and their
discussion; ``command.py`` says how to add a subcommand.

Modules: ``link_grid`` (the emulated links), ``impaired_link`` (the proxy, wire bytes),
``capture`` (recording sockets and rng), ``udpim_pair`` (two endpoints through the
proxy), ``workload`` (the paced message stream), ``raw_udp`` (the baseline),
``latency_run`` / ``latency_report`` / ``latency`` (the latency benchmark),
``packet_log`` / ``tail_profile`` (decrypting and explaining the tail), ``cdf_plot``,
``bulk``, ``oneway`` / ``oneway_receiver``, ``distribution`` (percentiles, spreads),
``targets`` (TARGETS.md's figures), ``session_options`` (``--session KEY=VALUE``),
``machine`` (the machine description), ``simspeed``, ``core_cases`` / ``core``.
"""
