"""The start-at-login entry per platform, checked against each platform's own rules: the Desktop Entry
spec's Exec quoting (and desktop-file-validate), a plist that plistlib reads back, the Run key value."""

from __future__ import annotations

import plistlib
import shutil
import subprocess
from pathlib import Path

import pytest

from lockr_local.tray import autostart
from lockr_local.tray.autostart import AutostartError, set_autostart


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path


# ----- Linux and the BSDs: XDG autostart --------------------------------------------------------------

RESERVED = set(" \t\n\"'\\><~|&;$*?#()`")
STRING_ESCAPES = {"s": " ", "n": "\n", "t": "\t", "r": "\r", "\\": "\\"}


def parse_exec(value: str) -> list[str]:
    """The Exec key as a desktop reads it, written from the spec (not from the code under test):
    string escapes first, then double-quoted arguments with `\\"`, `` \\` ``, `\\$`, `\\\\` escaped, then `%%`."""
    text, i = "", 0
    while i < len(value):
        if value[i] == "\\":
            assert value[i + 1] in STRING_ESCAPES, f"not a string escape in {value!r}"
            text, i = text + STRING_ESCAPES[value[i + 1]], i + 2
        else:
            text, i = text + value[i], i + 1
    arguments: list[str] = []
    current: str | None = None
    quoted, i = False, 0
    while i < len(text):
        char = text[i]
        if quoted and char == "\\":
            assert text[i + 1] in '"`$\\', f"a backslash may escape only \" ` $ \\ in {text!r}"
            current, i = (current or "") + text[i + 1], i + 2
            continue
        if quoted and char == '"':
            quoted = False
        elif quoted:
            current = (current or "") + char
        elif char == " ":
            if current is not None:
                arguments.append(current)
            current = None
        elif char == '"':
            assert current is None, "quotes must enclose a whole argument"
            quoted, current = True, ""
        else:
            assert char not in RESERVED, f"reserved {char!r} outside quotes in {text!r}"
            current = (current or "") + char
        i += 1
    assert not quoted, f"unterminated quote in {text!r}"
    if current is not None:
        arguments.append(current)
    for argument in arguments:
        assert "%" not in argument.replace("%%", ""), f"a lone % is a field code: {argument!r}"
    return [argument.replace("%%", "%") for argument in arguments]


def exec_value(path: Path) -> str:
    [line] = [line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("Exec=")]
    return line.removeprefix("Exec=")


@pytest.mark.parametrize("program, exec_line", [
    ("/usr/bin/lockr-local", "/usr/bin/lockr-local tray"),
    ("/opt/lockr local/lockr-local", '"/opt/lockr local/lockr-local" tray'),
    ('/home/ann/say "hi"/lockr-local', r'"/home/ann/say \\"hi\\"/lockr-local" tray'),
    ("/home/$USER/lockr-local", r'"/home/\\$USER/lockr-local" tray'),
    ("/opt/50%/lockr-local", "/opt/50%%/lockr-local tray"),
    ("/opt/100% $ure/lockr-local", r'"/opt/100%% \\$ure/lockr-local" tray'),
    ("/opt/`date`/lockr-local", r'"/opt/\\`date\\`/lockr-local" tray'),
    ("/opt/back\\slash/lockr-local", r'"/opt/back\\\\slash/lockr-local" tray'),
    ("/home/o'neil/lockr-local", "\"/home/o'neil/lockr-local\" tray"),
])
def test_xdg_entry_quotes_exec_as_the_desktop_entry_spec_says(home: Path, program: str, exec_line: str) -> None:
    where = set_autostart(True, platform="linux", command=[program, "tray"])
    path = home / "config" / "autostart" / "lockr-local.desktop"
    assert where == str(path)
    assert exec_value(path) == exec_line
    assert parse_exec(exec_value(path)) == [program, "tray"]
    assert "Type=Application" in path.read_text() and "'" not in exec_line.replace("o'neil", "")


