"""Jumpstarter: a trio-native actor runtime.

Actors are subclasses of :class:`Actor` that handle messages one at a time;
outside code holds :class:`ActorRef` values and talks to actors with ``tell`` and
``ask``. An :class:`ActorSystem` runs them inside a trio nursery, supervises
them, and shuts them down gracefully.
"""

from ._actor import Actor as Actor
from ._actor import ChildSpec as ChildSpec
from ._actor import handler as handler
from ._actor import resource as resource
from ._amqp import Accepted as Accepted
from ._amqp import Keyring as Keyring
from ._amqp import MessageTooLarge as MessageTooLarge
from ._amqp import Modified as Modified
from ._amqp import Outcome as Outcome
from ._amqp import Rejected as Rejected
from ._amqp import Released as Released
from ._amqp import TLSConfig as TLSConfig
from ._amqp import TypeRegistry as TypeRegistry
from ._amqp import UnknownMessageType as UnknownMessageType
from ._broker import AddressRefused as AddressRefused
from ._broker import Broker as Broker
from ._broker import BrokerConnectionError as BrokerConnectionError
from ._broker import BrokerError as BrokerError
from ._broker import BrokerSettings as BrokerSettings
from ._broker import Consumer as Consumer
from ._broker import ConsumerStatistics as ConsumerStatistics
from ._broker import ForeignMessage as ForeignMessage
from ._broker import PublishRefused as PublishRefused
from ._broker import RejectDelivery as RejectDelivery
from ._broker import open_broker as open_broker
from ._exceptions import ActorCrashed as ActorCrashed
from ._exceptions import ActorNotFound as ActorNotFound
from ._exceptions import ActorStartError as ActorStartError
from ._exceptions import ActorStopped as ActorStopped
from ._exceptions import AskTimeout as AskTimeout
from ._exceptions import DependencyCycle as DependencyCycle
from ._exceptions import DependencyError as DependencyError
from ._exceptions import IllegalTransition as IllegalTransition
from ._exceptions import InvalidActorPath as InvalidActorPath
from ._exceptions import JumpstarterError as JumpstarterError
from ._exceptions import MailboxFull as MailboxFull
from ._exceptions import MessageRefused as MessageRefused
from ._exceptions import PeerUnreachable as PeerUnreachable
from ._exceptions import RemoteError as RemoteError
from ._exceptions import SystemNotRunning as SystemNotRunning
from ._exceptions import UnhandledMessage as UnhandledMessage
from ._lifecycle import LIFECYCLE as LIFECYCLE
from ._lifecycle import Health as Health
from ._logging import disable_logging as disable_logging
from ._logging import enable_logging as enable_logging
from ._logging import logging_enabled as logging_enabled
from ._messages import DeadLetter as DeadLetter
from ._messages import HealthChanged as HealthChanged
from ._messages import PendingReply as PendingReply
from ._messages import Terminated as Terminated
from ._node import InsecureNodeWarning as InsecureNodeWarning
from ._node import InspectRequest as InspectRequest
from ._node import RemoteSettings as RemoteSettings
from ._ref import ActorRef as ActorRef
from ._runplan import Runnable as Runnable
from ._runplan import RunPlan as RunPlan
from ._statemachine import MachineState as MachineState
from ._statemachine import State as State
from ._statemachine import StateMachine as StateMachine
from ._statemachine import Transition as Transition
from ._supervision import Backoff as Backoff
from ._supervision import Directive as Directive
from ._supervision import OneForAll as OneForAll
from ._supervision import OneForOne as OneForOne
from ._supervision import RestForOne as RestForOne
from ._supervision import SupervisorStrategy as SupervisorStrategy
from ._system import ActorStatistics as ActorStatistics
from ._system import ActorSystem as ActorSystem
from ._system import DeadLetters as DeadLetters
from ._system import SubscribeDeadLetters as SubscribeDeadLetters
from ._system import SystemStatistics as SystemStatistics
from ._system import UnsubscribeDeadLetters as UnsubscribeDeadLetters

__version__ = "0.1.0"

__all__ = [
    "LIFECYCLE",
    "Accepted",
    "Actor",
    "ActorCrashed",
    "ActorNotFound",
    "ActorRef",
    "ActorStartError",
    "ActorStatistics",
    "ActorStopped",
    "ActorSystem",
    "AddressRefused",
    "AskTimeout",
    "Backoff",
    "Broker",
    "BrokerConnectionError",
    "BrokerError",
    "BrokerSettings",
    "ChildSpec",
    "Consumer",
    "ConsumerStatistics",
    "DeadLetter",
    "DeadLetters",
    "DependencyCycle",
    "DependencyError",
    "Directive",
    "ForeignMessage",
    "Health",
    "HealthChanged",
    "IllegalTransition",
    "InsecureNodeWarning",
    "InspectRequest",
    "InvalidActorPath",
    "JumpstarterError",
    "Keyring",
    "MachineState",
    "MailboxFull",
    "MessageRefused",
    "MessageTooLarge",
    "Modified",
    "OneForAll",
    "OneForOne",
    "Outcome",
    "PeerUnreachable",
    "PendingReply",
    "PublishRefused",
    "RejectDelivery",
    "Rejected",
    "Released",
    "RemoteError",
    "RemoteSettings",
    "RestForOne",
    "RunPlan",
    "Runnable",
    "State",
    "StateMachine",
    "SubscribeDeadLetters",
    "SupervisorStrategy",
    "SystemNotRunning",
    "SystemStatistics",
    "TLSConfig",
    "Terminated",
    "Transition",
    "TypeRegistry",
    "UnhandledMessage",
    "UnknownMessageType",
    "UnsubscribeDeadLetters",
    "disable_logging",
    "enable_logging",
    "handler",
    "logging_enabled",
    "open_broker",
    "resource",
]
