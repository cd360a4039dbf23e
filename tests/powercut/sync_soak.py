"""`make soak`'s power-cut run of the sync agent (`python -m tests.powercut.sync_soak`): LOCKR_POWERCUT_SYNC_ROUNDS
rounds (default 200), each a SIGKILL of `lockr-local sync` mid-sync and a power cut; LOCKR_SOAK_SEED replays one."""

from __future__ import annotations

import os
import random
import sys
import tempfile
from pathlib import Path

from tests.powercut.mount import fuse_missing
from tests.powercut.sync_harness import SyncCutConfig, SyncPowerCutHarness


def main() -> int:
    reason = fuse_missing()
    if reason:
        print(f"sync power-cut soak cannot run: {reason}", file=sys.stderr)
        return 1
    seed_text = os.environ.get("LOCKR_SOAK_SEED", "")
    seed = int(seed_text) if seed_text else random.SystemRandom().randrange(2**32)
    rounds = int(os.environ.get("LOCKR_POWERCUT_SYNC_ROUNDS", "200"))
    with tempfile.TemporaryDirectory(prefix="lockr-powercut-sync-") as work:
        harness = SyncPowerCutHarness(SyncCutConfig(Path(work), seed, rounds=rounds, max_files=80),
                                      out=lambda line: print(line, flush=True))
        harness.run()
        if harness.failures:
            print("the agent's log ends with:\n" + (Path(work) / "agent.log").read_text()[-4000:], file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
