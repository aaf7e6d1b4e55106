"""The ``jumpstart`` command line: ``run``, ``graph`` and ``--version``.

Argument errors and ``graph`` are exercised in-process with Click's
``CliRunner``; running the example and shutting down on signals use a real
subprocess, which waits for a readiness line before it is signalled.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import jumpstarter
from jumpstarter import Actor, StateMachine, logging_enabled
from jumpstarter._cli import main, state_machines

REPO = Path(__file__).resolve().parents[2]  # the checkout, wherever jumpstarter is installed
JUMPSTART = [sys.executable, "-c", "from jumpstarter._cli import main; main()"]
PROCESS_TIMEOUT = 30.0

HELLO_LINES = [
    "main               actors: /user/host, /user/host/door, /user/host/greeter",
    "main               greeter says: Hello, trio!",
    "main               greeter says: Hello, actors!",
    "main               door: closed -> opened",
    "main               door: opened -> closed",
    "main               door: closed -> locked",
    "main               door: cannot open the door: it is locked",
    "/user/host         started /user/host/ticker: 3 ticks, every 0.2 s",
    "/user/host/ticker  tick 1/3",
    "/user/host/ticker  tick 2/3",
    "/user/host/ticker  tick 3/3",
    "/user/host         /user/host/ticker has stopped, so I stop too",
    "/user/host/greeter stopped after greeting 2 visitors",
    "/user/host/door    stopped, locked",
    "/user/host         stopped after its children; nothing is left running",
]

LONG_RUNNING = '''
import trio
from jumpstarter import Actor, ActorSystem


class Forever(Actor):
    """Never stops by itself."""

    def on_stop(self) -> None:
        print("forever: stopped", flush=True)


class Stuck(Actor):
    """Takes forever to stop."""

    async def on_stop(self) -> None:
        print("stuck: stopping", flush=True)
        await trio.sleep_forever()


async def main(system: ActorSystem) -> None:
    await system.spawn(Forever, name="forever")
    print("ready", flush=True)


async def never_returns(system: ActorSystem) -> None:
    await system.spawn(Forever, name="forever")
    print("ready", flush=True)
    await trio.sleep_forever()


async def slow_to_stop(system: ActorSystem) -> None:
    await system.spawn(Stuck, name="stuck")
    print("ready", flush=True)
'''


# -- helpers -------------------------------------------------------------------------------


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def assert_usage_error(result: Result, *fragments: str) -> None:
    """Exit code 2, a Click error message with every fragment, and no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "Error:" in result.stderr
    message = " ".join(result.stderr.split())  # Click may wrap long messages
    for fragment in fragments:
        assert fragment in message, result.stderr


_names = itertools.count()


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppWriter]:
    """Write modules into a temporary directory, which becomes the current directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the CLI puts the cwd on it
    writer = AppWriter(tmp_path)
    yield writer
    for name in writer.names:
        sys.modules.pop(name, None)


class AppWriter:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.names: list[str] = []

    def __call__(self, source: str) -> str:
        """Write a module with a fresh name; return that name."""
        name = f"cli_app_{os.getpid()}_{next(_names)}"
        (self.directory / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        self.names.append(name)
        return name


class Jumpstart:
    """A ``jumpstart`` subprocess whose merged stdout and stderr are read by a thread."""

    def __init__(self, *args: str, cwd: Path) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        )
        env["PYTHONUNBUFFERED"] = "1"
        env.pop("JUMPSTARTER_LOG", None)
        self.process = subprocess.Popen(
            [*JUMPSTART, *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, wanted: str, timeout: float = PROCESS_TIMEOUT) -> None:
        """Return once a line equal to ``wanted`` has been printed."""
        deadline = time.monotonic() + timeout
        while wanted not in self.lines:
            remaining = deadline - time.monotonic()
            try:
                line = self._queue.get(timeout=max(remaining, 0.0))
            except queue.Empty:
                self.kill()
                pytest.fail(f"no line {wanted!r} within {timeout} s; output:\n{self.output}")
            if line is None:
                self.finish()
                pytest.fail(
                    f"exited with {self.process.returncode} before printing {wanted!r}; "
                    f"output:\n{self.output}"
                )
            self.lines.append(line)

    def send(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    def finish(self, timeout: float = PROCESS_TIMEOUT) -> int:
        """Wait for the process to exit and its output to be read; return its exit code."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"still running after {timeout} s; output:\n{self.output}")
        self._reader.join(timeout)
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
        assert self.process.stdout is not None
        self.process.stdout.close()
        return self.process.returncode

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        self._reader.join(PROCESS_TIMEOUT)
        assert self.process.stdout is not None
        self.process.stdout.close()


