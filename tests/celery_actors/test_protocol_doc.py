"""docs/protocol.md stays true: every message of the protocol has its section, every
field its row, and the worked example runs a task on a real router."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import get_args

import attrs
import pytest
import trio

from celery_actors._protocol import MESSAGES, PROTOCOL_VERSION, TaskState
from tests.celery_actors.roles import Role

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "protocol.md"
HEADING = re.compile(r"^### (\w+) \(`([\w.-]+)`\)$")
ROW = re.compile(r"^\| `(\w+)` \|(.*)\|$")


def sections() -> dict[str, tuple[str, list[list[str]]]]:
    """Type name -> (class name, table rows as their cells) of each message section."""
    found: dict[str, tuple[str, list[list[str]]]] = {}
    current: list[list[str]] | None = None
    for line in DOC.read_text().splitlines():
        if line.startswith("#"):
            current = None
            heading = HEADING.match(line)
            if heading is not None:
                current = []
                found[heading.group(2)] = (heading.group(1), current)
        elif current is not None:
            row = ROW.match(line)
            if row is not None:
                current.append([row.group(1), *(cell.strip() for cell in row.group(2).split("|"))])
    return found


def test_every_message_has_a_section_named_after_its_class_and_type():
    documented = sections()
    for cls, type_name in MESSAGES.items():
        assert type_name in documented, f"docs/protocol.md has no section for {type_name}"
        assert documented[type_name][0] == cls.__name__
    assert set(documented) == set(MESSAGES.values()), "a section for a message that is gone"


def test_every_field_has_a_row_and_the_rows_say_which_are_required():
    documented = sections()
    for cls, type_name in MESSAGES.items():
        rows = {row[0]: row for row in documented[type_name][1]}
        fields = {field.name: field for field in attrs.fields(cls)}
        assert set(rows) == set(fields), f"the fields of {type_name} in docs/protocol.md"
        for name, field in fields.items():
            default = rows[name][-1]
            required = field.default is attrs.NOTHING
            assert (default == "required") == required, f"{type_name}.{name}: {default}"


def test_the_versions_and_the_states_the_doc_names_are_the_code_s():
    text = DOC.read_text()
    assert f"`celery_actors.PROTOCOL_VERSION` is `{PROTOCOL_VERSION}`" in text
    assert all(name.endswith(f".v{PROTOCOL_VERSION}") for name in MESSAGES.values())
    for state in get_args(TaskState):
        assert f"`{state}`" in text


def worked_example() -> str:
    text = DOC.read_text()
    example = text.split("## A worked example", 1)[1]
    return example.split("```python\n", 1)[1].split("\n```", 1)[0]


@pytest.fixture
def router_port() -> object:
    role = Role("--role", "all", "--router", "127.0.0.1:0")
    try:
        yield role.port
    finally:
        role.stop()


async def test_the_worked_example_runs_add_on_a_real_router(router_port, tmp_path):
    script = tmp_path / "add_client.py"
    script.write_text(worked_example())
    with trio.fail_after(120):
        done = await trio.run_process(
            [
                sys.executable,
                str(script),
                f"127.0.0.1:{router_port}",
                "proc-app",
                "tests.celery_actors.proc_app.add",
            ],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().strip() == "5"
