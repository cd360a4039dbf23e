"""`make soak`'s power-cut run (`python -m tests.powercut`): LOCKR_POWERCUT_CUTS power cuts (default 1,000,
spread over the fault modes), LOCKR_SOAK_SEED replays one."""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
from pathlib import Path

from tests.powercut.harness import PowerCutHarness
from tests.powercut.mount import fuse_missing
from tests.soak.killer import CRASH_POINTS, config_from_env, run_to_exit_status


def main() -> int:
    reason = fuse_missing()
    if reason:
        print(f"power-cut soak cannot run: {reason}", file=sys.stderr)
        return 1
    cuts = int(os.environ.get("LOCKR_POWERCUT_CUTS", "1000"))
    with tempfile.TemporaryDirectory(prefix="lockr-powercut-") as work:
        # One cut in 20 follows a named crash point, the rest a random SIGKILL.
        rounds = max(1, cuts // (20 * len(CRASH_POINTS)))
        config = config_from_env(Path(work), random_kills=cuts - rounds * len(CRASH_POINTS), workers=4,
                                 run_seconds=(0.05, 1.5), keep_files=200)
        config = dataclasses.replace(config, crash_point_rounds=rounds)
        harness = PowerCutHarness(config, out=lambda line: print(line, flush=True))
        return run_to_exit_status(harness, Path(work))


if __name__ == "__main__":
    sys.exit(main())