@pytest.fixture
def long_running(tmp_path: Path) -> Path:
    (tmp_path / "long_running.py").write_text(LONG_RUNNING, encoding="utf-8")
    return tmp_path


# -- --version -------------------------------------------------------------------------------


def test_version_prints_the_package_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.output == f"jumpstart (jumpstarter) {jumpstarter.__version__}\n"


# -- run: the example, for real ---------------------------------------------------------------


def test_run_executes_the_hello_example_to_completion() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("JUMPSTARTER_LOG", None)
    completed = subprocess.run(
        [*JUMPSTART, "run", "examples.hello:main"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == ""
    assert completed.stdout.splitlines() == HELLO_LINES


# -- run: signals ------------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_a_signal_shuts_a_running_system_down_gracefully_with_exit_code_0(
    long_running: Path, signum: signal.Signals
) -> None:
    process = Jumpstart("run", "long_running:main", cwd=long_running)
    process.wait_for_line("ready")
    process.send(signum)
    assert process.finish() == 0, process.output
    assert f"jumpstart: {signum.name} received; shutting down gracefully" in process.output
    assert process.lines[-1] == "forever: stopped"  # its on_stop ran: a graceful stop
    assert "Traceback" not in process.output


def test_sigterm_cancels_a_factory_that_never_returns_and_stops_its_actors(
    long_running: Path,
) -> None:
    process = Jumpstart("run", "long_running:never_returns", cwd=long_running)
    process.wait_for_line("ready")
    process.send(signal.SIGTERM)
    assert process.finish() == 0, process.output
    assert process.lines[-1] == "forever: stopped"
    assert "Traceback" not in process.output


def test_a_second_signal_stops_at_once_with_exit_code_128_plus_the_signal(
    long_running: Path,
) -> None:
    process = Jumpstart(
        "run", "long_running:slow_to_stop", "--shutdown-timeout", "600", cwd=long_running
    )
    process.wait_for_line("ready")
    process.send(signal.SIGTERM)
    process.wait_for_line("stuck: stopping")  # the graceful shutdown is under way, and stuck
    process.send(signal.SIGTERM)
    # finish() fails unless the process exits within PROCESS_TIMEOUT, far below the 600 s
    # a graceful shutdown could take here
    assert process.finish() == 128 + signal.SIGTERM, process.output
    assert "jumpstart: SIGTERM received again; stopping at once" in process.output
    assert "Traceback" not in process.output


def test_the_shutdown_timeout_bounds_a_graceful_shutdown(long_running: Path) -> None:
    process = Jumpstart(
        "run", "long_running:slow_to_stop", "--shutdown-timeout", "0.2", cwd=long_running
    )
    process.wait_for_line("ready")
    process.send(signal.SIGTERM)
    process.wait_for_line("stuck: stopping")
    assert process.finish() == 0, process.output
    assert "at most 0.2 s" in process.output


# -- run: in-process -----------------------------------------------------------------------------


def test_run_waits_until_the_actors_stop_by_themselves(app: AppWriter) -> None:
    module = app(
        """
        import attrs
        from jumpstarter import Actor, handler

        @attrs.frozen
        class Tick:
            pass

        class Ticker(Actor):
            def __init__(self) -> None:
                self.ticks = 0

            def on_start(self) -> None:
                self.send_every(0.01, Tick())

            @handler
            def tick(self, msg: Tick) -> None:
                self.ticks += 1
                if self.ticks == 3:
                    print("three ticks")
                    self.stop()

        async def main(system):
            await system.spawn(Ticker, name="ticker")
            print(f"factory done in {system.name}")
        """
    )
    result = invoke("run", f"{module}:main")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"factory done in {module}\nthree ticks\n"


def test_run_names_the_system_with_the_name_option(app: AppWriter) -> None:
    module = app(
        """
        async def main(system):
            print(system.name, system.shutdown_timeout)
        """
    )
    result = invoke("run", f"{module}:main", "--name", "shop", "--shutdown-timeout", "2.5")
    assert result.exit_code == 0, result.output
    assert result.stdout == "shop 2.5\n"


def test_run_writes_message_logs_where_the_log_option_says(app: AppWriter, tmp_path: Path) -> None:
    module = app(
        """
        import attrs
        from jumpstarter import Actor, handler

        @attrs.frozen
        class Ping:
            pass

        class Echo(Actor):
            @handler
            def ping(self, msg: Ping) -> str:
                return "pong"

        async def main(system):
            echo = await system.spawn(Echo, name="echo")
            print(await echo.ask(Ping()))
            await system.stop(echo)
        """
    )
    log = tmp_path / "messages.log"
    result = invoke("run", f"{module}:main", "--log", str(log))
    assert result.exit_code == 0, result.output
    assert result.stdout == "pong\n"
    records = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert any(r.get("action_type") == "jumpstarter:handle" for r in records), records
    assert not logging_enabled()


def test_run_shows_the_traceback_of_a_failing_factory_and_exits_with_1(app: AppWriter) -> None:
    module = app(
        """
        async def main(system):
            raise ValueError("the factory broke")
        """
    )
    result = invoke("run", f"{module}:main")
    assert result.exit_code == 1
    assert result.stderr.startswith("Traceback (most recent call last):")
    assert result.stderr.rstrip().endswith("ValueError: the factory broke")
    assert "ExceptionGroup" not in result.stderr
    assert f'{module}.py", line 3, in main' in result.stderr


def test_run_lets_an_error_inside_the_imported_module_propagate(app: AppWriter) -> None:
    module = app(
        """
        import a_dependency_that_is_not_installed

        async def main(system):
            pass
        """
    )
    result = invoke("run", f"{module}:main")
    assert result.exit_code == 1
    assert isinstance(result.exception, ModuleNotFoundError)
    assert result.exception.name == "a_dependency_that_is_not_installed"


# -- run: argument errors ----------------------------------------------------------------


def test_run_reports_a_missing_colon_clearly() -> None:
    assert_usage_error(
        invoke("run", "examples.hello"),
        "expected MODULE:FACTORY with a colon",
        "'examples.hello:main'",
    )


def test_run_reports_an_empty_module_or_factory_clearly() -> None:
    assert_usage_error(invoke("run", ":main"), "expected MODULE:FACTORY with both parts")
    assert_usage_error(invoke("run", "examples.hello:"), "expected MODULE:FACTORY with both parts")


def test_run_reports_a_missing_module_clearly(app: AppWriter, tmp_path: Path) -> None:
    assert_usage_error(
        invoke("run", "no_such_module_here:main"),
        "module 'no_such_module_here' not found",
        f"importable from the current directory ({tmp_path})",
        "or from PYTHONPATH",
    )


def test_run_reports_a_missing_parent_package_clearly(app: AppWriter) -> None:
    assert_usage_error(
        invoke("run", "no_such_package.app:main"),
        "module 'no_such_package.app' not found (there is no module 'no_such_package')",
    )


def test_run_imports_modules_from_the_current_directory(app: AppWriter, tmp_path: Path) -> None:
    module = app("async def main(system):\n    print('imported')\n")
    assert str(tmp_path) not in sys.path
    result = invoke("run", f"{module}:main")
    assert result.exit_code == 0, result.output
    assert result.stdout == "imported\n"


def test_run_reports_a_file_path_given_instead_of_a_module_clearly() -> None:
    assert_usage_error(
        invoke("run", "examples/hello.py:main"),
        "'examples/hello.py' is a file path",
        "'examples.hello:main'",
    )


def test_run_reports_a_missing_attribute_with_close_matches() -> None:
    assert_usage_error(
        invoke("run", "examples.hello:mian"),
        "module 'examples.hello' has no attribute 'mian'; did you mean 'main'?",
    )


def test_run_reports_a_missing_nested_attribute_clearly() -> None:
    assert_usage_error(
        invoke("run", "examples.hello:Door.nope"),
        "object 'examples.hello:Door' has no attribute 'nope'",
    )


def test_run_reports_an_attribute_that_is_not_callable(app: AppWriter) -> None:
    module = app("main = 42\n")
    assert_usage_error(
        invoke("run", f"{module}:main"),
        f"'{module}:main' is not callable (it is a int)",
        "async def main(system: ActorSystem) -> None",
    )


def test_run_reports_a_factory_that_is_not_async() -> None:
    assert_usage_error(
        invoke("run", "examples.hello:say"),
        "'examples.hello:say' is a plain function, not an async one",
        "FACTORY must be an async function",
    )


def test_run_reports_an_actor_class_given_as_the_factory() -> None:
    assert_usage_error(
        invoke("run", "examples.hello:Host"),
        "'examples.hello:Host' is an Actor class, not a factory",
        "await system.spawn(Host)",
    )


def test_run_reports_a_factory_that_takes_the_wrong_arguments(app: AppWriter) -> None:
    module = app("async def main(system, config):\n    pass\n")
    assert_usage_error(
        invoke("run", f"{module}:main"),
        "must take exactly one argument, the ActorSystem; its signature is (system, config)",
    )


def test_run_accepts_an_object_with_an_async_call_method_as_factory(app: AppWriter) -> None:
    module = app(
        """
        class App:
            async def __call__(self, system):
                print("called")

        app = App()
        """
    )
    result = invoke("run", f"{module}:app")
    assert result.exit_code == 0, result.output
    assert result.stdout == "called\n"


def test_run_reports_an_invalid_system_name() -> None:
    assert_usage_error(
        invoke("run", "examples.hello:main", "--name", "a/b"),
        "Invalid value for '--name'",
        "without '/'",
    )


def test_run_rejects_a_negative_shutdown_timeout() -> None:
    assert_usage_error(
        invoke("run", "examples.hello:main", "--shutdown-timeout", "-1"),
        "'--shutdown-timeout'",
    )


def test_run_reports_a_log_file_it_cannot_open(tmp_path: Path) -> None:
    target = tmp_path / "missing-directory" / "log.jsonl"
    assert_usage_error(
        invoke("run", "examples.hello:main", "--log", str(target)),
        "Invalid value for '--log'",
        "cannot open",
    )
    assert not logging_enabled()


# -- graph ------------------------------------------------------------------------------


def test_graph_lists_the_lifecycle_and_the_declared_machines() -> None:
    result = invoke("graph", "examples.hello:Door", "--list")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "lifecycle  15 states, 18 transitions",
        "position   3 states, 4 transitions",
    ]


