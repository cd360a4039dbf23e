"""`lockr-local completion bash|zsh|fish`: scripts made from the parser, that the shells accept and that
complete what a user types (bash is driven for real through its completion function)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from lockr_local.cli import build_parser
from lockr_local.commands.completion_cmds import walk
from tests.client.conftest import Cli

REQUIRE_ALL = os.environ.get("LOCKR_REQUIRE_ALL") == "1"


def script(cli: Cli, shell: str) -> str:
    result = cli.run("completion", shell)
    assert result.returncode == 0, result.stderr
    return result.stdout


def bash_completes(script_text: str, *words: str) -> list[str]:
    """What bash offers for the command line `words` (the last one being completed), via the script's own
    completion function with COMP_WORDS/COMP_CWORD set as readline would set them."""
    quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
    program = (f"{script_text}\nCOMP_WORDS=({quoted}); COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))\n"
               "_lockr_local\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n")
    result = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if line]


def test_bash_completes_commands_and_a_commands_options(cli: Cli) -> None:
    text = script(cli, "bash")
    assert "complete -o bashdefault -o default -F _lockr_local lockr-local" in text
    assert bash_completes(text, "lockr-local", "up") == ["upload"]
    assert bash_completes(text, "lockr-local", "upload", "--re") == ["--region"]
    assert {"--json", "--key", "--chunk-size", "--quiet"} <= set(bash_completes(text, "lockr-local", "upload", "--"))
    # A nested command, after a global option and a valued option whose value looks like a command.
    assert bash_completes(text, "lockr-local", "user", "") == ["add", "list", "passwd", "quota", "rename", "delete"]
    assert set(bash_completes(text, "lockr-local", "token", "list", "--")) == {"--help", "--json", "--data-dir",
                                                                            "--config"}
    assert bash_completes(text, "lockr-local", "upload", "--region", "ls", "--gu") == ["--guest"]
    assert bash_completes(text, "lockr-local", "completion", "") == ["bash", "zsh", "fish"]
    # A file argument or an option's value is left to bash's own file-name completion.
    assert bash_completes(text, "lockr-local", "upload", "--region", "") == []


def test_every_command_of_the_parser_is_in_every_script(cli: Cli) -> None:
    nodes = walk(build_parser())
    commands = {name for node in nodes for name, _ in node.subcommands}
    assert {"upload", "download", "ls", "user", "add", "completion", "sync"} <= commands
    for shell in ("bash", "zsh", "fish"):
        text = script(cli, shell)
        missing = [name for name in commands if name not in text]
        assert not missing, f"{shell}: {missing}"


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_the_shell_accepts_the_script(cli: Cli, shell: str, tmp_path) -> None:
    if shutil.which(shell) is None:
        if REQUIRE_ALL:
            pytest.fail(f"{shell} is not installed (LOCKR_REQUIRE_ALL=1)")
        pytest.skip(f"{shell} is not installed")
    path = tmp_path / f"lockr-local.{shell}"
    path.write_text(script(cli, shell))
    checked = subprocess.run([shell, "-n", str(path)], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr


def test_fish_completes_a_command_and_a_nested_commands_option(cli: Cli, tmp_path) -> None:
    if shutil.which("fish") is None:
        if REQUIRE_ALL:
            pytest.fail("fish is not installed (LOCKR_REQUIRE_ALL=1)")
        pytest.skip("fish is not installed")
    path = tmp_path / "lockr-local.fish"
    path.write_text(script(cli, "fish"))
    program = (f"source {path}; complete -C 'lockr-local up'; echo ---; complete -C 'lockr-local user add --e'; "
               "echo ---; complete -C 'lockr-local token list --'")
    result = subprocess.run(["fish", "--no-config", "-c", program], capture_output=True, text=True, timeout=30,
                            env={**os.environ, "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    top, user_add, token_list = result.stdout.split("---\n")
    assert top.split("\t")[0] == "upload"
    assert user_add.split("\t")[0] == "--email"
    assert "--json" in token_list and "--email" not in token_list


def test_completion_rejects_an_unknown_shell(cli: Cli) -> None:
    result = cli.run("completion", "tcsh")
    assert result.returncode == 2 and "invalid choice: 'tcsh'" in result.stderr


def test_zsh_completes_a_command_and_a_commands_options(cli: Cli, tmp_path) -> None:
    """The script's completion function, run in zsh with the completion system's builtins standing in as
    printers (compadd, _describe, _files only exist inside a completion widget)."""
    if shutil.which("zsh") is None:
        if REQUIRE_ALL:
            pytest.fail("zsh is not installed (LOCKR_REQUIRE_ALL=1)")
        pytest.skip("zsh is not installed")
    path = tmp_path / "lockr-local.zsh"
    path.write_text(script(cli, "zsh"))
    program = (f"compdef() {{ }}; source {path}\n"
               "compadd() { [[ $1 == -- ]] && shift; print -l -- \"$@\"; }\n"
               "_describe() { print -l -- ${(P)${4}}; }\n_files() { print FILES; }\n"
               "t() { words=(\"$@\"); CURRENT=$#; print -- ---; _lockr_local; }\n"
               "t lockr-local ''; t lockr-local user ''; t lockr-local upload --region ls --; "
               "t lockr-local upload --region ''; t lockr-local completion ''\n")
    result = subprocess.run(["zsh", "-f", "-c", program], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and not result.stderr, result.stderr
    parts = [part.splitlines() for part in result.stdout.split("---\n")[1:]]
    top, user, upload_options, region_value, shells = parts
    assert "upload:upload files and print their share links" in top
    assert len(top) == len(walk(build_parser())[0].subcommands)
    assert [item.split(":")[0] for item in user] == ["add", "list", "passwd", "quota", "rename", "delete"]
    assert {"--json", "--guest", "--chunk-size"} <= set(upload_options)
    assert region_value == ["FILES"]
    assert shells == ["bash", "zsh", "fish"]
