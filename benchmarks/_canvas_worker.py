"""``python -m benchmarks._canvas_worker SYSTEM KIND --n N``: one measurement of the
``canvas`` suite, printed as one JSON line.

It starts the system's processes, measures, and stops them again. When the system
fails (a worker that does not start, a workflow that does not end in time or ends
with a wrong result), the last line on stderr says why, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback

from ._canvas_measure import KINDS, Workload
from ._canvas_systems import SYSTEMS, system
from ._tasks_services import PeerFailed
from ._tasks_worker import _peer_failure


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._canvas_worker")
    parser.add_argument("system", choices=[s.key for s in SYSTEMS])
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--warmup", type=int, default=0)
    args = parser.parse_args(argv)
    if args.n < 1 or args.warmup < 0:
        parser.error("--n must be at least 1 and --warmup at least 0")
    workload = Workload(args.kind, args.n, args.warmup)
    try:
        figures = system(args.system).run(workload)
    except Exception as exc:
        failure = _peer_failure(exc)
        if failure is None:
            traceback.print_exc()
            failure = PeerFailed(f"{type(exc).__name__}: {exc}")
        print(f"{args.system} {args.kind}: {failure}", file=sys.stderr, flush=True)
        # Skip interpreter teardown: the clients' finalizers would complain about the
        # stopped servers after this line, and the last line is what the report shows.
        os._exit(1)
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
