"""The power-cut harness in its short CI mode: a power cut after every random SIGKILL and every named crash
point, in each fault mode, and nothing acknowledged lost."""

from __future__ import annotations

import pytest

from tests.powercut.forgetfs import MODES
from tests.powercut.harness import PowerCutHarness
from tests.powercut.mount import fuse_missing
from tests.soak.killer import CRASH_POINTS, config_from_env


def test_acknowledged_uploads_survive_power_cuts_after_kills_and_crash_points(tmp_path):
    reason = fuse_missing()
    if reason:
        pytest.skip(reason)
    config = config_from_env(tmp_path, random_kills=12, crash_point_rounds=1, workers=3)
    harness = PowerCutHarness(config)
    figures = harness.run()
    log = (tmp_path / "server.log").read_text()[-3000:]
    assert harness.ledger.failures == [], f"seed {config.seed}: {harness.ledger.failures}\n{log}"
    assert "Traceback" not in harness.mount.log(), harness.mount.log()
    cuts = config.random_kills + len(CRASH_POINTS)
    assert harness.mount.cuts == {mode: cuts // len(MODES) for mode in MODES}
    assert figures.crash_point_kills == {point: 1 for point in CRASH_POINTS}
    assert figures.acknowledged >= 20 and figures.files_verified >= figures.acknowledged - figures.deleted
    assert figures.sessions_resumed > 0
    # The whole workload ran: tus uploads, deletes (API and WebDAV), key changes checked by downloads.
    assert figures.tus_started > 0 and figures.deletes_acked > 0 and figures.key_changes_acked > 0
    assert figures.keys_verified > 0
    # The cuts did forget things: unsynced bytes and unsynced names (temp files, renames in flight).
    assert harness.lost["unsynced writes"] > 0 and harness.lost["unsynced directory changes"] > 0
