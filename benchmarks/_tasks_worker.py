"""``python -m benchmarks._tasks_worker SYSTEM SCENARIO --n N``: one measurement of the
``tasks`` suite, printed as one JSON line.

It starts the system's processes, measures, and stops them again. When the system
fails (a worker that does not start, results that do not come), the last line on
stderr says why, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback

from ._tasks_measure import SCENARIOS, Scenario
from ._tasks_services import PeerFailed
from ._tasks_systems import SYSTEMS, system


def _peer_failure(exc: BaseException) -> PeerFailed | None:
    """The :class:`PeerFailed` in ``exc``, also inside exception groups."""
    if isinstance(exc, PeerFailed):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _peer_failure(inner)
            if found is not None:
                return found
    return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._tasks_worker")
    parser.add_argument("system", choices=[s.key for s in SYSTEMS])
    parser.add_argument("scenario", choices=SCENARIOS)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--warmup", type=int, default=0)
    parser.add_argument("--in-flight", type=int, default=1)
    args = parser.parse_args(argv)
    scenario = Scenario(args.scenario, args.n, args.warmup, args.in_flight)
    try:
        figures = system(args.system).run(scenario)
    except Exception as exc:
        failure = _peer_failure(exc)
        if failure is None:
            traceback.print_exc()
            failure = PeerFailed(f"{type(exc).__name__}: {exc}")
        print(f"{args.system} {args.scenario}: {failure}", file=sys.stderr, flush=True)
        # Skip interpreter teardown: the clients' finalizers would complain about the
        # stopped servers after this line, and the last line is what the report shows.
        os._exit(1)
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
