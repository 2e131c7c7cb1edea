"""Which hub key a daemon dials: trust on first use, the pin, and a changed hub key.

* Without ``--hub-key`` a daemon asks the hub for its key once (``udpim.net.keyquery``),
  pins it and warns; later runs dial with the pin and say nothing.
* If the hub's key changes, the handshake fails; the daemon then learns the hub's new
  key and stops with ``HubKeyMismatch`` rather than retrying forever.
* An explicit ``--hub-key`` wins over the pin (replaced, with a warning).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import trio
import trio.testing

from tests.net.world import open_world, wait_until
from udpim.identity import IDENTITY_FILE
from udpim.net.errors import HubKeyMismatch


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


@pytest.mark.parametrize("seed", [21])
async def test_trust_on_first_use_then_pin_then_mismatch(
    seed: int,
    autojump_clock: trio.testing.MockClock,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="udpim.net")
    async with open_world(tmp_path, seed) as world:
        hub = await world.start_hub()
        old_key = hub.public_key
        alice = world.add_daemon("alice", "alice")  # no hub key
        await world.start_daemon(alice)
        await world.wait_welcomed(alice)
        assert (await alice.handle.status())["hub_key"] == old_key.hex()
        assert warnings(caplog) == [
            f"trusting the hub key {old_key.hex()} of 127.1.0.1:7000 on first use "
            "(pass --hub-key to verify it)"
        ]

        await world.stop(alice)
        caplog.clear()
        await world.restart(alice)
        await world.wait_welcomed(alice)
        assert alice.welcomes() == 2
        assert warnings(caplog) == []  # the pinned key is used silently

        await world.stop(hub)
        (hub.data_dir / IDENTITY_FILE).unlink()  # the hub gets a new identity
        await world.restart(hub)
        assert hub.public_key != old_key
        error = await world.wait_stopped(alice)
        assert isinstance(error, HubKeyMismatch)
        assert str(error) == (
            f"the hub at 127.1.0.1:7000 presents key {hub.public_key.hex()}, not the pinned "
            f"key {old_key.hex()}: refusing to connect (if the hub's key really changed, "
            f"start the daemon with --hub-key {hub.public_key.hex()})"
        )
        assert alice.welcomes() == 2

        caplog.clear()
        alice.hub_key = hub.public_key  # the user checked and passes --hub-key
        await world.restart(alice)
        await world.wait_welcomed(alice)
        assert (await alice.handle.status())["hub_key"] == hub.public_key.hex()
        assert warnings(caplog) == [
            f"replacing the pinned hub key {old_key.hex()} with the given key "
            f"{hub.public_key.hex()}"
        ]


@pytest.mark.parametrize("seed", [22])
async def test_first_use_waits_for_a_hub_that_is_not_there_yet(
    seed: int, autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with open_world(tmp_path, seed) as world:
        hub = await world.start_hub()
        await world.stop(hub)
        alice = world.add_daemon("alice", "alice")
        await world.start_daemon(alice)
        change = await alice.handle.send("alice", "queued while nobody answers")
        assert change.state.value == "queued"  # sending works before the hub is known
        await trio.sleep(300)
        status = await alice.handle.status()
        assert status["hub_key"] is None
        assert status["connection"] == "disconnected"
        await world.restart(hub)
        await world.wait_welcomed(alice, timeout_s=120)  # key queries back off to <= 60 s
        await wait_until(lambda: alice.arrived() == 1, timeout_s=60)
        assert (await alice.handle.inbox())[0].body == "queued while nobody answers"
