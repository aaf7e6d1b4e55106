"""Benchmarks of jumpstarter, measured side by side with Pykka's ``ThreadingActor``.

Run ``python -m benchmarks`` (see ``benchmarks/README.md``). The orchestrator in
:mod:`benchmarks.__main__` runs every measurement in a fresh subprocess
(:mod:`benchmarks._worker`), several times, and prints the medians with
:mod:`benchmarks._report`. Each *suite* (today only :mod:`benchmarks.actors`)
declares what to run and how to show it; each *peer*
(:mod:`benchmarks._jumpstarter_peer`, :mod:`benchmarks._pykka_peer`) implements
the measurements for one runtime.

This is a measuring tool: nothing here asserts on timings.
"""
