"""How ``jumpstart run`` runs an application object rather than a plain factory."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import attrs

if TYPE_CHECKING:
    from ._amqp import TypeRegistry
    from ._node import RemoteSettings
    from ._system import ActorSystem

__all__ = ["RunPlan", "Runnable"]


@attrs.frozen(kw_only=True)
class RunPlan:
    """What ``jumpstart run`` starts for an application: a system and a factory.

    Attributes:
        factory: ``async def factory(system)``, called once the system runs.
        name: the system's name.
        listen: ``HOST:PORT`` to accept connections on, or ``None``.
        registry: the message classes that travel between nodes.
        remote: network settings; ``None`` for the defaults (or the command line's).

    The command line's ``--name`` and ``--listen`` win over the plan's.
    """

    factory: Callable[[ActorSystem], Awaitable[object]]
    name: str
    listen: str | None = None
    registry: TypeRegistry | None = None
    remote: RemoteSettings | None = None


@runtime_checkable
class Runnable(Protocol):
    """An object ``jumpstart run MODULE:OBJECT`` can run besides a factory.

    The options ``jumpstart run`` does not know itself (``--role worker``, say) are
    passed to :meth:`jumpstart_plan`, which parses them and says what to run; it
    raises :class:`click.UsageError` for options it does not know either.
    """

    def jumpstart_plan(self, options: Sequence[str]) -> RunPlan:
        """The system and factory to run, given the extra command-line options."""
        ...
