"""The ``udpim`` subcommands that own a data directory: keygen, hub, hub adduser, daemon.

What it owns: turning options into ``HubConfig`` / ``PeerConfig``, running a service until
Ctrl-C or SIGTERM, the start-up line each service prints, and the hub's account
registration (``hub adduser``), which writes the hub database directly.

Rules it keeps:

* A service prints ONE start-up line on stdout (flushed, so a script or test can read the
  bound address at once): text, or a JSON object with ``"event": "started"``.
* SIGINT and SIGTERM stop a service cleanly (the store is closed, sessions get CLOSE) and
  the command exits 0 without a traceback. A service that fails raises out of the nursery;
  ``udpim.cli`` turns that into one stderr line.
* ``hub adduser`` may run while the hub runs: sqlite serialises the writers. A running hub
  checks a hello it would refuse against the store, and a closed one re-reads its
  accounts when a key it does not know knocks, so the new user gets in at its daemon's
  next attempt; the command says so when it finds a hub holding the directory (its lock,
  udpim.net.datadir).
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

from udpim.cli_options import (
    CommandContext,
    UsageError,
    open_context,
    parse_key_option,
    parse_listen,
    parse_seconds,
    parse_user_name,
    print_json,
)
from udpim.core.config import SessionConfig
from udpim.identity import ensure_private_dir, load_or_create_identity, public_key_text
from udpim.im.ops import BindAccount, LoadAccounts
from udpim.net.control import CONTROL_SOCKET
from udpim.net.datadir import HUB_LOCK, hold_data_dir
from udpim.net.errors import DataDirBusy
from udpim.net.hub import HUB_DATABASE, HubConfig, HubInfo, serve_hub
from udpim.net.peer import PeerConfig, PeerInfo, serve_peer
from udpim.settings import format_address
from udpim.store.sqlite import SqliteStore

__all__ = [
    "DEFAULT_HUB_LISTEN",
    "command_daemon",
    "command_hub",
    "command_hub_adduser",
    "command_keygen",
]

DEFAULT_HUB_LISTEN = "0.0.0.0:7575"
"""Where ``udpim hub`` listens without ``--listen`` (every interface, port 7575)."""
DEFAULT_DAEMON_LISTEN = "0.0.0.0:0"
"""Where ``udpim daemon`` binds without ``--listen`` (any port: it only dials out)."""


def command_keygen(args: argparse.Namespace) -> int:
    """``udpim keygen``: create the identity if absent; print the public key on stdout."""
    context = open_context(args, "user")
    key, created = load_or_create_identity(context.data_dir)
    path = context.data_dir / "identity.key"
    public = public_key_text(key.public)
    if context.json:
        print_json({"public_key": public, "created": created, "path": str(path)})
        return 0
    print(public)
    what = "created" if created else "using the existing"
    print(f"udpim keygen: {what} {path}", file=sys.stderr)
    return 0


def command_hub_adduser(args: argparse.Namespace) -> int:
    """``udpim hub adduser NAME PUBKEY``: let key PUBKEY log in as NAME (closed hubs)."""
    context = open_context(args, "hub")
    user = parse_user_name(args.name)
    key = parse_key_option(args.pubkey, what="PUBKEY")
    ensure_private_dir(context.data_dir)
    added, keys = trio.run(_bind_account, context, user, key)
    running = added and _hub_running(context.data_dir)
    if context.json:
        print_json(
            {
                "user": user,
                "public_key": public_key_text(key),
                "added": added,
                "keys": keys,
                "database": str(context.data_dir / HUB_DATABASE),
                "hub_running": running,
            }
        )
        return 0
    if added:
        print(f"added {user} with key {public_key_text(key)} to {context.data_dir / HUB_DATABASE}")
        if running:
            print("the hub running on this directory lets the key in at its next attempt")
    else:
        print(f"{user} already logs in with key {public_key_text(key)}; nothing changed")
    return 0


def _hub_running(data_dir: Path) -> bool:
    """Whether a hub holds ``data_dir`` now (it picks up a new account by itself: see the
    module docstring)."""
    try:
        with hold_data_dir(data_dir, HUB_LOCK, "hub"):
            return False
    except DataDirBusy:
        return True


async def _bind_account(context: CommandContext, user: str, key: bytes) -> tuple[bool, int]:
    """Bind ``key`` to ``user``; returns (whether it was new, how many keys ``user`` has)."""
    store = await SqliteStore.open(context.data_dir / HUB_DATABASE, "hub")
    try:
        accounts = await store.submit(LoadAccounts()).wait()
        assert isinstance(accounts, dict)
        keys = list(accounts.get(user, []))
        if key in keys:
            return False, len(keys)
        await store.submit(BindAccount(user, key)).wait()
        return True, len(keys) + 1
    finally:
        await store.aclose()


def command_hub(args: argparse.Namespace) -> int:
    """``udpim hub [--listen HOST:PORT] [--closed]``: run a hub until Ctrl-C."""
    context = open_context(args, "hub")
    listen = parse_listen(
        context.text_setting(args, "listen") or DEFAULT_HUB_LISTEN, what="--listen address"
    )
    closed = bool(context.setting(args, "closed"))
    config = HubConfig(data_dir=context.data_dir, listen=listen, closed=closed)

    def announce(info: HubInfo) -> None:
        address, public = format_address(info.address), public_key_text(info.public_key)
        if context.json:
            print_json(
                {
                    "event": "started",
                    "address": address,
                    "public_key": public,
                    "closed": closed,
                    "data": str(context.data_dir),
                }
            )
        else:
            mode = "closed (registered users only)" if closed else "open (trust on first use)"
            print(f"udpim hub: listening on {address}, public key {public}, {mode}", flush=True)

    trio.run(_serve_until_signalled, serve_hub, config, announce)
    _announce_stop(context, "hub")
    return 0


def command_daemon(args: argparse.Namespace) -> int:
    """``udpim daemon --user NAME --hub HOST:PORT [--hub-key KEY] [--listen HOST:PORT]
    [--heartbeat S] [--hub-timeout S] [--no-learn]``."""
    context = open_context(args, "user")
    user_text = context.text_setting(args, "user")
    hub_text = context.text_setting(args, "hub")
    if user_text is None:
        raise UsageError("the daemon needs --user NAME (or user = ... in udpim.toml)")
    if hub_text is None:
        raise UsageError("the daemon needs --hub HOST:PORT (or hub = ... in udpim.toml)")
    key_text = context.text_setting(args, "hub_key")
    config = PeerConfig(
        data_dir=context.data_dir,
        user=parse_user_name(user_text, what="--user"),
        hub=parse_listen(hub_text, what="--hub address"),
        hub_key=None if key_text is None else parse_key_option(key_text, what="--hub-key"),
        listen=parse_listen(
            context.text_setting(args, "listen") or DEFAULT_DAEMON_LISTEN, what="--listen address"
        ),
        session=_session_config(context, args),
        # --no-learn: keep the --heartbeat interval instead of learning the NAT's timeout.
        learn_keepalive=not context.setting(args, "no_learn"),
    )

    def announce(info: PeerInfo) -> None:
        facts = {
            "event": "started",
            "user": config.user,
            "device": info.device,
            "address": format_address(info.address),
            "public_key": public_key_text(info.public_key),
            "hub": format_address(config.hub),
            "control_socket": str(context.data_dir / CONTROL_SOCKET),
        }
        if context.json:
            print_json(facts)
            return
        print(
            f"udpim daemon: {config.user} (device {info.device}) on {facts['address']}, "
            f"hub {facts['hub']}, public key {facts['public_key']}",
            flush=True,
        )

    trio.run(_serve_until_signalled, serve_peer, config, announce)
    _announce_stop(context, "daemon")
    return 0


def _session_config(context: CommandContext, args: argparse.Namespace) -> SessionConfig:
    """The session tunables ``--heartbeat`` and ``--hub-timeout`` set (flag, then
    udpim.toml, then the defaults)."""
    defaults = SessionConfig()
    heartbeat = context.text_setting(args, "heartbeat")
    hub_timeout = context.text_setting(args, "hub_timeout")
    heartbeat_s = parse_seconds(
        heartbeat, flag="--heartbeat", default=defaults.heartbeat_interval_s
    )
    silent_s = parse_seconds(
        hub_timeout, flag="--hub-timeout", default=defaults.dead_peer_timeout_s
    )
    if silent_s < 2 * heartbeat_s:
        raise UsageError(
            f"--hub-timeout ({silent_s:g}s) must be at least twice --heartbeat ({heartbeat_s:g}s)"
        )
    return dataclasses.replace(
        defaults, heartbeat_interval_s=heartbeat_s, dead_peer_timeout_s=silent_s
    )


async def _serve_until_signalled(
    serve: Callable[..., Awaitable[None]], config: object, announce: Callable[[Any], None]
) -> None:
    """Start ``serve(config)``, announce what it reports, run until SIGINT/SIGTERM."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def run_service(*, task_status: trio.TaskStatus[Any]) -> None:
                await serve(config, task_status=task_status)
                nursery.cancel_scope.cancel()  # it returned on its own: nothing to wait for

            info = await nursery.start(run_service)
            announce(info)
            async for _ in signals:
                break
            nursery.cancel_scope.cancel()


def _announce_stop(context: CommandContext, what: str) -> None:
    if context.json:
        print_json({"event": "stopped"})
    else:
        print(f"udpim {what}: stopped", file=sys.stderr)
