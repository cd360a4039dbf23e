"""`lockr-local tray [FOLDER]`: the desktop app; also what `lockr-local` does with no arguments."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from typing import Any, Callable


def add_commands(commands: argparse._SubParsersAction, client_options: Callable[[argparse.ArgumentParser], None]) -> None:
    tray = commands.add_parser(
        "tray", help="the desktop app: a tray icon that keeps a folder in sync",
        description="Start the desktop app: a tray icon showing whether FOLDER is in sync with the server, "
                    "with a menu to pause, sync now, open the folder or the web page and copy share links. "
                    "With nothing configured it opens a setup page in the browser first.")
    tray.add_argument("folder", metavar="FOLDER", nargs="?", help="the folder to keep in sync (saved for next time)")
    tray.add_argument("--endpoint", metavar="URL", help="the lockr server (saved for next time)")
    tray.add_argument("--no-browser", action="store_true",
                      help="print the setup page's address instead of opening a browser")
    tray.add_argument("-v", "--verbose", action="store_true", help="log state changes and actions")
    tray.add_argument("--hold-clipboard", metavar="TEXT", help=argparse.SUPPRESS)
    tray.set_defaults(handler=tray_command)


def tray_command(args: argparse.Namespace) -> int:
    if args.hold_clipboard is not None:
        from lockr_local.tray.clipboard import hold_clipboard

        return hold_clipboard(args.hold_clipboard)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr)
    from lockr_local.credentials import normalize_endpoint
    from lockr_local.tray.app import TrayApp
    from lockr_local.tray.config import TrayConfig

    config = TrayConfig.load()
    endpoint = args.endpoint or os.environ.get("LOCKR_ENDPOINT")
    if endpoint or args.folder:
        if endpoint:
            config.endpoint = normalize_endpoint(endpoint)
        if args.folder:
            config.folder = os.path.abspath(os.path.expanduser(args.folder))
            os.makedirs(config.folder, exist_ok=True)
        config.save()
    app = TrayApp(config, open_browser=not args.no_browser)
    _quit_on_signals(app)
    return app.run()


def _quit_on_signals(app: Any) -> None:
    """SIGINT/SIGTERM quit the app cleanly.

    On POSIX the signals are blocked before any thread starts (threads inherit the mask) and one thread
    waits for them with sigwait: a Python handler would run on the main thread, and interrupting
    pystray's X11 loop there left it blocked after `Icon.stop()` (seen with the xorg backend).
    """
    signals = {signal.SIGINT, signal.SIGTERM}
    if hasattr(signal, "SIGUSR1"):
        import faulthandler

        faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1 PID` prints every thread's stack
    if hasattr(signal, "pthread_sigmask") and hasattr(signal, "sigwait"):
        signal.pthread_sigmask(signal.SIG_BLOCK, signals)

        def wait() -> None:
            signal.sigwait(signals)
            app.quit()

        threading.Thread(target=wait, name="lockr-tray-signals", daemon=True).start()
        return

    def on_signal(signum: int, frame: Any) -> None:
        threading.Thread(target=app.quit, name="lockr-tray-signal", daemon=True).start()

    for signum in signals:
        signal.signal(signum, on_signal)


def default_command(args: argparse.Namespace) -> int:
    """`lockr-local` with no arguments: the desktop app."""
    return tray_command(argparse.Namespace(folder=None, endpoint=None, no_browser=False, verbose=False,
                                           hold_clipboard=None))