def test_graph_writes_the_lifecycle_as_dot_by_default(tmp_path: Path) -> None:
    target = tmp_path / "lifecycle.dot"
    result = invoke("graph", "examples.hello:Door", "-o", str(target))
    assert result.exit_code == 0, result.output
    assert f"to {target}" in result.output
    text = target.read_text(encoding="utf-8")
    assert text.startswith("digraph lifecycle {")
    assert "initializing" in text and "restarting" in text


def test_graph_writes_a_declared_machine_as_mermaid(tmp_path: Path) -> None:
    target = tmp_path / "door.mmd"
    result = invoke("graph", "examples.hello:Door", "--machine", "position", "-o", str(target))
    assert result.exit_code == 0, result.output
    text = target.read_text(encoding="utf-8")
    assert "stateDiagram-v2" in text
    for edge in (
        "closed --> opened: open",
        "opened --> closed: close",
        "closed --> locked: lock",
        "locked --> closed: unlock",
    ):
        assert edge in text


def test_graph_renders_svg_with_graphviz(tmp_path: Path) -> None:
    if shutil.which("dot") is None:
        pytest.fail("this test needs Graphviz's 'dot' program: apt-get install -y graphviz")
    target = tmp_path / "door.svg"
    result = invoke("graph", "examples.hello:Door", "--machine", "position", "-o", str(target))
    assert result.exit_code == 0, result.output
    text = target.read_text(encoding="utf-8")
    assert "<svg" in text
    assert ">locked<" in text


