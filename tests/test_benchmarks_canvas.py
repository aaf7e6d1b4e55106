"""The ``canvas`` benchmark suite is complete and reports what it measured; its quick
mode runs for real, through ``python -m benchmarks canvas --quick``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from rich.console import Console

from benchmarks import canvas
from benchmarks.__main__ import SUITES, source_fingerprint
from benchmarks._canvas_measure import KINDS, Workload, WrongResult, measure_sync
from benchmarks._canvas_systems import SYSTEMS, system
from benchmarks._canvas_worker import main as worker_main
from benchmarks._runner import ROOT
from benchmarks._tasks_services import PeerFailed


def test_the_canvas_suite_is_registered_on_the_command_line():
    assert SUITES["canvas"] is canvas


def test_the_full_sizes_are_those_of_the_issue():
    assert [name for name, _, _ in canvas.scenarios(canvas.FULL)] == [
        "chord-1000",
        "chord-10000",
        "chain-1000",
    ]
    assert canvas.TARGET_RATIO == 10


@pytest.mark.parametrize("sizes", [canvas.FULL, canvas.QUICK])
def test_every_system_is_planned_once_for_every_scenario(sizes):
    jobs = canvas.plan(sizes)
    planned = sorted((job.peer, job.scenario) for job in jobs)
    scenarios = canvas.scenarios(sizes)
    assert planned == sorted((s.key, name) for s in SYSTEMS for name, _, _ in scenarios)
    sizes_of = {name: (kind, n) for name, kind, n in scenarios}
    for job in jobs:
        kind, n = sizes_of[job.scenario]
        assert job.command()[1:] == [
            "-m",
            "benchmarks._canvas_worker",
            job.peer,
            kind,
            "--n",
            str(n),
            "--warmup",
            str(sizes.warmup),
        ]


def test_celery_actors_is_compared_with_celery_prefork_on_the_same_processes():
    assert [s.key for s in SYSTEMS] == ["celery-actors-p2p", "celery-prefork"]
    assert [s.ours for s in SYSTEMS] == [True, False]
    for candidate in SYSTEMS:
        assert system(candidate.key) is candidate
    assert "2 worker processes; --concurrency 10 (the default; async tasks) --prefetch 4" in (
        SYSTEMS[0].setup
    )
    assert "SQLite" in SYSTEMS[0].setup
    assert "--concurrency 2 (child processes), --prefetch-multiplier 4" in SYSTEMS[1].setup


def test_the_canvas_fingerprint_covers_celery_actors():
    assert canvas.SOURCES == ("jumpstarter", "celery_actors")
    assert source_fingerprint(canvas.SOURCES) != source_fingerprint(("jumpstarter",))


def test_a_workload_of_an_unknown_kind_or_no_tasks_is_refused():
    with pytest.raises(ValueError, match="kind"):
        Workload("map", 10)
    with pytest.raises(ValueError, match="n"):
        Workload("chain", 0)


@pytest.mark.parametrize(
    "arguments",
    [
        ["no-such-system", "chord", "--n", "1"],
        ["celery-prefork", "starmap", "--n", "1"],
        ["celery-prefork", "chain", "--n", "0"],
        ["celery-prefork", "chain", "--n", "5", "--warmup", "-1"],
    ],
)
def test_the_worker_rejects_an_unknown_system_or_kind_and_sizes_below_one(arguments, capsys):
    with pytest.raises(SystemExit) as exit_info:
        worker_main(arguments)
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


def _measure_with_results(kind: str, result_of: dict[int, object]) -> dict[str, object]:
    """Measure with a client whose workflows end at once with ``result_of[n]``."""

    def build(kind: str, n: int) -> int:
        return n

    def start(n: int) -> int:
        return n

    def wait(n: int, timeout: float) -> tuple[bool, object]:
        return True, result_of.get(n, n)

    return measure_sync(Workload(kind, 50, warmup=20), build, start, wait, [])


@pytest.mark.parametrize("kind", KINDS)
def test_a_workflow_with_a_wrong_result_is_an_error_not_a_figure(kind):
    assert _measure_with_results(kind, {})["n"] == 50
    with pytest.raises(WrongResult, match=f"a {kind} of 50 tasks ended with 49, not 50"):
        _measure_with_results(kind, {50: 49})
    with pytest.raises(WrongResult, match="of 20 tasks ended with None, not 20"):
        _measure_with_results(kind, {20: None})  # the warm-up is checked too


def test_a_workflow_that_does_not_end_in_time_fails_the_measurement():
    def wait(n: int, timeout: float) -> tuple[bool, object]:
        return (True, n) if n < 50 else (False, None)

    workload = Workload("chain", 50)
    with pytest.raises(PeerFailed, match=f"did not end within {workload.budget:.0f} s"):
        measure_sync(workload, lambda kind, n: n, lambda n: n, wait, [])


def _meta(repeat: int = 2) -> dict[str, object]:
    return {
        "python": "3.11",
        "implementation": "CPython",
        "platform": "Linux x86_64",
        "cpus": 2,
        "versions": {"jumpstarter": "0.1.0", "celery": "5.7.0", "pykka": "4.5.0"},
        "timestamp": "2026-01-01T00:00:00+00:00",
        "commit": "abc1234+dirty",
        "source": "0123456789ab",
        "source_packages": ["jumpstarter", "celery_actors"],
        "sizes": {"chord_small": 1_000, "chord_large": 10_000, "chain": 1_000, "warmup": 100},
        "quick": False,
        "repeat": repeat,
    }


def test_the_report_shows_medians_ratios_targets_and_failures():
    def run(wall_s):
        return {"n": 1_000, "wall_s": wall_s, "submit_s": wall_s / 10}

    results = {
        "celery-actors-p2p": {
            "chord-1000": [run(0.3), run(0.5), run(0.4)],
            "chord-10000": [run(4.0)],
            "chain-1000": [run(1.2)],
        },
        "celery-prefork": {
            "chord-1000": [run(6.0), run(5.0), run(4.0)],
            "chord-10000": [run(80.0)],
        },
    }
    errors = {"celery-prefork": {"chain-1000": "celery-prefork chain: RecursionError: boom"}}
    console = Console(record=True, width=400)
    canvas.render(console, canvas, results, errors, _meta())
    text = console.export_text()
    assert "0.400 s" in text  # the median of three runs
    assert "0.300 to 0.500" in text  # their range
    assert "submit 0.040 s" in text
    assert "12.5x" in text  # 5.0 / 0.4
    assert "✓ chord-1000: 12.5x faster than Celery, prefork pool, target ≥ 10x" in text
    assert "✓ chord-10000: 20.0x faster than Celery, prefork pool, target ≥ 10x" in text
    assert "? chain-1000: no figure to compare with Celery, prefork pool, target ≥ 10x" in text
    assert "failed" in text
    assert "celery-prefork chain-1000 failed: celery-prefork chain: RecursionError: boom" in text
    assert "git abc1234+dirty" in text
    assert "--concurrency 10 (the default; async tasks) --prefetch 4" in text  # setup lines
    assert "pykka" not in text


def test_the_report_marks_a_ratio_below_the_target():
    results = {
        "celery-actors-p2p": {"chain-1000": [{"n": 1_000, "wall_s": 1.0, "submit_s": 0.01}]},
        "celery-prefork": {"chain-1000": [{"n": 1_000, "wall_s": 4.0, "submit_s": 0.01}]},
    }
    console = Console(record=True, width=400)
    canvas.render(console, canvas, results, {}, _meta(repeat=1))
    text = console.export_text()
    assert "✗ chain-1000: 4.0x faster than Celery, prefork pool, target ≥ 10x" in text
    assert "median of 1 run " in text


@pytest.mark.slow
def test_the_quick_run_measures_every_workflow_of_celery_actors():
    # Celery comes with the bench extra, which the test session does not install; this
    # runs the suite's own side for real, through its public entry point.
    command = [sys.executable, "-m", "benchmarks", "canvas", "--quick", "--repeat", "1"]
    command += ["--only", "celery-actors-p2p"]
    # A hang fails through the suite's own budgets (start-up, then each workflow's).
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "failed" not in out, out
    assert "--quick" in out
    saved = ROOT / out.split("results written to ", 1)[1].split()[0]
    try:
        figures = json.loads(saved.read_text())
    finally:
        saved.unlink()
    assert figures["errors"] == {}
    ours = figures["medians"]["celery-actors-p2p"]
    for name, _, n in canvas.scenarios(canvas.QUICK):
        assert ours[name]["n"] == n
        assert ours[name]["wall_s"] > 0
