"""`make soak`: the long kill harness (`python -m tests.soak`) on each stack in turn; LOCKR_SOAK_KILLS and
LOCKR_SOAK_SEED tune it, LOCKR_SOAK_STACKS picks the stacks (default: sqlite+folder,postgresql+s3)."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from tests.soak.killer import KillHarness, config_from_env, run_to_exit_status

STACKS = ("sqlite+folder", "postgresql+s3")


def cluster_missing() -> str:
    """Why PostgreSQL + S3 cannot run here ("" when it can)."""
    from tests.postgres import postgres_bin_dir

    if postgres_bin_dir() is None:
        return "PostgreSQL is not installed (Debian: apt-get install postgresql)"
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("boto3") is None:
        return "moto[server] and boto3 are not installed (the test extra)"
    return ""


def cluster_settings(resources: ExitStack) -> dict[str, str]:
    """A private PostgreSQL cluster and a moto S3 server, both started here and stopped with `resources`:
    a fresh database's URL and a new bucket as the region `local`."""
    from tests.objectstore import S3Server
    from tests.postgres import PostgresCluster, postgres_bin_dir

    bin_dir = postgres_bin_dir()
    assert bin_dir is not None
    cluster = PostgresCluster(bin_dir).start()
    resources.callback(cluster.stop)
    s3 = S3Server().start()
    resources.callback(s3.stop)
    return {"database_url": cluster.url(cluster.create_database()), "regions": f"local={s3.region_url()}"}


def soak(stack: str, work: Path) -> int:
    config = config_from_env(work, random_kills=200, workers=4, run_seconds=(0.05, 1.5), keep_files=200)
    # Every named crash point is armed once per 20 random kills (at least once).
    config = dataclasses.replace(config, crash_point_rounds=max(1, config.random_kills // 20))
    with ExitStack() as resources:
        if stack == "postgresql+s3":
            config = dataclasses.replace(config, **cluster_settings(resources))
        harness = KillHarness(config, out=lambda line: print(line, flush=True))
        return run_to_exit_status(harness, work)


def main() -> int:
    stacks = [s.strip() for s in os.environ.get("LOCKR_SOAK_STACKS", ",".join(STACKS)).split(",") if s.strip()]
    unknown = sorted(set(stacks) - set(STACKS))
    if unknown:
        print(f"LOCKR_SOAK_STACKS: unknown stack {', '.join(unknown)}; known: {', '.join(STACKS)}", file=sys.stderr)
        return 2
    status = 0
    for stack in stacks:
        missing = cluster_missing() if stack == "postgresql+s3" else ""
        if missing:
            print(f"kill harness on {stack} skipped: {missing}", file=sys.stderr, flush=True)
            status = status or (1 if os.environ.get("LOCKR_REQUIRE_ALL") == "1" else 0)
            continue
        with tempfile.TemporaryDirectory(prefix=f"lockr-soak-{stack.split('+')[0]}-") as work:
            status = soak(stack, Path(work)) or status
    return status


if __name__ == "__main__":
    sys.exit(main())
