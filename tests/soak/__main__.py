"""`make soak`: the long kill harness (`python -m tests.soak`); LOCKR_SOAK_KILLS and LOCKR_SOAK_SEED tune it."""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from pathlib import Path

from tests.soak.killer import KillHarness, config_from_env, run_to_exit_status


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="lockr-soak-") as work:
        config = config_from_env(Path(work), random_kills=200, workers=4, run_seconds=(0.05, 1.5), keep_files=200)
        # Every named crash point is armed once per 20 random kills (at least once).
        config = dataclasses.replace(config, crash_point_rounds=max(1, config.random_kills // 20))
        harness = KillHarness(config, out=lambda line: print(line, flush=True))
        return run_to_exit_status(harness, Path(work))


if __name__ == "__main__":
    sys.exit(main())