def test_xdg_entry_passes_desktop_file_validate(home: Path) -> None:
    validator = shutil.which("desktop-file-validate")
    if validator is None:
        pytest.skip("desktop-file-validate (Debian package desktop-file-utils) is not installed")
    program = "/home/ann/My \"lockr\" $HOME `x` 100%/back\\slash/o'neil/lockr-local"
    set_autostart(True, platform="linux", command=[program, "-m", "lockr_local", "tray"])
    path = home / "config" / "autostart" / "lockr-local.desktop"
    checked = subprocess.run([validator, str(path)], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0 and not checked.stdout.strip(), checked.stdout + checked.stderr
    assert parse_exec(exec_value(path)) == [program, "-m", "lockr_local", "tray"]


def test_xdg_entry_can_be_removed(home: Path) -> None:
    set_autostart(True, platform="linux", command=["/usr/bin/lockr-local", "tray"])
    assert autostart.autostart_enabled(platform="linux")
    set_autostart(False, platform="linux")
    assert not (home / "config" / "autostart" / "lockr-local.desktop").exists()
    assert not autostart.autostart_enabled(platform="linux")
    set_autostart(False, platform="linux")  # removing what is not there is fine


def test_an_unwritable_autostart_folder_is_reported_with_the_next_step(home: Path) -> None:
    (home / "config").mkdir()
    (home / "config" / "autostart").write_text("a file where the folder should be")
    with pytest.raises(AutostartError) as caught:
        set_autostart(True, platform="linux", command=["/usr/bin/lockr-local", "tray"])
    message = str(caught.value)
    assert str(home / "config" / "autostart" / "lockr-local.desktop") in message
    assert "save again" in message and "lockr-local tray" in message


# ----- macOS: a LaunchAgent ---------------------------------------------------------------------------

def test_macos_launch_agent_is_a_plist_that_runs_at_load(home: Path) -> None:
    command = ["/Applications/lockr <local> & co.app/Contents/MacOS/lockr-local", "tray"]
    where = set_autostart(True, platform="darwin", command=command)
    path = home / "Library" / "LaunchAgents" / "org.lockr-local.tray.plist"
    assert where == str(path)
    with path.open("rb") as file:
        agent = plistlib.load(file)
    assert agent["Label"] == "org.lockr-local.tray" == path.name.removesuffix(".plist")
    assert agent["ProgramArguments"] == command and isinstance(agent["ProgramArguments"], list)
    assert agent["RunAtLoad"] is True
    assert autostart.autostart_enabled(platform="darwin")
    set_autostart(False, platform="darwin")
    assert not path.exists()


# ----- Windows: the user's Run key --------------------------------------------------------------------

class RecordingRunKey:
    """Stands in for HKCU\\...\\Run, which Linux does not have; records each write as winreg would get it."""

    def __init__(self, fail: OSError | None = None) -> None:
        self.values: dict[str, str] = {}
        self.calls: list[tuple[str, ...]] = []
        self.fail = fail

    def set(self, name: str, command_line: str) -> None:
        self.calls.append(("set", name, command_line))
        if self.fail:
            raise self.fail
        self.values[name] = command_line

    def delete(self, name: str) -> None:
        self.calls.append(("delete", name))
        if self.fail:
            raise self.fail
        self.values.pop(name, None)

    def get(self, name: str) -> str | None:
        return self.values.get(name)


@pytest.mark.parametrize("command, value", [
    (["C:\\Program Files\\lockr-local\\lockr-local.exe", "tray"], '"C:\\Program Files\\lockr-local\\lockr-local.exe" tray'),
    (["C:\\lockr\\lockr-local.exe", "tray"], "C:\\lockr\\lockr-local.exe tray"),
    (["C:\\Users\\Ann Lee\\AppData\\Local\\Programs\\Python\\Python311\\pythonw.exe", "-m", "lockr_local", "tray"],
     '"C:\\Users\\Ann Lee\\AppData\\Local\\Programs\\Python\\Python311\\pythonw.exe" -m lockr_local tray'),
])
def test_windows_autostart_writes_the_run_key_value(command: list[str], value: str) -> None:
    key = RecordingRunKey()
    where = set_autostart(True, platform="win32", command=command, run_key=key)
    assert where == "HKEY_CURRENT_USER\\Software\\Microsoft\\Windows\\CurrentVersion\\Run\\lockr-local"
    assert key.calls == [("set", "lockr-local", value)]
    assert autostart.autostart_enabled(platform="win32", run_key=key)
    set_autostart(False, platform="win32", run_key=key)
    assert key.calls[-1] == ("delete", "lockr-local") and not autostart.autostart_enabled(platform="win32", run_key=key)


def test_a_refused_registry_write_is_reported_with_the_next_step() -> None:
    key = RecordingRunKey(fail=PermissionError(5, "Access is denied"))
    with pytest.raises(AutostartError) as caught:
        set_autostart(True, platform="win32", command=["C:\\lockr\\lockr-local.exe", "tray"], run_key=key)
    assert "Access is denied" in str(caught.value) and "Task Manager" in str(caught.value)


def test_windows_autostart_never_silently_does_nothing() -> None:
    """Before: `set_autostart(True, platform="win32")` returned None and nothing was written anywhere."""
    if autostart.sys.platform == "win32":
        pytest.skip("on Windows the real registry is there")
    with pytest.raises(AutostartError, match="registry"):
        set_autostart(True, platform="win32", command=["C:\\lockr\\lockr-local.exe", "tray"])


def test_an_unsupported_platform_says_to_start_the_app_by_hand(home: Path) -> None:
    with pytest.raises(AutostartError, match="start lockr-local yourself"):
        set_autostart(True, platform="haiku1", command=["/bin/lockr-local", "tray"])
    set_autostart(False, platform="haiku1")  # nothing to remove, nothing to report


def test_windows_entry_starts_pythonw_so_no_console_window_opens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("python.exe", "pythonw.exe"):
        (tmp_path / name).write_bytes(b"")
    monkeypatch.setattr(autostart.sys, "executable", str(tmp_path / "python.exe"))
    key = RecordingRunKey()
    set_autostart(True, platform="win32", run_key=key)
    assert key.values["lockr-local"] == subprocess.list2cmdline([str(tmp_path / "pythonw.exe"), "-m", "lockr_local", "tray"])
