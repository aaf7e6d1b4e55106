"""The ``remote`` suite: jumpstarter across two OS processes vs proton's own reactor.

Every measurement runs a server process and a client process on 127.0.0.1, for
both peers, with the same traffic:

1. **tell**: the client sends ``N`` pings to the server's counting actor (or
   handler), settled by the server as they arrive; timed until the server has
   counted them all.
2. **tell_handled**: the same, each settled only once it has been handled
   (jumpstarter's ``settle="after-handled"``: at least once).
3. **ask**: ``N`` sequential request/replies, each timed, after untimed warm-up.
4. **broker**: ``N`` messages published to a fresh RabbitMQ queue, then consumed
   from it (when jumpstarter has a broker client and RabbitMQ answers).

:mod:`benchmarks._remote_jumpstarter` and :mod:`benchmarks._remote_reactor`
implement them; :mod:`benchmarks._remote_server` is the server's entry point.
"""

from __future__ import annotations

from typing import Any

import attrs

from ._runner import Job
from .actors import Row, Target

__all__ = ["FULL", "PEERS", "QUICK", "ROWS", "Sizes", "headings", "plan"]

NAME = "remote"

JUMPSTARTER = "jumpstarter-remote"
REACTOR = "reactor"

PEERS = (JUMPSTARTER, REACTOR)
"""The peer whose figures the targets judge, and the peer it is compared with."""

OTHER = "the reactor"
"""The compared peer, in ratio targets ("≥ 5x the reactor")."""


@attrs.frozen
class Sizes:
    """How big each measurement is."""

    tell: int
    ask: int
    ask_warmup: int
    broker: int


FULL = Sizes(tell=100_000, ask=5_000, ask_warmup=500, broker=100_000)
QUICK = Sizes(tell=10_000, ask=5_000, ask_warmup=500, broker=10_000)


def plan(sizes: Sizes) -> list[Job]:
    """The jobs of one repetition, jumpstarter and the reactor interleaved."""
    jobs: list[Job] = []
    for scenario, n, warmup in (
        ("tell", sizes.tell, 0),
        ("tell_handled", sizes.tell, 0),
        ("ask", sizes.ask, sizes.ask_warmup),
        ("broker", sizes.broker, 0),
    ):
        jobs.append(Job(JUMPSTARTER, scenario, n, warmup))
        jobs.append(Job(REACTOR, scenario, n, warmup))
        if scenario == "ask":
            jobs.append(Job(JUMPSTARTER, "ask_sleeping", n, warmup))
    return jobs


ROWS = (
    Row(
        "tell, settled on arrival",
        "tell",
        "msgs_per_s",
        "msg/s",
        higher_is_better=True,
        target=Target(100_000, "≥ 100,000 msg/s", at_least=True),
        ratio_target=5,
    ),
    Row(
        "tell, settled after handled ¹",
        "tell_handled",
        "msgs_per_s",
        "msg/s",
        higher_is_better=True,
        target=Target(50_000, "≥ 50,000 msg/s", at_least=True),
        ratio_target=5,
        section_end=True,
    ),
    Row(
        "ask round trip p50",
        "ask",
        "p50_us",
        "µs",
        target=Target(150, "≤ 150 µs"),
        ratio_target=5,
    ),
    Row("ask round trip p99", "ask", "p99_us", "µs"),
    Row("ask p50, no polling ³", "ask_sleeping", "p50_us", "µs", other_key="ask"),
    Row("ask p99, no polling ³", "ask_sleeping", "p99_us", "µs", other_key="ask", section_end=True),
    Row(
        "RabbitMQ: publish ²",
        "broker",
        "publish_msgs_per_s",
        "msg/s",
        higher_is_better=True,
        ratio_target=2,
    ),
    Row(
        "RabbitMQ: consume ²",
        "broker",
        "consume_msgs_per_s",
        "msg/s",
        higher_is_better=True,
        ratio_target=2,
    ),
)

NOTES = (
    "Each measurement: a server process and a client process on 127.0.0.1, one AMQP "
    "connection; the client's figures. jumpstarter: ActorSystem + system.ref(amqp://...); "
    "reactor: proton.reactor.Container + MessagingHandler, credit window 1000, one message "
    "per AMQP transfer (jumpstarter may pack several tells into one).",
    "¹ The reactor's server accepts each message in on_message after counting it "
    "(auto_accept=False): it handles messages in the callback that receives them, so "
    "for it both tell rows are the same traffic.",
    "² One fresh /queue/bench-<id> per run: N messages published (each waits for the "
    "broker's outcome; jumpstarter: 500 concurrent publish tasks, the reactor: as fast "
    "as credit allows), then the same N consumed (prefetch 1000; jumpstarter hands each "
    "to an actor with ask and accepts it after the handler returned).",
    "³ jumpstarter with RemoteSettings(busy_poll=0) on both sides: each process sleeps as "
    "soon as it waits, as the reactor's do (by default a process polls up to 500 µs "
    "first); the reactor's figures are its ask's.",
)

FLOOR: tuple[tuple[str, str, str], ...] = ()
"""No machine-floor pass in this suite."""


def headings(meta: dict[str, Any]) -> tuple[str, str, str, str]:
    """The table's title and the headings of the two peers' columns and of the ratio."""
    versions = meta["versions"]
    return (
        f"jumpstarter vs proton's reactor, two processes on 127.0.0.1 — median of "
        f"{meta['repeat']} runs, each in fresh processes",
        f"jumpstarter {versions['jumpstarter']}",
        f"proton {versions['python-qpid-proton']} reactor",
        "jumpstarter vs reactor",
    )


def sizes_line(meta: dict[str, Any]) -> str:
    """What the run measured, in one line under the header."""
    s = meta["sizes"]
    return (
        f"sizes: tell {s['tell']:,} msgs (after 1,000 warm-up) · ask {s['ask']:,} "
        f"(after {s['ask_warmup']:,} warm-up) · RabbitMQ {s['broker']:,} msgs"
        + (" · --quick" if meta["quick"] else "")
    )
