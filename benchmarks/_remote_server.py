"""The server process of a remote measurement.

Started by the client (see :func:`benchmarks._remote_common.server`)::

    python -m benchmarks._remote_server jumpstarter-remote tell
    python -m benchmarks._remote_server reactor tell_handled --profile server.prof

It listens on 127.0.0.1, prints its port on one line, and serves until SIGTERM.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib

SERVERS = {
    "jumpstarter-remote": "benchmarks._remote_jumpstarter",
    "reactor": "benchmarks._remote_reactor",
}
"""Peer name -> the module whose ``serve(mode)`` runs its server."""

MODES = ("tell", "tell_handled", "ask", "ask_sleeping")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._remote_server")
    parser.add_argument("peer", choices=sorted(SERVERS))
    parser.add_argument("mode", choices=MODES)
    parser.add_argument(
        "--profile", metavar="PATH", help="run under cProfile and write its stats to PATH"
    )
    args = parser.parse_args(argv)
    serve = importlib.import_module(SERVERS[args.peer]).serve
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(serve, args.mode)
        profiler.dump_stats(args.profile)
    else:
        serve(args.mode)


if __name__ == "__main__":
    main()
