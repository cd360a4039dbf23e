"""A minimal desktop-notification server for tray tests: owns org.freedesktop.Notifications on the session
bus (as a notification daemon such as dunst does) and appends each Notify call to a file as a JSON line.

Run with Debian's PyGObject on the path: `python -m tests.tray.notify_recorder RECORD_FILE`. It prints
"ready" once it owns the name, and ends with its D-Bus session.
"""

from __future__ import annotations

import json
import sys
from typing import Any

INTERFACE = """<node><interface name="org.freedesktop.Notifications">
<method name="Notify"><arg type="s" direction="in"/><arg type="u" direction="in"/><arg type="s" direction="in"/>
<arg type="s" direction="in"/><arg type="s" direction="in"/><arg type="as" direction="in"/>
<arg type="a{sv}" direction="in"/><arg type="i" direction="in"/><arg type="u" direction="out"/></method>
<method name="CloseNotification"><arg type="u" direction="in"/></method>
<method name="GetCapabilities"><arg type="as" direction="out"/></method>
<method name="GetServerInformation"><arg type="s" direction="out"/><arg type="s" direction="out"/>
<arg type="s" direction="out"/><arg type="s" direction="out"/></method>
</interface></node>"""


def main(record: str) -> int:
    from gi.repository import Gio, GLib

    node = Gio.DBusNodeInfo.new_for_xml(INTERFACE)
    count = [0]

    def on_call(_conn: Any, _sender: str, _path: str, _iface: str, method: str, params: Any, invocation: Any) -> None:
        if method == "Notify":
            app, _replaces, _icon, summary, body, _actions, _hints, _timeout = params.unpack()
            count[0] += 1
            with open(record, "a", encoding="utf-8") as handle:
                handle.write(json.dumps({"app": app, "summary": summary, "body": body}) + "\n")
            invocation.return_value(GLib.Variant("(u)", (count[0],)))
        elif method == "GetCapabilities":
            invocation.return_value(GLib.Variant("(as)", (["body"],)))
        elif method == "GetServerInformation":
            invocation.return_value(GLib.Variant("(ssss)", ("notify-recorder", "lockr-local tests", "1", "1.2")))
        else:
            invocation.return_value(None)

    def on_bus(conn: Any, _name: str) -> None:
        conn.register_object("/org/freedesktop/Notifications", node.interfaces[0], on_call, None, None)

    def on_name(_conn: Any, _name: str) -> None:
        print("ready", flush=True)

    Gio.bus_own_name(Gio.BusType.SESSION, "org.freedesktop.Notifications", Gio.BusNameOwnerFlags.NONE,
                     on_bus, on_name, lambda *_: loop.quit())
    loop = GLib.MainLoop()
    loop.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
