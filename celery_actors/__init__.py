"""Celery rebuilt on jumpstarter's actors: tasks, workers, routers and canvas.

Declare tasks on an :class:`App`, run a router and workers (in one process with
:meth:`App.local`, or in several linked peer-to-peer over AMQP 1.0), and call tasks
with ``await task.delay(...)``; every component is an actor.
"""

from ._app import App as App
from ._app import AsyncResult as AsyncResult
from ._app import Client as Client
from ._app import Task as Task
from ._backlog import Backlog as Backlog
from ._backlog import MemoryBacklog as MemoryBacklog
from ._backlog import SQLiteBacklog as SQLiteBacklog
from ._blocking import BlockingClient as BlockingClient
from ._blocking import BlockingResult as BlockingResult
from ._bootsteps import BootStep as BootStep
from ._bootsteps import BootStepError as BootStepError
from ._bootsteps import BootStepFailed as BootStepFailed
from ._bootsteps import WorkerContext as WorkerContext
from ._calls import CallOptions as CallOptions
from ._canvas import Canvas as Canvas
from ._canvas import Chain as Chain
from ._canvas import Chord as Chord
from ._canvas import Chunks as Chunks
from ._canvas import Fanout as Fanout
from ._canvas import Group as Group
from ._canvas import Signature as Signature
from ._canvas import chain as chain
from ._canvas import chord as chord
from ._canvas import group as group
from ._commands import ClusterStartError as ClusterStartError
from ._commands import DevCluster as DevCluster
from ._commands import open_dev_cluster as open_dev_cluster
from ._control import ControlRefused as ControlRefused
from ._control import WorkerControl as WorkerControl
from ._errors import BlockingCallInTrio as BlockingCallInTrio
from ._errors import BoxedTaskCrashed as BoxedTaskCrashed
from ._errors import CeleryActorsError as CeleryActorsError
from ._errors import NotConnected as NotConnected
from ._errors import ResultTimeout as ResultTimeout
from ._errors import SoftTimeLimitExceeded as SoftTimeLimitExceeded
from ._errors import TaskFailed as TaskFailed
from ._errors import TaskNotRegistered as TaskNotRegistered
from ._errors import TaskRevoked as TaskRevoked
from ._errors import TimeLimitExceeded as TimeLimitExceeded
from ._errors import WorkflowInvalid as WorkflowInvalid
from ._events import EventResult as EventResult
from ._protocol import PROTOCOL_VERSION as PROTOCOL_VERSION
from ._protocol import Document as Document
from ._protocol import EventMessage as EventMessage
from ._protocol import QuarantinedCall as QuarantinedCall
from ._protocol import RouterStats as RouterStats
from ._protocol import TaskCall as TaskCall
from ._protocol import TaskError as TaskError
from ._protocol import TaskResult as TaskResult
from ._protocol import WorkerPong as WorkerPong
from ._protocol import WorkerReport as WorkerReport
from ._protocol import WorkerStats as WorkerStats
from ._publisher import PublisherStatus as PublisherStatus
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
from ._sources import BrokerQueueSource as BrokerQueueSource
from ._sources import DirectorySource as DirectorySource
from ._sources import DocumentRejected as DocumentRejected
from ._sources import Source as Source
from ._sources import SourceFeed as SourceFeed
from ._sources import SourceRef as SourceRef
from ._sources import SourceStats as SourceStats
from ._sources import WebhookSource as WebhookSource
from ._worker import TASK_STATES as TASK_STATES
from ._workflow import Workflow as Workflow
from ._workflow_messages import MemberStatus as MemberStatus
from ._workflow_messages import WorkflowStatus as WorkflowStatus
from ._workflow_result import WorkflowResult as WorkflowResult
from ._workflow_store import MemoryWorkflowStore as MemoryWorkflowStore
from ._workflow_store import SQLiteWorkflowStore as SQLiteWorkflowStore
from ._workflow_store import StoredWorkflow as StoredWorkflow
from ._workflow_store import WorkflowStore as WorkflowStore
from ._workflow_store import WorkflowStoreError as WorkflowStoreError

__all__ = [
    "DEFAULT_RETRY_POLICY",
    "NO_RETRY",
    "PROTOCOL_VERSION",
    "TASK_STATES",
    "App",
    "AsyncResult",
    "Backlog",
    "BlockingCallInTrio",
    "BlockingClient",
    "BlockingResult",
    "BootStep",
    "BootStepError",
    "BootStepFailed",
    "BoxedTaskCrashed",
    "BrokerQueueSource",
    "CallOptions",
    "Canvas",
    "CeleryActorsError",
    "Chain",
    "Chord",
    "Chunks",
    "Client",
    "ClusterStartError",
    "ControlRefused",
    "DevCluster",
    "DirectorySource",
    "Document",
    "DocumentRejected",
    "EventMessage",
    "EventResult",
    "Fanout",
    "Group",
    "JsonLinesSink",
    "MemberStatus",
    "MemoryBacklog",
    "MemorySink",
    "MemoryWorkflowStore",
    "NotConnected",
    "PublisherStatus",
    "QuarantinedCall",
    "ResultTimeout",
    "RetryPolicy",
    "RouterStats",
    "SQLiteBacklog",
    "SQLiteSink",
    "SQLiteWorkflowStore",
    "Signature",
    "Sink",
    "SinkError",
    "SoftTimeLimitExceeded",
    "Source",
    "SourceFeed",
    "SourceRef",
    "SourceStats",
    "StoredWorkflow",
    "Task",
    "TaskCall",
    "TaskError",
    "TaskFailed",
    "TaskNotRegistered",
    "TaskResult",
    "TaskRevoked",
    "TimeLimitExceeded",
    "WebhookSource",
    "WorkerContext",
    "WorkerControl",
    "WorkerPong",
    "WorkerReport",
    "WorkerStats",
    "Workflow",
    "WorkflowInvalid",
    "WorkflowResult",
    "WorkflowStatus",
    "WorkflowStore",
    "WorkflowStoreError",
    "chain",
    "chord",
    "group",
    "open_dev_cluster",
    "optional",
    "poisonous",
    "retry",
]
