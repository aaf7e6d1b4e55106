"""Commands that other packages add to ``jumpstart`` through the ``jumpstarter.commands``
entry-point group.

Each test installs a small distribution into a directory of its own (a ``.dist-info``
folder with an ``entry_points.txt``, beside the plugin's module), puts the directory on
``PYTHONPATH``, and runs ``jumpstart`` in a subprocess: the entry points are found the
way an installed package's are.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from jumpstarter._cli import PLUGIN_GROUP

REPO = Path(__file__).resolve().parents[2]
JUMPSTART = [sys.executable, "-c", "from jumpstarter._cli import main; main()"]
PROCESS_TIMEOUT = 60.0

PLUGIN_MODULE = '''
import click

NOT_A_COMMAND = 42


@click.command()
@click.argument("who", default="world")
def hello(who):
    """Greet someone from a plugin."""
    click.echo(f"hello, {who}, from a plugin")


@click.group()
def tools():
    """A group of plugin commands."""


@tools.command()
def ping():
    """Answer pong."""
    click.echo("pong")
'''


def install_plugin(directory: Path, entry_points: dict[str, str]) -> None:
    """Install a distribution named ``demo_plugin`` in ``directory`` whose
    ``jumpstarter.commands`` entry points are ``entry_points``."""
    (directory / "demo_plugin_cli.py").write_text(PLUGIN_MODULE)
    info = directory / "demo_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: demo_plugin\nVersion: 1.0\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{PLUGIN_GROUP}]\n{lines}")


def jumpstart(directory: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(directory), str(REPO), *filter(None, [env.get("PYTHONPATH")])]
    )
    return subprocess.run(
        [*JUMPSTART, *arguments],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        check=False,
    )


def command_lines(help_text: str) -> dict[str, str]:
    """The ``Commands:`` section of a help text, as {name: short help}."""
    section = help_text.split("Commands:\n", 1)[1]
    rows = [line.split(None, 1) for line in section.splitlines() if line.strip()]
    return {row[0]: row[1] if len(row) > 1 else "" for row in rows}


def test_a_command_from_an_entry_point_is_listed_in_help_and_runs(tmp_path):
    install_plugin(tmp_path, {"hello": "demo_plugin_cli:hello"})
    listed = jumpstart(tmp_path, "--help")
    assert listed.returncode == 0, listed.stderr
    commands = command_lines(listed.stdout)
    assert commands["hello"] == "Greet someone from a plugin."
    assert {"run", "ask", "graph"} <= commands.keys()
    assert listed.stderr == ""
    ran = jumpstart(tmp_path, "hello", "trio")
    assert (ran.returncode, ran.stdout, ran.stderr) == (0, "hello, trio, from a plugin\n", "")


def test_a_plugin_group_brings_its_subcommands(tmp_path):
    install_plugin(tmp_path, {"tools": "demo_plugin_cli:tools"})
    assert "tools" in command_lines(jumpstart(tmp_path, "--help").stdout)
    ran = jumpstart(tmp_path, "tools", "ping")
    assert (ran.returncode, ran.stdout) == (0, "pong\n")


def test_a_plugin_that_cannot_be_imported_is_left_out_with_a_warning(tmp_path):
    install_plugin(
        tmp_path,
        {"broken": "no_such_module_anywhere:command", "hello": "demo_plugin_cli:hello"},
    )
    listed = jumpstart(tmp_path, "--help")
    assert listed.returncode == 0
    commands = command_lines(listed.stdout)
    assert "broken" not in commands and "hello" in commands
    assert "warning: the command 'broken'" in listed.stderr
    assert "ModuleNotFoundError" in listed.stderr and "demo_plugin 1.0" in listed.stderr
    assert "Traceback" not in listed.stderr
    # a broken plugin costs nothing to the commands that do not need it
    ran = jumpstart(tmp_path, "hello")
    assert (ran.returncode, ran.stderr) == (0, "")
    missing = jumpstart(tmp_path, "broken")
    assert missing.returncode == 2
    assert "could not be loaded" in missing.stderr and "No such command 'broken'" in missing.stderr


def test_an_entry_point_that_is_not_a_click_command_is_left_out_with_a_warning(tmp_path):
    install_plugin(tmp_path, {"number": "demo_plugin_cli:NOT_A_COMMAND"})
    listed = jumpstart(tmp_path, "--help")
    assert listed.returncode == 0
    assert "number" not in command_lines(listed.stdout)
    assert "is of type int, not a click command" in listed.stderr


def test_a_plugin_cannot_replace_a_built_in_command(tmp_path):
    install_plugin(tmp_path, {"graph": "demo_plugin_cli:hello"})
    listed = jumpstart(tmp_path, "--help")
    assert command_lines(listed.stdout)["graph"] == "Draw a state machine of an Actor subclass."
    assert "'graph' has the name of a built-in command" in listed.stderr
    ran = jumpstart(tmp_path, "graph", "--help")
    assert ran.returncode == 0 and "Draw a state machine" in ran.stdout


def test_two_packages_with_a_command_of_the_same_name_keep_the_first(tmp_path):
    install_plugin(tmp_path, {"hello": "demo_plugin_cli:hello"})
    info = tmp_path / "other_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: other_plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{PLUGIN_GROUP}]\nhello = demo_plugin_cli:tools\n")
    listed = jumpstart(tmp_path, "--help")
    assert listed.returncode == 0
    assert "hello" in command_lines(listed.stdout)
    assert "registered by another package too" in listed.stderr