def test_graph_reports_a_missing_dot_program_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    target = tmp_path / "door.svg"
    assert_usage_error(
        invoke("graph", "examples.hello:Door", "-m", "position", "-o", str(target)),
        "needs Graphviz's 'dot' program",
        ".dot or .mmd",
    )
    assert not target.exists()


def test_graph_reports_an_unknown_machine_with_the_available_ones(tmp_path: Path) -> None:
    assert_usage_error(
        invoke("graph", "examples.hello:Door", "-m", "hinges", "-o", str(tmp_path / "x.dot")),
        "examples.hello:Door has no state machine 'hinges'; available: lifecycle, position",
    )


def test_graph_reports_a_class_that_is_not_an_actor() -> None:
    assert_usage_error(
        invoke("graph", "examples.hello:Greet", "--list"),
        "'examples.hello:Greet' is a class, not an Actor subclass",
    )


def test_graph_reports_an_unsupported_suffix(tmp_path: Path) -> None:
    target = tmp_path / "door.txt"
    assert_usage_error(
        invoke("graph", "examples.hello:Door", "-o", str(target)),
        "cannot draw to",
        ".svg, .png, .pdf, .dot, .gv, .mmd",
    )
    assert not target.exists()


def test_graph_asks_for_an_output_file() -> None:
    assert_usage_error(invoke("graph", "examples.hello:Door"), "missing option '-o' / '--output'")


def test_graph_draws_a_state_machine_given_directly(tmp_path: Path) -> None:
    target = tmp_path / "lifecycle.mmd"
    result = invoke("graph", "jumpstarter:LIFECYCLE", "-o", str(target))
    assert result.exit_code == 0, result.output
    assert "stateDiagram-v2" in target.read_text(encoding="utf-8")


def test_state_machines_are_found_on_the_class_and_its_bases() -> None:
    def machine(*states: str) -> StateMachine:
        return StateMachine(
            states=states, initial=states[0], transitions=[("go", states[0], states[-1])]
        )

    class Base(Actor):
        motion = machine("still", "moving")
        light = machine("off", "on")

    class Derived(Base):
        light = machine("dark", "dim", "bright")

    found = state_machines(Derived)
    assert list(found) == ["lifecycle", "light", "motion"]
    assert found["lifecycle"] is jumpstarter.LIFECYCLE
    assert found["light"] is Derived.light
    assert found["motion"] is Base.motion
