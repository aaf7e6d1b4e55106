"""``python -m benchmarks [actors|remote|tasks|canvas] [--quick]``: run a suite, print the table.

Every measurement runs in a fresh subprocess, ``--repeat`` times (3 by
default), jumpstarter and its peer (Pykka for ``actors``, proton's reactor for
``remote``; Celery and Dramatiq, against celery_actors, for ``tasks``; Celery's
chords and chains, against celery_actors' workflows, for ``canvas``) interleaved
so that a noisy neighbour hurts both alike; the table shows the medians.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib.metadata
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import attrs
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from . import actors, canvas, remote, tasks
from ._report import Errors, Results, render, save_json
from ._runner import ROOT, JobFailed, run_job

SUITES = {
    actors.NAME: actors,
    remote.NAME: remote,
    tasks.NAME: tasks,
    canvas.NAME: canvas,
}
RESULTS_DIR = ROOT / "benchmarks" / "results"


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "?"


SOURCES = ("jumpstarter",)
"""The packages a suite measures, unless it names its own (its ``SOURCES``)."""


def source_fingerprint(packages: Sequence[str] = SOURCES) -> str:
    """A short hash of the packages' sources: which code a run measured (no commits needed)."""
    digest = hashlib.sha256()
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            digest.update(path.relative_to(ROOT).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _git_commit() -> str:
    """The checked-out commit, marked ``+dirty`` when files differ from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return head + ("+dirty" if dirty.strip() else "")


def _jumpstarter_version() -> str:
    sys.path.insert(0, str(ROOT))
    import jumpstarter

    return jumpstarter.__version__


def _meta(args: argparse.Namespace, sizes: Any, packages: Sequence[str]) -> dict[str, Any]:
    return {
        "timestamp": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": f"{platform.system()} {platform.machine()}",
        "cpus": os.cpu_count(),
        "repeat": args.repeat,
        "quick": args.quick,
        "sizes": attrs.asdict(sizes),
        "commit": _git_commit(),
        "source": source_fingerprint(packages),
        "source_packages": list(packages),
        "versions": {
            "jumpstarter": _jumpstarter_version(),
            "pykka": _version("pykka"),
            "trio": _version("trio"),
            "attrs": _version("attrs"),
            "python-qpid-proton": _version("python-qpid-proton"),
        },
    }


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("suite", nargs="?", default=actors.NAME, choices=sorted(SUITES))
    parser.add_argument(
        "--quick", action="store_true", help="about a tenth of the sizes, for a fast look"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        metavar="N",
        help="runs of each measurement; the table shows medians (default 3)",
    )
    parser.add_argument(
        "--only",
        default="",
        metavar="SCENARIOS",
        help="comma-separated scenarios (or peers) to run, e.g. tell,ask (default all)",
    )
    parser.add_argument(
        "--no-save",
        action="store_true",
        help=f"do not write JSON results to {RESULTS_DIR.relative_to(ROOT)}/",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    suite = SUITES[args.suite]
    sizes = suite.QUICK if args.quick else suite.FULL
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    jobs = [
        job
        for job in suite.plan(sizes)
        if not only
        or job.peer == "floor"  # cheap, and the context of every other figure
        or job.scenario in only
        or job.scenario.split("_")[0] in only
        or job.peer in only
    ]
    packages: Sequence[str] = getattr(suite, "SOURCES", SOURCES)
    meta = _meta(args, sizes, packages)
    for distribution in getattr(suite, "DISTRIBUTIONS", ()):
        meta["versions"][distribution] = _version(distribution)
    console = Console() if sys.stdout.isatty() else Console(width=150)
    results: Results = {}
    errors: Errors = {}
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    with progress:
        task = progress.add_task("starting", total=len(jobs) * args.repeat)
        for repetition in range(1, args.repeat + 1):
            for job in jobs:
                progress.update(
                    task,
                    description=f"run {repetition}/{args.repeat}: {job.peer} {job.key} ({job.n:,})",
                )
                if job.key not in errors.get(job.peer, {}):
                    try:
                        figures = run_job(job)
                    except JobFailed as exc:
                        errors.setdefault(job.peer, {})[job.key] = str(exc)
                    else:
                        results.setdefault(job.peer, {}).setdefault(job.key, []).append(figures)
                progress.advance(task)
    getattr(suite, "render", render)(console, suite, results, errors, meta)
    if source_fingerprint(packages) != meta["source"]:
        console.print(
            Text(
                f"warning: the sources of {' and '.join(packages)} changed during the run; "
                "the figures may mix two versions",
                style="bold yellow",
            )
        )
    if not args.no_save:
        path = save_json(RESULTS_DIR, args.suite, results, errors, meta)
        console.print(Text(f"results written to {path.relative_to(ROOT)}", style="dim"))


if __name__ == "__main__":
    main()
