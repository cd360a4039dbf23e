"""`TrayApp`: the pystray icon on the main thread, the sync agent in worker threads, and the glue.

Threads: the main thread runs pystray's loop (`Icon.run`), as macOS requires; the agent owns its own
threads (watcher, sync loop, uploads); "lockr-tray-ui" polls the agent's thread-safe
`status()` snapshot twice a second and, only when the `TrayView` changed, sets the icon image,
title and menu. On the xorg, gtk and appindicator backends pystray marshals those setters onto its
own loop, so calling them from the status thread is safe (on xorg with a nudge: see `_call_xorg`).
On macOS AppKit objects must only be touched on the main thread, so there every update goes through
`PyObjCTools.AppHelper.callAfter`, which queues it on the main run loop (see `_on_ui_thread`). Menu
callbacks run on pystray's thread; anything that may block (browser, clipboard, agent start/stop) is
handed to a short worker thread.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import webbrowser
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from lockr_local.errors import LockrError
from lockr_local.sync.status import SyncState, SyncStatus
from lockr_local.tray.config import TrayConfig
from lockr_local.tray.icons import draw_icon
from lockr_local.tray.model import Action, IconState, MenuEntry, TrayInput, TrayModel, TrayView
from lockr_local.tray.setup import ControlServer, SetupDone, SetupForm, complete_setup

if TYPE_CHECKING:  # the agent (watchdog, requests) loads when syncing starts
    from lockr_local.sync.agent import SyncAgent

log = logging.getLogger("lockr.tray")
POLL_SECONDS = 0.5
STOP_GRACE_SECONDS = 5.0
XORG_NUDGE_SECONDS = 0.5
XORG_CALL_TIMEOUT = 10.0
REDOCK_AFTER_SECONDS = 3.0  # longer than a tray host takes to re-embed an icon after an image change


def load_pystray() -> tuple[Any, str]:
    """The pystray module and its backend name; raises RuntimeError with the reason when there is none
    (no display: python-xlib raises its own errors at import time, not ImportError)."""
    if (sys.platform.startswith("linux") and not os.environ.get("PYSTRAY_BACKEND")
            and not os.environ.get("DBUS_SESSION_BUS_ADDRESS") and not shutil.which("dbus-launch")):
        # pystray's first choices (appindicator, gtk) need a session D-Bus (gtk for notifications) and
        # fail in Icon.run without one; plain X11 works everywhere an X server does.
        os.environ["PYSTRAY_BACKEND"] = "xorg"
    _name_gtk_program()
    try:
        import pystray
    except Exception as exc:  # Xlib.error.DisplayNameError and friends when no X server is reachable
        raise RuntimeError(f"no system tray available ({type(exc).__name__}: {exc})") from exc
    return pystray, pystray.Icon.__module__.rsplit("._", 1)[-1]


def _name_gtk_program() -> None:
    """GTK names windows (and their WM_CLASS) after the program, fixed when GTK starts: without this
    they are "__main__.py" under `python -m lockr_local`. A no-op where PyGObject is not installed."""
    if not sys.platform.startswith("linux"):
        return
    try:
        from gi.repository import GLib
    except (ImportError, ValueError):
        return
    GLib.set_prgname("lockr-local")
    GLib.set_application_name("lockr-local")


def open_path(path: str) -> None:
    """Opens a folder in the platform's file manager."""
    if sys.platform == "win32":
        os.startfile(path)  # type: ignore[attr-defined]
    elif sys.platform == "darwin":
        subprocess.Popen(["open", path])
    else:
        subprocess.Popen(["xdg-open", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class TrayApp:
    """Owns the agent's lifecycle, the tray icon and the local page; every action goes through `perform`."""

    def __init__(self, config: TrayConfig, *, open_browser: bool = True,
                 agent_factory: Callable[[TrayConfig], "SyncAgent"] | None = None) -> None:
        self.config = config
        self.open_browser = open_browser
        self.agent_factory = agent_factory or make_agent
        self.model = TrayModel()
        self.icon: Any = None
        self.backend = "none"
        self.has_menu = True
        self.has_notification = False
        self._agent: SyncAgent | None = None
        self._agent_problem: str | None = None
        self._user_paused = False
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._shutdown_lock = threading.Lock()
        self._view: TrayView | None = None
        self._undocked_since: float | None = None
        self._dock_checked_at = 0.0
        self.server = ControlServer(self)

    # ----- the Controller protocol used by the local page ----------------------------------------
    def current(self) -> tuple[TrayConfig, SyncStatus, TrayView]:
        status = self.status()
        return self.config, status, TrayModel().view(status, self.facts())

    def keyring_usable(self) -> bool:
        from lockr_local.credentials import keyring_usable

        try:
            return keyring_usable()
        except Exception:  # a broken keyring backend must not take the page down
            return False

    def apply_setup(self, form: SetupForm) -> SetupDone:
        done = complete_setup(form, self.config)
        with self._lock:
            self.config = done.config
        self.restart_agent()
        return done

    def perform(self, action: Action, argument: str = "") -> None:
        log.info("action: %s %s", action.value, argument)
        if action is Action.SYNC_NOW:
            with self._lock:
                if self._agent is not None:
                    self._agent.rescan()
        elif action is Action.TOGGLE_PAUSE:
            with self._lock:
                self._user_paused = not self._user_paused
                if self._agent is not None:
                    (self._agent.pause if self._user_paused else self._agent.resume)()
        elif action is Action.OPEN_FOLDER:
            if self.config.folder:
                _with_signals_unblocked(lambda: open_path(self.config.folder))
        elif action is Action.OPEN_WEB:
            _with_signals_unblocked(lambda: webbrowser.open(self.web_url()))
        elif action is Action.COPY_LINK:
            _with_signals_unblocked(lambda: self._copy(argument))
        elif action is Action.SETTINGS:
            _with_signals_unblocked(lambda: self.open_page("/settings"))
        elif action is Action.QUIT:
            self.quit()
        self._wake.set()

    # ----- state ---------------------------------------------------------------------------------
    def facts(self) -> TrayInput:
        return TrayInput(configured=self.config.configured, user_paused=self._user_paused,
                         has_menu=self.has_menu, web_url=self.web_url())

    def web_url(self) -> str:
        return f"{self.config.endpoint.rstrip('/')}/files" if self.config.endpoint else ""

    def status(self) -> SyncStatus:
        with self._lock:
            agent, problem = self._agent, self._agent_problem
        if agent is not None:
            return agent.status()
        if not self.config.configured:
            return SyncStatus(state=SyncState.NOT_CONFIGURED)
        return SyncStatus(state=SyncState.ERROR, folder=self.config.folder, endpoint=self.config.endpoint,
                          last_error=problem or "the sync agent is not running")

    def start_agent(self) -> None:
        if not self.config.configured:
            return
        try:
            agent = self.agent_factory(self.config)
        except LockrError as exc:
            with self._lock:
                self._agent_problem = exc.message
            log.error("cannot start syncing: %s", exc.message)
            return
        if self._user_paused:
            agent.pause()
        agent.start()
        with self._lock:
            self._agent, self._agent_problem = agent, None
        log.info("syncing %s to %s", self.config.folder, self.config.endpoint)

    def stop_agent(self) -> None:
        with self._lock:
            agent, self._agent = self._agent, None
        if agent is not None:
            agent.stop()

    def restart_agent(self) -> None:
        self.stop_agent()
        self.start_agent()
        self._wake.set()

    def open_page(self, path: str = "/") -> str:
        url = self.server.open_url(path)
        print(f"lockr-local: {'setup' if path == '/settings' else 'control'} page: {url}", flush=True)
        if self.open_browser:
            webbrowser.open(url)
        return url

    # ----- running -------------------------------------------------------------------------------
    def run(self) -> int:
        """Blocks until Quit (or `quit()` from another thread / a signal)."""
        self.server.start()
        self.start_agent()
        if self._agent is None:
            self.open_page("/settings")  # first run, or no token for the configured endpoint
        else:
            print(f"lockr-local: control page: {self.server.open_url('/')}", flush=True)
        try:
            pystray, self.backend = load_pystray()
        except RuntimeError as exc:
            self._run_without_icon(str(exc))
            return 0
        self.has_menu = bool(pystray.Icon.HAS_MENU)
        self.has_notification = bool(pystray.Icon.HAS_NOTIFICATION)
        view = self.model.view(self.status(), self.facts())
        self._view = view
        self.icon = pystray.Icon("lockr-local", icon=draw_icon(view.icon, view.progress), title=view.title,
                                 menu=self._pystray_menu(pystray, view))
        log.info("tray backend %s (menu: %s, notifications: %s)", self.backend, self.has_menu, self.has_notification)
        log.info("tray: %s", view.title)
        try:
            self.icon.run(setup=self._on_icon_ready)
        except Exception as exc:  # a backend failing at start (no D-Bus, no tray host): keep syncing
            log.error("the %s tray backend failed", self.backend, exc_info=True)
            self.icon = None
            self._run_without_icon(f"the {self.backend} tray backend failed ({exc}); PYSTRAY_BACKEND=xorg may work")
            # pystray's setup thread (not a daemon) still waits for a loop that never ran.
            os._exit(0)
        finally:
            self._stop.set()
            self._shutdown()
            self._stopped.set()
        return 0

    def _run_without_icon(self, reason: str) -> None:
        """No tray (a server, an SSH session, a broken backend): keep syncing; the control page offers
        every action, and Quit there (or a signal) ends the app."""
        print(f"lockr-local: {reason}; running without an icon. Control page: {self.server.open_url('/')}",
              flush=True)
        self._stop.wait()
        self._shutdown()

    def _on_icon_ready(self, icon: Any) -> None:
        icon.visible = True
        print(f"lockr-local: tray icon shown ({self.backend} backend)", flush=True)
        threading.Thread(target=self._ui_loop, name="lockr-tray-ui", daemon=True).start()

    def _ui_loop(self) -> None:
        """The one thread that talks to pystray after start-up: redraws on change, then stops the icon.

        Calls into the xorg backend from several threads at once (a redraw racing Icon.stop) could leave
        its X loop waiting for an event that never came, so updates and the stop are serialised here.
        """
        while not self._stop.is_set():
            self._wake.wait(POLL_SECONDS)
            self._wake.clear()
            if not self._stop.is_set():
                self.refresh()
                self._keep_docked()
        self._on_ui_thread(self.icon.stop)
        self._wake_xorg_loop()
        # Belt and braces: should the backend's loop still not return, leave anyway (all state is saved).
        if not self._stopped.wait(STOP_GRACE_SECONDS):
            log.error("the tray backend did not stop within %.0fs; exiting", STOP_GRACE_SECONDS)
            self._shutdown()
            os._exit(0)

    def _keep_docked(self) -> None:
        """pystray's xorg backend asks the tray host to dock the icon once, and again only when the image
        changes: an icon shown before the panel's tray exists (an autostart racing the panel at login),
        or whose dock request the host dropped, would never appear. While it stays undocked, ask again.
        The check runs on a private X connection, like `_poke_xorg_loop`, so it never waits on the
        shared one's locks (see `_call_xorg`), and at most once per REDOCK_AFTER_SECONDS."""
        window = getattr(self.icon, "_window", None) if self.backend == "xorg" else None
        if window is None or self._view is None:
            return
        now = time.monotonic()
        if now - self._dock_checked_at < REDOCK_AFTER_SECONDS:
            return
        self._dock_checked_at = now
        try:
            from Xlib import display as xdisplay

            private = xdisplay.Display(self.icon._display.get_display_name())
            try:
                tree = private.create_resource_object("window", window.id).query_tree()
                embedded = tree.parent.id != private.screen().root.id
            finally:
                private.close()
        except Exception as exc:  # the window or the X server is going away (Quit): nothing to dock
            log.debug("cannot tell whether the icon is docked: %s", exc)
            return
        if embedded or self._undocked_since is None:
            self._undocked_since = None if embedded else now
            return
        self._undocked_since = now
        log.info("tray: the icon is not docked; asking the system tray again")
        image = draw_icon(self._view.icon, _step(self._view.progress))
        self._on_ui_thread(lambda: setattr(self.icon, "icon", image))

    def _wake_xorg_loop(self) -> None:
        """pystray's xorg loop waits for the DestroyNotify of its window after Icon.stop(); with python-xlib
        in threaded mode that event can be read off the socket by the stopping thread and queued while the
        loop sits in select(), which then never returns (reproduced after a few title/icon updates). One
        round trip on the same connection makes the loop's thread read again and find the queued event."""
        display = getattr(self.icon, "_display", None) if self.backend == "xorg" else None
        if display is None:
            return
        try:
            display.sync()
        except Exception as exc:  # the loop may already have closed the connection: nothing left to wake
            log.debug("no X round trip after stop: %s", exc)

    def refresh(self) -> None:
        """Recomputes the view and pushes what changed to the icon (on the lockr-tray-ui thread)."""
        if self.icon is None:
            return
        import pystray

        view = self.model.view(self.status(), self.facts())
        previous, self._view = self._view, view
        if view.notification and self.has_notification:
            self._on_ui_thread(lambda: self.icon.notify(view.notification, "lockr-local"))
        if previous is not None and replace(previous, notification=None) == replace(view, notification=None):
            return
        if previous is None or (previous.icon, _step(previous.progress)) != (view.icon, _step(view.progress)):
            image = draw_icon(view.icon, _step(view.progress))
            self._on_ui_thread(lambda: setattr(self.icon, "icon", image))
        if previous is None or previous.title != view.title:
            log.info("tray: %s", view.title)
            self._on_ui_thread(lambda: setattr(self.icon, "title", view.title))
        if previous is None or previous.menu != view.menu or previous.default_action != view.default_action:
            menu = self._pystray_menu(pystray, view)
            self._on_ui_thread(lambda: setattr(self.icon, "menu", menu))

    def _on_ui_thread(self, fn: Callable[[], None]) -> None:
        if sys.platform == "darwin":
            from PyObjCTools import AppHelper  # pyobjc ships with pystray's macOS dependencies

            AppHelper.callAfter(fn)
        elif self.backend == "xorg":
            self._call_xorg(fn)
        else:
            fn()

    def _call_xorg(self, fn: Callable[[], None]) -> None:
        """pystray's xorg backend runs a setter (icon, title, stop) by sending its own loop an X
        ClientMessage and waiting until the loop has run it. python-xlib in threaded mode can read that
        event off the socket during the caller's flush and queue it while the loop sits in select(), so
        the caller would wait forever: under load a title change hung this thread, and Quit with it.
        The call runs on a helper thread; while it waits, a no-op event (`_poke_xorg_loop`) makes the
        loop read again and find the queued one; an update that never runs is skipped after a while."""
        done = threading.Event()

        def call() -> None:
            try:
                fn()
            except Exception:  # the icon may be gone already (quitting): nothing left to update
                log.warning("a tray update failed", exc_info=True)
            finally:
                done.set()

        threading.Thread(target=call, name="lockr-tray-xorg-call", daemon=True).start()
        deadline = time.monotonic() + XORG_CALL_TIMEOUT
        while not done.wait(XORG_NUDGE_SECONDS):
            if self._stopped.is_set() or time.monotonic() > deadline:
                log.error("the xorg tray loop did not run an update within %.0fs", XORG_CALL_TIMEOUT)
                return
            self._poke_xorg_loop()
        # The update's own requests (the new title, the redrawn image) may sit in python-xlib's queue the
        # same way until the loop wakes: one more event gets them sent now.
        self._poke_xorg_loop()

    def _poke_xorg_loop(self) -> None:
        """Sends the icon's window a no-op ClientMessage over a private X connection. In threaded mode
        python-xlib sends requests queued by other threads, and notices events they read, only when the
        thread sitting in select() wakes up; an event arriving for the window wakes it. A private
        connection never waits on the locks of the shared one, so this cannot hang."""
        display = getattr(self.icon, "_display", None)
        window = getattr(self.icon, "_window", None)
        if display is None or window is None:
            return
        try:
            from Xlib import X, error
            from Xlib import display as xdisplay
            from Xlib.protocol import event

            private = xdisplay.Display(display.get_display_name())
            try:
                target = private.create_resource_object("window", window.id)
                wake = event.ClientMessage(window=target, client_type=private.intern_atom("_LOCKR_WAKE"),
                                           data=(32, [0, 0, 0, 0, 0]))
                target.send_event(wake, event_mask=X.NoEventMask, onerror=error.CatchError())
                private.sync()
            finally:
                private.close()
        except Exception as exc:  # no X server any more (quitting): nothing left to wake
            log.debug("cannot poke the xorg tray loop: %s", exc)

    def _pystray_menu(self, pystray: Any, view: TrayView) -> Any:
        def item(entry: MenuEntry) -> Any:
            if entry.separator:
                return pystray.Menu.SEPARATOR
            if entry.children:
                return pystray.MenuItem(entry.label, pystray.Menu(*(item(c) for c in entry.children)),
                                        enabled=entry.enabled)
            checked = (lambda _item, value=entry.checked: value) if entry.checked is not None else None
            return pystray.MenuItem(entry.label, self._callback(entry.action, entry.argument), checked=checked,
                                    enabled=entry.enabled)

        # The hidden default item is what a left click (or xorg's only click) triggers.
        default = pystray.MenuItem("default", self._callback(view.default_action), default=True, visible=False)
        return pystray.Menu(default, *(item(e) for e in view.menu))

    def _callback(self, action: Action, argument: str = "") -> Callable[[Any, Any], None]:
        def run(_icon: Any, _item: Any) -> None:
            if action is Action.SETTINGS and not self.has_menu and self.config.configured:
                target: Callable[[], Any] = lambda: _with_signals_unblocked(lambda: self.open_page("/"))
            else:
                target = lambda: self.perform(action, argument)
            threading.Thread(target=target, name="lockr-tray-action", daemon=True).start()

        return run

    def _copy(self, link: str) -> None:
        from lockr_local.tray.clipboard import copy_text

        try:
            tool = copy_text(link)
            log.info("copied %s with %s", link, tool)
        except RuntimeError as exc:
            log.error("cannot copy the link: %s", exc)
            # Bound now: `exc` is unset when the except block ends, and on macOS the call runs later.
            message = f"Cannot copy the link: {exc}"
            if self.has_notification and self.icon is not None:
                self._on_ui_thread(lambda: self.icon.notify(message, "lockr-local"))

    def quit(self) -> None:
        """From any thread: the lockr-tray-ui thread stops the icon, then run() cleans up and returns."""
        self._stop.set()
        self._wake.set()

    def _shutdown(self) -> None:
        with self._shutdown_lock:
            self.stop_agent()
            self.server.stop()


def _with_signals_unblocked(fn: Callable[[], Any]) -> None:
    """Runs an action with SIGINT/SIGTERM unblocked in this thread, so programs it starts (file manager,
    browser, clipboard helper) do not inherit the mask `lockr-local tray` sets for its signal thread."""
    import signal

    signals = {signal.SIGINT, signal.SIGTERM}
    mask = getattr(signal, "pthread_sigmask", None)
    if mask is not None:
        mask(signal.SIG_UNBLOCK, signals)
    try:
        fn()
    finally:
        if mask is not None:
            mask(signal.SIG_BLOCK, signals)


def _step(progress: float | None) -> float | None:
    """Progress rounded to eighths, so the icon image is redrawn a few times per file, not per block."""
    return None if progress is None else round(progress * 8) / 8


def make_agent(config: TrayConfig) -> "SyncAgent":
    """A SyncAgent for the configured folder and endpoint, with the token from LOCKR_TOKEN or the keyring."""
    from lockr_local.config import load_settings
    from lockr_local.credentials import resolve_token
    from lockr_local.errors import Unauthorized
    from lockr_local.sync.agent import SyncAgent

    token = resolve_token(None, config.endpoint)
    if not token:
        from lockr_local.credentials import TokenStore, keyring_usable
        from lockr_local.errors import KeyringUnavailable

        if not keyring_usable() and not TokenStore().uses_file(config.endpoint):
            raise KeyringUnavailable("No usable keyring holds a token for this server: start lockr-local with "
                                     "LOCKR_TOKEN set, or sign in under Settings and keep the token in a private file.")
        raise Unauthorized(f"Not signed in to {config.endpoint}: open Settings to sign in.")
    return SyncAgent.from_settings(Path(config.folder), config.endpoint, token, load_settings(),
                                   remote_folder=config.remote_folder)


__all__ = ["TrayApp", "IconState", "load_pystray", "make_agent"]
