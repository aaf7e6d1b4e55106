"""Event messages: domain events that several tasks subscribe to.

``@app.event`` declares an event class (an ``attrs`` frozen class) under a name, and
``Event.subscribe(task)`` adds a subscriber. Publishing an event sends ONE
:class:`EventMessage` to the router; the router, which imports the app and so knows
its subscriptions, fans it out: one :class:`TaskCall` per subscriber, with the event's
fields as keyword arguments and the id ``<event id>.<task name>``. Because the ids are
derived from the event's, an event delivered twice runs each subscriber once (the
router keeps one call per id), and because each subscriber is a call of its own, a
subscriber that fails retries on its own without running the others again.
"""

from __future__ import annotations

import inspect
import uuid
from typing import TYPE_CHECKING, Any

import attrs
import trio

from ._errors import value_of
from ._protocol import EventMessage, PublishEvent, TaskCall, TaskResult

if TYPE_CHECKING:
    from ._app import App, AsyncResult, Client, Task

__all__ = [
    "EventResult",
    "check_subscriber",
    "declare_event",
    "event_name_of",
    "fields_of",
    "new_event_message",
    "publish_event",
    "subscriber_calls",
]

_RESERVED = ("subscribe", "delay", "event_name", "subscribers")


def declare_event(app: App, cls: Any, name: str | None) -> Any:
    """Register ``cls`` as an event of ``app`` (see :meth:`App.event`); returns the
    class, made an ``attrs`` frozen class if it was not an ``attrs`` class."""
    if not isinstance(cls, type):
        raise TypeError(f"@app.event decorates a class, not {cls!r}")
    if not attrs.has(cls):
        cls = attrs.frozen(cls)
    event_name = name or f"{cls.__module__}.{cls.__qualname__}"
    clashes = [field.name for field in attrs.fields(cls) if field.name in _RESERVED]
    if clashes:
        raise ValueError(
            f"event {event_name}: the field names {', '.join(clashes)} are taken by the "
            f"event API ({', '.join(_RESERVED)}); rename those fields"
        )
    known = app.events.get(event_name)
    if known is not None and known is not cls:
        raise ValueError(
            f"an event named {event_name!r} is already declared in app {app.name!r}; "
            "give one of them another name with @app.event(name=...)"
        )
    app.events[event_name] = cls
    app.subscriptions.setdefault(event_name, [])

    def subscribe(task: Task[Any, Any]) -> Task[Any, Any]:
        """Run ``task`` for every event of this class (usable as a decorator on a task)."""
        return app.subscribe(cls, task)

    async def delay(**fields: Any) -> EventResult:
        """Publish an event of this class with these fields; see :meth:`App.publish`."""
        try:
            event = cls(**fields)
        except TypeError as exc:
            names = ", ".join(field.name for field in attrs.fields(cls))
            raise TypeError(f"event {event_name} has the fields {names}: {exc}") from None
        return await app.publish(event)

    setattr(cls, "event_name", event_name)  # noqa: B010 - a class attribute, set on the class
    setattr(cls, "subscribe", staticmethod(subscribe))  # noqa: B010
    setattr(cls, "delay", staticmethod(delay))  # noqa: B010
    return cls


def event_name_of(app: App, event: type | object) -> str:
    """The name ``event`` (a class, or an instance) is declared under in ``app``."""
    cls = event if isinstance(event, type) else type(event)
    for name, declared in app.events.items():
        if declared is cls:
            return name
    raise ValueError(
        f"{cls.__qualname__} is not an event of app {app.name!r}: declare it with @app.event"
    )


def check_subscriber(app: App, event: Any, task: Task[Any, Any]) -> None:
    """Raise a clear error if ``task`` cannot take the fields of ``event``."""
    names = [field.name for field in attrs.fields(event)]
    try:
        inspect.signature(task.fn).bind(**dict.fromkeys(names))
    except TypeError as exc:
        raise ValueError(
            f"task {task.name} cannot subscribe to event {event_name_of(app, event)}: it is "
            f"called with the event's fields as keyword arguments ({', '.join(names)}), "
            f"and {exc}; give it parameters named after the fields (or **fields)"
        ) from None


def subscriber_calls(app: App, event: EventMessage) -> list[TaskCall]:
    """The calls that run the subscribers of ``event``, one per task, with ids derived
    from the event's."""
    from ._calls import new_call

    calls = []
    for name in app.subscriptions.get(event.name, ()):
        task = app.tasks.get(name)
        call = new_call(
            name,
            (),
            dict(event.fields),
            task_id=f"{event.id}.{name}",
            queue=task.queue if task is not None else None,
            priority=task.priority if task is not None else None,
        )
        calls.append(attrs.evolve(call, reply_to=event.reply_to))
    return calls


async def publish_event(client: Client, event: EventMessage) -> EventResult:
    """Send ``event`` to the router through ``client``; see :meth:`App.publish`."""
    from ._app import AsyncResult

    route = client.route
    if route is None:
        tasks: list[str] = await client.router.ask(PublishEvent(event))
    else:  # over brokers: to the command queue, like calls; the routers fan it out
        from ._brokers import command_address
        from ._publisher import Publish

        event = attrs.evolve(event, reply_to=route.reply_to)
        await route.publisher.tell(
            Publish(command_address(client.app.name, "default"), event, event.id)
        )
        tasks = list(client.app.subscriptions.get(event.name, ()))
    results = [AsyncResult(f"{event.id}.{task}", task, client) for task in tasks]
    return EventResult(event.id, event.name, results)


def new_event_message(name: str, fields: dict[str, Any], event_id: str | None) -> EventMessage:
    return EventMessage(id=event_id or uuid.uuid4().hex, name=name, fields=fields)


def fields_of(event: object) -> dict[str, Any]:
    """An event's fields, by name (its attrs fields, not recursed)."""
    cls: Any = type(event)
    return {field.name: getattr(event, field.name) for field in attrs.fields(cls)}


@attrs.define(eq=False)
class EventResult:
    """The handle of a published event: one :class:`AsyncResult` per subscriber.

    An event that no task subscribes to has no results: :meth:`get` answers ``{}``.

    Attributes:
        id: the event's id.
        name: the event's name.
        results: the subscribers' calls (their ids are ``<event id>.<task name>``).
    """

    id: str
    name: str
    results: list[AsyncResult]

    @property
    def tasks(self) -> list[str]:
        """The names of the subscribed tasks the event runs."""
        return [result.task for result in self.results]

    async def wait(self, timeout: float | None = None) -> dict[str, TaskResult]:
        """Wait until every subscriber's call is final; their :class:`TaskResult`
        documents by task name (``None``: wait without limit).

        Raises:
            ResultTimeout: they did not all finish in time (they may still finish).
        """
        deadline = None if timeout is None else trio.current_time() + timeout
        documents = {}
        for result in self.results:
            left = None if deadline is None else max(0.0, deadline - trio.current_time())
            documents[result.task] = await result.wait(left)
        return documents

    async def get(self, timeout: float | None = None) -> dict[str, Any]:
        """Wait for every subscriber, and return their values by task name.

        Raises:
            TaskFailed: a subscriber failed for good (after its retries); the others
                ran all the same.
            TaskRevoked: a subscriber's call was revoked.
            ResultTimeout: they did not all finish in time.
        """
        documents = await self.wait(timeout)
        return {task: value_of(document) for task, document in documents.items()}
