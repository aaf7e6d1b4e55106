"""Celery rebuilt on jumpstarter's actors: tasks, workers, routers and canvas.

Declare tasks on an :class:`App`, run a router and workers (in one process with
:meth:`App.local`, or in several linked peer-to-peer over AMQP 1.0), and call tasks
with ``await task.delay(...)``; every component is an actor.
"""

from ._app import App as App
from ._app import AsyncResult as AsyncResult
from ._app import Client as Client
from ._app import Task as Task
from ._errors import CeleryActorsError as CeleryActorsError
from ._errors import NotConnected as NotConnected
from ._errors import ResultTimeout as ResultTimeout
from ._errors import TaskFailed as TaskFailed
from ._errors import TaskNotRegistered as TaskNotRegistered
from ._errors import TaskRevoked as TaskRevoked
from ._errors import TimeLimitExceeded as TimeLimitExceeded
from ._protocol import PROTOCOL_VERSION as PROTOCOL_VERSION
from ._protocol import TaskCall as TaskCall
from ._protocol import TaskError as TaskError
from ._protocol import TaskResult as TaskResult
from ._retry import DEFAULT_RETRY_POLICY as DEFAULT_RETRY_POLICY
from ._retry import NO_RETRY as NO_RETRY
from ._retry import RetryPolicy as RetryPolicy
from ._retry import optional as optional
from ._retry import poisonous as poisonous
from ._retry import retry as retry
from ._sinks import JsonLinesSink as JsonLinesSink
from ._sinks import MemorySink as MemorySink
from ._sinks import Sink as Sink
from ._sinks import SinkError as SinkError
from ._sinks import SQLiteSink as SQLiteSink
from ._worker import TASK_STATES as TASK_STATES

__all__ = [
    "DEFAULT_RETRY_POLICY",
    "NO_RETRY",
    "PROTOCOL_VERSION",
    "TASK_STATES",
    "App",
    "AsyncResult",
    "CeleryActorsError",
    "Client",
    "JsonLinesSink",
    "MemorySink",
    "NotConnected",
    "ResultTimeout",
    "RetryPolicy",
    "SQLiteSink",
    "Sink",
    "SinkError",
    "Task",
    "TaskCall",
    "TaskError",
    "TaskFailed",
    "TaskNotRegistered",
    "TaskResult",
    "TaskRevoked",
    "TimeLimitExceeded",
    "optional",
    "poisonous",
    "retry",
]
