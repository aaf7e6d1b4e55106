"""Benchmarks of jumpstarter, measured side by side with a peer doing the same work.

Run ``python -m benchmarks [actors|remote]`` (see ``benchmarks/README.md``). The
orchestrator in :mod:`benchmarks.__main__` runs every measurement in a fresh
subprocess (:mod:`benchmarks._worker`), several times, and prints the medians with
:mod:`benchmarks._report`. Each *suite* declares what to run and how to show it:
:mod:`benchmarks.actors` (one process, against Pykka's ``ThreadingActor``) and
:mod:`benchmarks.remote` (two processes over AMQP 1.0, against proton's reactor).
Each *peer* (:mod:`benchmarks._jumpstarter_peer`, :mod:`benchmarks._pykka_peer`,
:mod:`benchmarks._remote_jumpstarter`, :mod:`benchmarks._remote_reactor`)
implements the measurements for one runtime.

This is a measuring tool: nothing here asserts on timings.
"""
