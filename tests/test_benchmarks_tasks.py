"""The ``tasks`` benchmark suite is complete and reports what it measured; one small
measurement of celery_actors through RabbitMQ runs for real."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from rich.console import Console

from benchmarks import tasks
from benchmarks.__main__ import SUITES, source_fingerprint
from benchmarks._runner import ROOT
from benchmarks._tasks_measure import SCENARIOS
from benchmarks._tasks_systems import BROKER_TARGETS, P2P_TARGETS, SYSTEMS, system
from benchmarks._tasks_worker import main as worker_main


def test_the_tasks_suite_is_registered_on_the_command_line():
    assert SUITES["tasks"] is tasks


@pytest.mark.parametrize("sizes", [tasks.FULL, tasks.QUICK])
def test_every_system_is_planned_once_for_every_scenario(sizes):
    jobs = tasks.plan(sizes)
    planned = sorted((job.peer, job.scenario) for job in jobs)
    assert planned == sorted((s.key, scenario) for s in SYSTEMS for scenario in SCENARIOS)
    for job in jobs:
        command = job.command()
        assert command[1:5] == ["-m", "benchmarks._tasks_worker", job.peer, job.scenario]
        expected = sizes.throughput if job.scenario == "throughput" else sizes.roundtrip
        assert job.n == expected


def test_the_full_sizes_are_those_of_the_issue():
    assert (tasks.FULL.throughput, tasks.FULL.roundtrip) == (20_000, 1_000)


def test_systems_have_unique_keys_a_scenario_function_and_celery_actors_ones_targets():
    keys = [s.key for s in SYSTEMS]
    assert len(set(keys)) == len(keys)
    assert {
        "celery-actors-p2p",
        "celery-actors-rabbitmq",
        "celery-prefork",
        "celery-threads",
        "dramatiq",
    } <= set(keys)
    for candidate in SYSTEMS:
        assert callable(candidate.run)
        assert system(candidate.key) is candidate
        assert (candidate.targets is not None) == candidate.ours
    assert SYSTEMS[0].ours


def test_celery_actors_through_rabbitmq_is_ours_with_the_broker_targets():
    assert system("celery-actors-p2p").targets == P2P_TARGETS
    broker = system("celery-actors-rabbitmq")
    assert broker.ours
    assert broker.targets == BROKER_TARGETS
    assert (BROKER_TARGETS.tasks_per_s, BROKER_TARGETS.p50_ms) == (5_000, 1.0)
    assert [s.key for s in SYSTEMS if s.ours] == ["celery-actors-p2p", "celery-actors-rabbitmq"]


def test_the_tasks_fingerprint_covers_celery_actors_and_the_other_suites_only_jumpstarter():
    assert tasks.SOURCES == ("jumpstarter", "celery_actors")
    assert all(
        not hasattr(suite, "SOURCES")
        for name, suite in SUITES.items()
        if name in ("actors", "remote")
    )
    jumpstarter_only = source_fingerprint()
    assert source_fingerprint(("jumpstarter",)) == jumpstarter_only
    assert source_fingerprint(tasks.SOURCES) != jumpstarter_only


def _queue_exists(name: str) -> bool:
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "name"], capture_output=True, text=True, check=True
    )
    return name in listed.stdout.split()


@pytest.mark.slow
def test_a_measurement_through_rabbitmq_gets_every_result_and_leaves_no_queue_behind():
    command = [
        sys.executable,
        "-m",
        "benchmarks._tasks_worker",
        "celery-actors-rabbitmq",
        "throughput",
        "--n",
        "200",
        "--warmup",
        "5",
        "--in-flight",
        "20",
    ]
    # A hang fails through the suite's own budgets (start-up, then the measurement's).
    with subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as worker:
        out, err = worker.communicate()
    assert worker.returncode == 0, err
    figures = json.loads(out.strip().splitlines()[-1])
    assert figures["n"] == 200
    assert figures["in_flight"] == 20
    assert figures["tasks_per_s"] > 0
    # The app, and so its queue, is named after the measurement's process.
    assert not _queue_exists(f"bench-tasks-{worker.pid}.default")


def test_the_worker_rejects_an_unknown_system():
    with pytest.raises(SystemExit) as exit_info:
        worker_main(["no-such-system", "throughput", "--n", "1"])
    assert exit_info.value.code == 2


def _meta():
    return {
        "python": "3.11",
        "implementation": "CPython",
        "platform": "Linux x86_64",
        "cpus": 2,
        "versions": {"jumpstarter": "0.1.0", "celery": "5.7.0", "pykka": "4.5.0"},
        "timestamp": "2026-01-01T00:00:00+00:00",
        "commit": "abc1234",
        "source": "0123456789ab",
        "source_packages": ["jumpstarter", "celery_actors"],
        "sizes": {"throughput": 20_000, "roundtrip": 1_000, "warmup": 200, "in_flight": 300},
        "quick": False,
        "repeat": 2,
    }


def test_the_report_shows_medians_ratios_targets_and_failures():
    def throughput(rate):
        return {"n": 20_000, "tasks_per_s": rate, "publish_s": 1.0, "drain_s": 2.0}

    def roundtrip(p50_us):
        return {"n": 1_000, "p50_us": p50_us, "p99_us": 2 * p50_us}

    results = {
        "celery-actors-p2p": {
            "throughput": [throughput(21_000), throughput(25_000)],
            "roundtrip": [roundtrip(400), roundtrip(600)],
        },
        "celery-actors-rabbitmq": {
            "throughput": [throughput(5_500), throughput(6_500)],
            "roundtrip": [roundtrip(1_200), roundtrip(1_400)],
        },
        "celery-prefork": {
            "throughput": [throughput(1_000), throughput(1_200)],
            "roundtrip": [roundtrip(3_000), roundtrip(3_400)],
        },
    }
    errors = {"dramatiq": {"throughput": "dramatiq worker exited with status 1: boom"}}
    console = Console(record=True, width=400)
    tasks.render(console, tasks, results, errors, _meta())
    text = console.export_text()
    assert "23,000 tasks/s" in text  # the median of the two runs
    assert "21,000 to 25,000" in text  # the range of the runs
    assert "0.500 ms" in text
    assert "20.9x better" in text  # 23,000 / 1,100
    assert "6.4x better" in text  # 3.2 ms / 0.5 ms
    assert "✓ celery_actors, peer-to-peer: 23,000 tasks/s, target ≥ 20,000 tasks/s" in text
    assert "✓ celery_actors, peer-to-peer: 0.500 ms, target p50 ≤ 0.5 ms" in text
    assert "✓ celery_actors, through RabbitMQ: 6,000 tasks/s, target ≥ 5,000 tasks/s" in text
    assert "✗ celery_actors, through RabbitMQ: 1.300 ms, target p50 ≤ 1 ms" in text
    assert "5.5x better" in text  # 6,000 / 1,100: the broker system's ratio column
    assert "2.5x better" in text  # 3.2 ms / 1.3 ms
    assert "jumpstarter + celery_actors sources 0123456789ab" in text
    assert "failed" in text
    assert "dramatiq throughput failed: dramatiq worker exited with status 1: boom" in text
    assert "pykka" not in text
