"""The kill harness in its short CI mode: random SIGKILLs and every named crash point, nothing lost (uploads,
tus, WebDAV replacements, deletes and key changes), on SQLite + a folder and on PostgreSQL + an S3 bucket."""

from __future__ import annotations

import pytest

from tests.soak.killer import CRASH_POINTS, KillHarness, config_from_env

pytestmark = [pytest.mark.both_databases, pytest.mark.blob_backends("folder", "s3")]


def test_acknowledged_uploads_survive_random_kills_and_every_crash_point(tmp_path, database, blob_regions):
    config = config_from_env(tmp_path, random_kills=8, crash_point_rounds=1, workers=3,
                             database_url=database.new_url(), regions=blob_regions.get("regions", ""))
    harness = KillHarness(config)
    figures = harness.run()
    log = (tmp_path / "server.log").read_text()[-3000:]
    assert harness.ledger.failures == [], f"{config.stack} seed {config.seed}: {harness.ledger.failures}\n{log}"
    assert figures.random_kills == config.random_kills
    assert figures.crash_point_kills == {point: 1 for point in CRASH_POINTS}
    assert figures.acknowledged >= 20 and figures.files_verified >= figures.acknowledged - figures.deleted
    assert figures.chunks_acknowledged > 0 and figures.sessions_resumed > 0
    # The whole workload ran: tus uploads, deletes (API and WebDAV), key changes checked by downloads.
    assert figures.tus_started > 0 and figures.deletes_acked > 0 and figures.key_changes_acked > 0
    assert figures.keys_verified > 0
