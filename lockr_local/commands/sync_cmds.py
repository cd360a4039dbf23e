"""`lockr-local sync FOLDER`: mirror a folder to a lockr endpoint (continuously, once, or show the status)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from lockr_local.cli import ExitStatus

if TYPE_CHECKING:  # the sync modules load only when `sync` runs
    from lockr_local.sync.agent import SyncAgent


def add_commands(commands: argparse._SubParsersAction, client_options: Callable[[argparse.ArgumentParser], None]) -> None:
    sync = commands.add_parser(
        "sync", help="mirror a folder to a lockr endpoint",
        description="Mirror FOLDER to a lockr endpoint: new and changed files are uploaded, local deletes and "
                    "renames propagated; remote files this agent did not create are never touched.")
    sync.add_argument("folder", metavar="FOLDER", help="the folder to mirror")
    client_options(sync)
    sync.add_argument("--region", help="the region new uploads go to (default: the account's)")
    sync.add_argument("--remote-folder", metavar="NAME",
                      help="the remote folder FOLDER's files go under, such as laptop or backup/photos ('' or / "
                           "for the top level; default: the folder's own name the first time, then what it was); "
                           "one that overlaps another synced folder's is refused")
    sync.add_argument("--once", action="store_true",
                      help="reconcile once and exit: 0 when the remote matches, 3 with a summary otherwise")
    sync.add_argument("--status", action="store_true", help="show the status of the agent syncing FOLDER and exit")
    sync.add_argument("--allow-deletions", action="store_true",
                      help="confirm remote deletions the deletion guard paused (for this run)")
    sync.add_argument("--concurrency", type=int, metavar="N", help="parallel uploads (setting sync_concurrency)")
    sync.add_argument("--bwlimit", metavar="RATE", help="upload limit in bytes/s, e.g. 2MB (sync_bandwidth_limit)")
    sync.add_argument("--config", metavar="FILE", help="a TOML file of settings")
    sync.add_argument("-v", "--verbose", action="store_true", help="log every upload and deletion")
    sync.add_argument("--json", action="store_true",
                      help="with --status or --once: print the outcome as one JSON object")
    sync.set_defaults(handler=sync_command)


def _settings(args: argparse.Namespace) -> Any:
    from lockr_local.config import load_settings

    return load_settings({"sync_concurrency": args.concurrency, "sync_bandwidth_limit": args.bwlimit},
                         config_file=args.config)


def _credentials(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """--endpoint, then LOCKR_ENDPOINT, then the saved endpoint; --token, then LOCKR_TOKEN, then the keyring."""
    from lockr_local.credentials import resolve_endpoint, resolve_token

    endpoint = resolve_endpoint(args.endpoint)
    return endpoint, (resolve_token(args.token, endpoint) if endpoint else None)


def sync_command(args: argparse.Namespace) -> int:
    settings = _settings(args)
    folder = Path(os.path.abspath(args.folder))
    if args.json and not (args.status or args.once):
        print("lockr-local sync: --json goes with --status or --once (a running agent prints no data)",
              file=sys.stderr)
        return ExitStatus.USAGE
    if args.status:
        from lockr_local.sync.options import state_dir

        return _show_status(state_dir(settings), folder, args.json)
    endpoint, token = _credentials(args)
    if not endpoint:
        print("lockr-local sync: no endpoint; pass --endpoint URL or set LOCKR_ENDPOINT", file=sys.stderr)
        return ExitStatus.USAGE
    logging.basicConfig(level=logging.INFO if args.verbose or not args.once else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    from lockr_local.errors import InvalidName
    from lockr_local.sync.agent import SyncAgent
    from lockr_local.sync.folders import FolderOverlap
    from lockr_local.sync.remote import RemoteUnavailable
    from lockr_local.sync.status import SyncState

    try:
        agent = SyncAgent.from_settings(folder, endpoint, token, settings, region=args.region,
                                        allow_deletions=args.allow_deletions, once=args.once,
                                        remote_folder=args.remote_folder)
    except (FolderOverlap, InvalidName) as exc:
        print(f"lockr-local sync: {exc.message}", file=sys.stderr)
        return ExitStatus.USAGE
    where = f"{endpoint} (remote folder {agent.remote_folder or '(top level)'})"
    if args.once:
        try:
            plan = agent.reconcile()
        except RemoteUnavailable as exc:
            print(f"lockr-local sync: {exc}", file=sys.stderr)
            return ExitStatus.ERROR
        finally:
            agent.close()
        status = agent.status()
        in_sync = plan.in_sync and not plan.skips and status.state is not SyncState.ERROR
        if args.json:
            print(json.dumps({"folder": str(folder), "endpoint": endpoint, "remoteFolder": agent.remote_folder,
                              "inSync": in_sync,
                              "summary": plan.summary(), "lastError": status.last_error,
                              "skipped": [{"path": skip.path, "reason": skip.reason} for skip in plan.skips]},
                             indent=1), flush=True)
        if in_sync:
            if not args.json:
                print(f"{folder}: in sync with {where}")
            return ExitStatus.OK
        print(f"{folder}: not in sync: {plan.summary()}", file=sys.stderr)
        for skip in plan.skips:
            print(f"  skipped {skip.path}: {skip.reason}", file=sys.stderr)
        if status.last_error:
            print(f"  last error: {status.last_error}", file=sys.stderr)
        return ExitStatus.NOT_IN_SYNC
    return _run_continuously(agent, folder, where)


def _run_continuously(agent: "SyncAgent", folder: Path, endpoint: str) -> int:
    stopping = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"syncing {folder} to {endpoint} (Ctrl-C to stop)", flush=True)
    agent.start()
    try:
        last = None
        while not stopping.wait(1.0):
            state = agent.status().state
            if state != last:
                logging.getLogger("lockr.sync").info("state: %s", state)
                last = state
    finally:
        agent.stop()
    return ExitStatus.OK


def _show_status(state_dir: Path, folder: Path, as_json: bool = False) -> int:
    from lockr_local.sync.agent import status_path
    from lockr_local.sync.status import describe, read_status

    status = read_status(status_path(state_dir, folder))
    if status is None:
        print(f"{folder}: no sync agent has run for this folder", file=sys.stderr)
        return ExitStatus.ERROR
    running = _alive(status.pid)
    if as_json:
        print(json.dumps({**status.to_json(), "agentRunning": running}, indent=1), flush=True)
        return ExitStatus.OK
    print(describe(status))
    print("agent: running" if running else "agent: not running")
    return ExitStatus.OK


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
