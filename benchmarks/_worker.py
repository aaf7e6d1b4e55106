"""Run one measurement of one peer and print its figures as one JSON line.

Started by the orchestrator in a fresh interpreter for every measurement, so
that memory, GC state and threads never leak from one measurement to the next::

    python -m benchmarks._worker jumpstarter tell --n 200000
    python -m benchmarks._worker pykka spawn --n 2000 --tracemalloc
    python -m benchmarks._worker jumpstarter spawn --n 100000 --profile spawn.prof
    python -m benchmarks._worker jumpstarter-remote tell --n 100000 \
        --profile client.prof --server-profile server.prof

The remote peers (``jumpstarter-remote``, ``reactor``) start their server process
themselves (:mod:`benchmarks._remote_server`); ``--server-profile`` profiles it.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import json
import os
import platform
import sys
import tracemalloc

PEERS = {
    "jumpstarter": "benchmarks._jumpstarter_peer",
    "pykka": "benchmarks._pykka_peer",
    "floor": "benchmarks._floor",
    "jumpstarter-remote": "benchmarks._remote_jumpstarter",
    "reactor": "benchmarks._remote_reactor",
}
"""Peer name -> the module whose ``SCENARIOS`` implement its measurements."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._worker")
    parser.add_argument("peer", choices=sorted(PEERS))
    parser.add_argument("scenario")
    parser.add_argument("--n", type=int, required=True, help="how many messages or actors")
    parser.add_argument("--warmup", type=int, default=0, help="untimed asks before timing")
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="trace Python allocations (slows everything down)",
    )
    parser.add_argument(
        "--profile",
        metavar="PATH",
        help="run under cProfile and write its stats to PATH (figures inflate)",
    )
    parser.add_argument(
        "--server-profile",
        metavar="PATH",
        help="remote peers: run the server process under cProfile, its stats to PATH",
    )
    args = parser.parse_args(argv)

    peer = importlib.import_module(PEERS[args.peer])
    try:
        measure = peer.SCENARIOS[args.scenario]
    except KeyError:
        parser.error(f"{args.peer} has no scenario {args.scenario!r}")
    if args.server_profile:
        from ._remote_common import SERVER_PROFILE_ENV

        os.environ[SERVER_PROFILE_ENV] = os.path.abspath(args.server_profile)
    if args.tracemalloc:
        tracemalloc.start()
    if args.profile:
        profiler = cProfile.Profile()
        figures = profiler.runcall(measure, args.n, args.warmup)
        profiler.dump_stats(args.profile)
    else:
        figures = measure(args.n, args.warmup)
    figures["python"] = platform.python_version()
    json.dump(figures, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
