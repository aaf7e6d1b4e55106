"""The lifecycle every actor goes through, declared as a table.

::

    initializing → initialized → starting ─┬─ dependencies_started
                                           ├─ resources_acquired
                                           └─ tasks_started
        → started ─┬─ running ─┬─ healthy | degraded | unhealthy
                   └─ paused
        → stopping ─┬─ tasks_stopped
                    ├─ resources_released
                    └─ dependencies_stopped
        → stopped

    crashed ← (any live state);  crashed → restarting → initialized → ...
                                 crashed → started.running   (resumed)

The runtime fires these triggers; actors only report their health, through
:meth:`jumpstarter.Actor.report_health`.
"""

from __future__ import annotations

import enum
from typing import Final

from ._statemachine import State, StateMachine

__all__ = ["LIFECYCLE", "Health"]


class Health(enum.Enum):
    """How well a running actor is doing; set by the actor or by its health check."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"


_LIVE = ("initializing", "initialized", "starting", "started", "restarting")

LIFECYCLE: Final = StateMachine(
    name="lifecycle",
    initial="initializing",
    states=[
        "initializing",
        "initialized",
        State("starting", ("dependencies_started", "resources_acquired", "tasks_started")),
        State(
            "started",
            (State("running", ("healthy", "degraded", "unhealthy"), initial="healthy"), "paused"),
            initial="running",
        ),
        State("stopping", ("tasks_stopped", "resources_released", "dependencies_stopped")),
        "stopped",
        "crashed",
        "restarting",
    ],
    transitions=[
        ("initialize", "initializing", "initialized"),
        ("dependencies_started", "initialized", "starting.dependencies_started"),
        ("resources_acquired", "starting.dependencies_started", "starting.resources_acquired"),
        ("tasks_started", "starting.resources_acquired", "starting.tasks_started"),
        ("start", "starting.tasks_started", "started"),
        ("report_healthy", "started.running", "started.running.healthy"),
        ("report_degraded", "started.running", "started.running.degraded"),
        ("report_unhealthy", "started.running", "started.running.unhealthy"),
        ("pause", "started.running", "started.paused"),
        ("resume", "started.paused", "started.running"),
        (
            "stop",
            ("initialized", "starting", "started", "crashed", "restarting"),
            "stopping.tasks_stopped",
        ),
        ("resources_released", "stopping.tasks_stopped", "stopping.resources_released"),
        ("dependencies_stopped", "stopping.resources_released", "stopping.dependencies_stopped"),
        ("finish", "stopping.dependencies_stopped", "stopped"),
        ("crash", _LIVE, "crashed"),
        ("restart", ("crashed", "initialized", "starting", "started"), "restarting"),
        ("reinitialize", "restarting", "initialized"),
        ("recover", "crashed", "started.running"),
    ],
)

RUNNING_STATES: Final = frozenset(s for s in LIFECYCLE.leaves if s.startswith("started.running"))
