"""The ``jumpstart`` command line: run an actor system, talk to remote actors, draw a
state machine, make development certificates.

The commands are a thin shell over the functions of this module, which can be
used on their own:

* :func:`load_object` imports ``MODULE:ATTRIBUTE`` (the current directory comes
  first on ``sys.path``, as with ``python -m``);
* :func:`load_factory` checks that the object is an async factory
  ``async def main(system: ActorSystem) -> None``;
* :func:`run_system` runs a factory in a system until every top-level actor has
  stopped, shutting down gracefully on SIGINT or SIGTERM;
* :func:`state_machines` lists the state machines of an :class:`Actor` subclass;
* :func:`load_plugins` finds the commands other packages add to ``jumpstart`` (the
  entry-point group :data:`PLUGIN_GROUP`).

Examples::

    jumpstart run examples.hello:main
    jumpstart run myapp.main:main --name shop --shutdown-timeout 30 --log stderr
    jumpstart run examples.bank:serve --listen 127.0.0.1:5700
    jumpstart ask amqp://127.0.0.1:5700/bank/user/teller bank.Deposit '{"account": "a", "cents": 5}'
    jumpstart inspect amqp://127.0.0.1:5700/bank
    jumpstart graph examples.hello:Door --list
    jumpstart graph examples.hello:Door --machine position -o door.svg
    jumpstart graph examples.hello:Door -o lifecycle.mmd
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import inspect
import json
import os
import signal
import subprocess
import sys
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn

import attrs
import click
import trio

from . import __version__
from ._actor import Actor
from ._amqp import Keyring, TLSConfig, TypeRegistry
from ._exceptions import InvalidActorPath, JumpstarterError
from ._lifecycle import LIFECYCLE
from ._logging import disable_logging, enable_logging
from ._node import InspectRequest, RemoteSettings
from ._runplan import Runnable
from ._statemachine import StateMachine
from ._system import ActorSystem

__all__ = [
    "DRAW_SUFFIXES",
    "PLUGIN_GROUP",
    "Factory",
    "load_factory",
    "load_object",
    "load_plugins",
    "main",
    "run_system",
    "state_machines",
]

Factory = Callable[[ActorSystem], Awaitable[object]]
"""What ``jumpstart run`` runs: ``async def main(system: ActorSystem) -> None``."""

SHUTDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM)

DRAW_SUFFIXES = (".svg", ".png", ".pdf", ".dot", ".gv", ".mmd")
"""File suffixes ``StateMachine.draw`` understands (the first three need Graphviz's ``dot``)."""


# -- loading ------------------------------------------------------------------------------


def _put_cwd_on_path() -> None:
    """Make modules in the current directory importable, as ``python -m`` does."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    importlib.invalidate_caches()


def load_object(spec: str, *, what: str = "ATTRIBUTE", param_hint: str | None = None) -> Any:
    """Import ``MODULE:ATTRIBUTE`` and return the attribute.

    ``ATTRIBUTE`` may be dotted (``module:App.main``). The current directory is
    put first on ``sys.path``. Errors in the module's own code (a syntax error,
    a missing dependency) propagate unchanged.

    Raises:
        click.BadParameter: the spec is malformed, the module is not importable,
            or it has no such attribute.
    """
    hint = param_hint or f"'MODULE:{what}'"
    module_name, colon, attribute = spec.partition(":")
    module_name, attribute = module_name.strip(), attribute.strip()
    if not colon:
        guess = "main" if what == "FACTORY" else what
        raise click.BadParameter(
            f"expected MODULE:{what} with a colon, such as '{spec}:{guess}'; got {spec!r}",
            param_hint=hint,
        )
    if not module_name or not attribute:
        raise click.BadParameter(
            f"expected MODULE:{what} with both parts, such as 'myapp.main:{what.lower()}'; "
            f"got {spec!r}",
            param_hint=hint,
        )
    if module_name.endswith(".py") or "/" in module_name or "\\" in module_name:
        dotted = module_name.removesuffix(".py").replace("\\", "/").strip("/").replace("/", ".")
        raise click.BadParameter(
            f"{module_name!r} is a file path; give the module's dotted name, "
            f"such as '{dotted}:{attribute}'",
            param_hint=hint,
        )
    _put_cwd_on_path()
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        if missing != module_name and not module_name.startswith(missing + "."):
            raise  # the module exists but imports something that does not
        detail = "" if missing == module_name else f" (there is no module {missing!r})"
        raise click.BadParameter(
            f"module {module_name!r} not found{detail}; it must be importable from the "
            f"current directory ({os.getcwd()}) or from PYTHONPATH",
            param_hint=hint,
        ) from None
    obj: Any = module
    walked = module_name
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            names = [n for n in dir(obj) if not n.startswith("_")]
            close = difflib.get_close_matches(part, names, n=3)
            suggestion = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
            kind = "module" if inspect.ismodule(obj) else "object"
            raise click.BadParameter(
                f"{kind} {walked!r} has no attribute {part!r}{suggestion}", param_hint=hint
            ) from None
        walked = f"{walked}:{part}" if walked == module_name else f"{walked}.{part}"
    return obj


def _is_async_callable(obj: Any) -> bool:
    if inspect.iscoroutinefunction(obj):
        return True
    call = getattr(obj, "__call__", None)  # noqa: B004 - an async __call__ is what we look for
    return not inspect.isclass(obj) and inspect.iscoroutinefunction(call)


def load_factory(spec: str) -> Factory:
    """Load ``MODULE:FACTORY`` and check it is ``async def factory(system)``.

    Raises:
        click.BadParameter: see :func:`load_object`; or the attribute is not
            callable, not async, or does not take one argument.
    """
    hint = "'MODULE:FACTORY'"
    factory = load_object(spec, what="FACTORY", param_hint=hint)
    wanted = "FACTORY must be an async function: async def main(system: ActorSystem) -> None"
    if inspect.isclass(factory) and issubclass(factory, Actor):
        raise click.BadParameter(
            f"{spec!r} is an Actor class, not a factory; {wanted}, which spawns it "
            f"(await system.spawn({factory.__name__}))",
            param_hint=hint,
        )
    if inspect.isclass(factory):
        raise click.BadParameter(f"{spec!r} is a class; {wanted}", param_hint=hint)
    if not callable(factory):
        raise click.BadParameter(
            f"{spec!r} is not callable (it is a {type(factory).__name__}); {wanted}",
            param_hint=hint,
        )
    if not _is_async_callable(factory):
        raise click.BadParameter(
            f"{spec!r} is a plain function, not an async one; {wanted}", param_hint=hint
        )
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        try:
            signature.bind(None)
        except TypeError:
            raise click.BadParameter(
                f"{spec!r} must take exactly one argument, the ActorSystem; "
                f"its signature is {signature}",
                param_hint=hint,
            ) from None
    return factory  # type: ignore[no-any-return]


# -- running -------------------------------------------------------------------------------


def _say(text: str) -> None:
    click.echo(f"jumpstart: {text}", err=True)


async def _watch_signals(
    signals: Any,
    system: ActorSystem,
    work: trio.CancelScope,
    everything: trio.CancelScope,
    received: list[signal.Signals],
) -> None:
    async for signum in signals:
        sig = signal.Signals(signum)
        received.append(sig)
        if len(received) == 1:
            _say(
                f"{sig.name} received; shutting down gracefully (at most "
                f"{system.shutdown_timeout:g} s; send it again to stop at once)"
            )
            work.cancel()
        else:
            _say(f"{sig.name} received again; stopping at once")
            everything.cancel()
            return


async def run_system(system: ActorSystem, factory: Factory) -> list[signal.Signals]:
    """Run ``factory(system)`` in ``system``, then wait until every top-level actor has stopped.

    The system is entered here and left gracefully once the factory has returned
    and no top-level user actor is alive. SIGINT or SIGTERM cancels the factory
    (or the wait) and shuts the system down gracefully, in at most its
    ``shutdown_timeout``; a second signal stops the remaining actors at once.
    Must run in trio's main thread.

    Returns:
        The signals received, in order: empty when the system stopped by itself.
    """
    received: list[signal.Signals] = []
    with trio.open_signal_receiver(*SHUTDOWN_SIGNALS) as signals:
        async with trio.open_nursery() as nursery:
            work = trio.CancelScope()
            nursery.start_soon(
                _watch_signals, signals, system, work, nursery.cancel_scope, received
            )
            try:
                async with system:
                    with work:
                        await factory(system)
                        await system.wait_until_idle()
            finally:
                nursery.cancel_scope.cancel()
    return received


def _single_leaf(exc: BaseException) -> BaseException:
    """The one exception inside nested single-member exception groups, else ``exc``."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _fail_with_traceback(exc: BaseException) -> NoReturn:
    leaf = _single_leaf(exc)
    if isinstance(leaf, SystemExit):
        raise leaf
    if isinstance(leaf, KeyboardInterrupt):
        sys.exit(128 + signal.SIGINT)
    click.echo("".join(traceback.format_exception(leaf)).rstrip("\n"), err=True)
    sys.exit(1)


# -- drawing -------------------------------------------------------------------------------


def state_machines(actor_class: type[Actor]) -> dict[str, StateMachine]:
    """The state machines of an actor class, by attribute name, ``lifecycle`` first.

    ``lifecycle`` is the lifecycle every actor goes through; the others are the
    :class:`StateMachine` attributes declared on the class or its bases (a
    subclass's declaration hides its base's one of the same name).
    """
    machines: dict[str, StateMachine] = {"lifecycle": LIFECYCLE}
    for klass in actor_class.__mro__:
        for attr, value in vars(klass).items():
            if isinstance(value, StateMachine) and attr not in machines:
                machines[attr] = value
    return machines


def _describe(machine: StateMachine) -> str:
    return f"{len(machine.leaves)} states, {len(machine.transitions)} transitions"


# -- remote options ------------------------------------------------------------------------


def _remote_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The TLS and signing options shared by the commands that talk to other nodes."""
    options = [
        click.option(
            "--tls-ca",
            type=click.Path(exists=True, dir_okay=False),
            help="PEM file of the CA(s) to trust; turns TLS on.",
        ),
        click.option(
            "--tls-cert",
            type=click.Path(exists=True, dir_okay=False),
            help="PEM file of this node's certificate (chain).",
        ),
        click.option(
            "--tls-key",
            type=click.Path(exists=True, dir_okay=False),
            help="PEM file of this node's private key.",
        ),
        click.option(
            "--signing-key-file",
            type=click.Path(exists=True, dir_okay=False),
            help="File holding the shared secret (at least 16 bytes) messages are signed "
            "and checked with (HMAC-SHA256).",
        ),
        click.option(
            "--signing-key-id",
            default="default",
            show_default=True,
            metavar="ID",
            help="The id of that key (for key rotation).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _remote_settings(
    tls_ca: str | None,
    tls_cert: str | None,
    tls_key: str | None,
    signing_key_file: str | None,
    signing_key_id: str,
) -> RemoteSettings:
    """RemoteSettings from the command line's TLS and signing options."""
    tls = None
    if tls_cert is not None or tls_key is not None or tls_ca is not None:
        if tls_ca is None:
            raise click.UsageError("--tls-cert and --tls-key need --tls-ca (the CA to trust)")
        if (tls_cert is None) != (tls_key is None):
            raise click.UsageError("--tls-cert and --tls-key go together")
        try:
            tls = TLSConfig(ca_file=tls_ca, cert_file=tls_cert, key_file=tls_key)
        except (ValueError, OSError) as exc:
            raise click.BadParameter(str(exc), param_hint="'--tls-*'") from None
    signing = None
    if signing_key_file is not None:
        secret = Path(signing_key_file).read_bytes().strip()
        try:
            signing = Keyring({signing_key_id: secret}, active=signing_key_id)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="'--signing-key-file'") from None
    return RemoteSettings(tls=tls, signing=signing)


def _load_registry(spec: str | None, module_name: str) -> TypeRegistry | None:
    if spec is not None:
        registry = load_object(spec, what="REGISTRY", param_hint="'--registry'")
        if not isinstance(registry, TypeRegistry):
            raise click.BadParameter(
                f"{spec!r} is a {type(registry).__name__}, not a TypeRegistry",
                param_hint="'--registry'",
            )
        return registry
    module = sys.modules.get(module_name)
    found = getattr(module, "registry", None)
    return found if isinstance(found, TypeRegistry) else None


def _message_from_json(registry: TypeRegistry, type_name: str, text: str) -> Any:
    """A message of type ``type_name`` whose fields are the JSON object ``text``.

    A builtin type name (``str``, ``int``, ``dict``...) takes any JSON value of that
    type. Any other name becomes a class registered under that name whose fields
    are the object's keys, so it travels as the map the receiver expects.
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="'JSON'") from None
    builtin = _JSON_TYPES.get(type_name)
    if builtin is not None:
        if not isinstance(value, builtin) or (type_name == "int" and isinstance(value, bool)):
            raise click.BadParameter(
                f"TYPE {type_name} needs a JSON value of that type, got {text!r}",
                param_hint="'JSON'",
            )
        return tuple(value) if isinstance(value, list) and type_name == "tuple" else value
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise click.BadParameter(
            f"a {type_name} message is a JSON object of its fields, such as "
            '\'{"account": "a", "cents": 5}\'',
            param_hint="'JSON'",
        )
    fields = {key: attrs.field(kw_only=True) for key in value}
    cls = attrs.make_class(type_name.rpartition(".")[2] or "Message", fields, frozen=True)
    cls.__annotations__ = dict.fromkeys(value, Any)
    registry.register(cls, name=type_name)
    return cls(**value)


_JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "str": str,
    "int": int,
    "float": (int, float),
    "bool": bool,
    "None": type(None),
    "list": list,
    "tuple": list,
    "dict": dict,
}


def _to_json(value: Any) -> Any:
    if attrs.has(type(value)):
        return {"$type": type(value).__qualname__, **attrs.asdict(value, recurse=False)}
    if isinstance(value, bytes):
        return value.hex()
    return repr(value)


async def _talk(
    address: str, message: Any, registry: TypeRegistry, remote: RemoteSettings, ask: bool
) -> Any:
    async with ActorSystem("jumpstart-cli", registry=registry, remote=remote) as system:
        system._node.codec.lenient = True
        ref = system.ref(address)
        if ask:
            return await ref.ask(message)
        await ref.tell(message)
        return None


def _talk_to_node(
    address: str, message: Any, registry: TypeRegistry, ask: bool, **options: Any
) -> Any:
    remote = _remote_settings(**options)
    try:
        return trio.run(_talk, address, message, registry, remote, ask)
    except InvalidActorPath as exc:
        raise click.BadParameter(str(exc), param_hint="'ADDRESS'") from None
    except BaseException as exc:
        leaf = _single_leaf(exc)
        if isinstance(leaf, JumpstarterError | ConnectionError | TimeoutError):
            kind = type(leaf).__name__
            raise click.ClickException(f"{kind}: {leaf}") from None
        raise


# -- commands ------------------------------------------------------------------------------


# -- plugins -------------------------------------------------------------------------------

PLUGIN_GROUP = "jumpstarter.commands"
"""The entry-point group of the commands other packages add to ``jumpstart``.

An entry point's name is the command's name, and its object a :class:`click.Command`
(or group)::

    [project.entry-points."jumpstarter.commands"]
    hello = "mypackage.cli:hello"
"""


def _entry_point_origin(entry_point: importlib.metadata.EntryPoint) -> str:
    dist = entry_point.dist
    where = f" of {dist.name} {dist.version}" if dist is not None else ""
    return f"{entry_point.value!r}{where}"


def _load_plugin(entry_point: importlib.metadata.EntryPoint) -> click.Command | None:
    """The command of ``entry_point``, or ``None`` (with a warning) if it cannot be had."""
    origin = _entry_point_origin(entry_point)
    try:
        command = entry_point.load()
    except Exception as exc:  # any error in someone else's module: warn, go on
        _say(
            f"warning: the command {entry_point.name!r} ({origin}) could not be loaded, "
            f"and is left out: {type(exc).__name__}: {exc}. Reinstall or fix that package, "
            "or uninstall it to silence this warning."
        )
        return None
    if not isinstance(command, click.Command):
        _say(
            f"warning: the command {entry_point.name!r} ({origin}) is of type "
            f"{type(command).__name__}, not a click command, and is left out. The "
            f"{PLUGIN_GROUP!r} entry points must name click commands or groups."
        )
        return None
    return command


def load_plugins(group: str = PLUGIN_GROUP, *, name: str | None = None) -> dict[str, click.Command]:
    """Load the commands registered under the entry-point group ``group``.

    Args:
        group: the entry-point group (see :data:`PLUGIN_GROUP`).
        name: load only the entry points of this name.

    Returns:
        The commands by name, sorted. An entry point that cannot be imported, or whose
        object is not a :class:`click.Command`, is left out with a warning on stderr: one
        broken package must not take the whole command line down. Of two entry points
        with the same name, the first found wins, and the other draws a warning.
    """
    found = importlib.metadata.entry_points(group=group)
    if name is not None:
        found = found.select(name=name)
    commands: dict[str, click.Command] = {}
    for entry_point in sorted(found, key=lambda point: point.name):
        if entry_point.name in commands:
            _say(
                f"warning: the command {entry_point.name!r} ({_entry_point_origin(entry_point)}) "
                "is registered by another package too, and is left out"
            )
            continue
        command = _load_plugin(entry_point)
        if command is not None:
            commands[entry_point.name] = command
    return commands


class _Jumpstart(click.Group):
    """The ``jumpstart`` group: its own commands, then those of :data:`PLUGIN_GROUP`.

    Plugins are looked up when the command line is parsed: a command's name loads only
    the entry points of that name, and the command list (``--help``) loads them all.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plugins: dict[str, click.Command] | None = None

    def main(self, *args: Any, **kwargs: Any) -> Any:
        # "jumpstart" in usage lines, even when started as `python -m jumpstarter._cli`
        kwargs.setdefault("prog_name", "jumpstart")
        return super().main(*args, **kwargs)

    def _all_plugins(self) -> dict[str, click.Command]:
        if self._plugins is None:
            self._plugins = {}
            for name, command in load_plugins().items():
                if name in self.commands:
                    _say(
                        f"warning: the plugin command {name!r} has the name of a built-in "
                        "command, and is left out"
                    )
                else:
                    self._plugins[name] = command
        return self._plugins

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._all_plugins()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        if self._plugins is not None:
            return self._plugins.get(cmd_name)
        return load_plugins(name=cmd_name).get(cmd_name)


@click.group("jumpstart", cls=_Jumpstart, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    __version__,
    "-V",
    "--version",
    prog_name="jumpstart",
    message="%(prog)s (jumpstarter) %(version)s",
)
def main() -> None:
    """Run jumpstarter actor systems and draw their state machines."""


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("target", metavar="MODULE:FACTORY")
@click.option(
    "--name", metavar="NAME", help="The actor system's name.  [default: the module's name]"
)
@click.option(
    "--shutdown-timeout",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="How long a graceful shutdown may take.",
)
@click.option(
    "--log",
    "log",
    metavar="DEST",
    help="Log every handled message as JSON lines to stdout, stderr or a file.",
)
@click.option(
    "--listen",
    metavar="HOST:PORT",
    help="Accept AMQP 1.0 connections from other nodes there (port 0: any free port).",
)
@click.option(
    "--registry",
    "registry_spec",
    metavar="MODULE:REGISTRY",
    help="The TypeRegistry of the messages that travel between nodes.  "
    "[default: MODULE's 'registry', if it has one]",
)
@_remote_options
@click.pass_context
def run(
    ctx: click.Context,
    /,
    target: str,
    name: str | None,
    shutdown_timeout: float,
    log: str | None,
    listen: str | None,
    registry_spec: str | None,
    **remote_options: Any,
) -> None:
    """Run FACTORY, an async function of MODULE, in a new actor system.

    FACTORY is called as ``await FACTORY(system)``; it typically spawns actors
    and tells or asks them something. Once it returns, the system keeps running
    until every top-level actor has stopped, then shuts down.

    SIGINT (Ctrl-C) or SIGTERM shuts the system down gracefully: actors handle
    their mail and stop, children first. A second signal stops them at once.
    MODULE is imported from the current directory or PYTHONPATH.

    With --listen, actors are reachable from other nodes at
    amqp://HOST:PORT/NAME/PATH; the messages that travel are the classes of
    MODULE's TypeRegistry (--registry).

    MODULE:FACTORY may also name an application object (one with a
    ``jumpstart_plan`` method, such as a task app): the options this
    command does not know are its own (e.g. --role worker), and it says which
    system to start and what to run in it.

    \b
    Examples:
        jumpstart run examples.hello:main
        jumpstart run examples.bank:serve --listen 127.0.0.1:5700
        jumpstart run myapp.tasks:app --role worker --concurrency 20
    """
    module_name = target.partition(":")[0].strip()
    remote = _remote_settings(**remote_options)
    obj = load_object(target, what="FACTORY")
    if isinstance(obj, Runnable):
        plan = obj.jumpstart_plan(list(ctx.args))
        factory = plan.factory
        system_name = name if name is not None else plan.name
        listen = listen if listen is not None else plan.listen
        if registry_spec is not None:
            registry = _load_registry(registry_spec, module_name)
        else:
            registry = plan.registry or _load_registry(None, module_name)
        if plan.remote is not None and remote.tls is None and remote.signing is None:
            remote = plan.remote
    else:
        if ctx.args:
            raise click.NoSuchOption(ctx.args[0], ctx=ctx)
        factory = load_factory(target)
        system_name = name if name is not None else module_name
        registry = _load_registry(registry_spec, module_name)
    try:
        system = ActorSystem(
            system_name,
            shutdown_timeout=shutdown_timeout,
            listen=listen,
            registry=registry,
            remote=remote,
        )
    except ValueError as exc:
        param = "'--listen'" if listen is not None and "listen" in str(exc) else "'--name'"
        raise click.BadParameter(str(exc), param_hint=param) from None
    if log is not None:
        try:
            enable_logging(log)
        except OSError as exc:
            raise click.BadParameter(
                f"cannot open {log!r} for logging: {exc}", param_hint="'--log'"
            ) from None
    try:
        received = trio.run(run_system, system, factory)
    except KeyboardInterrupt:  # SIGINT outside of the signal receiver (start-up, last moments)
        sys.exit(128 + signal.SIGINT)
    except OSError as exc:
        if "cannot listen" in str(exc):
            raise click.ClickException(str(exc.strerror or exc)) from None
        _fail_with_traceback(exc)
    except BaseException as exc:
        leaf = _single_leaf(exc)
        if isinstance(leaf, OSError) and "cannot listen" in str(leaf):
            raise click.ClickException(str(leaf.strerror or leaf)) from None
        _fail_with_traceback(exc)
    finally:
        if log is not None:
            disable_logging()
    if len(received) > 1:
        sys.exit(128 + received[-1])


@main.command()
@click.argument("target", metavar="MODULE:CLASS")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The file to write; its suffix ("
    + ", ".join(DRAW_SUFFIXES)
    + ") sets the format. .svg, .png and .pdf need Graphviz's 'dot'.",
)
@click.option(
    "-m",
    "--machine",
    default="lifecycle",
    show_default=True,
    metavar="NAME",
    help="Which machine: 'lifecycle' or a StateMachine attribute of CLASS.",
)
@click.option(
    "--list",
    "list_machines",
    is_flag=True,
    help="List the machines of CLASS instead of drawing one.",
)
def graph(target: str, output: Path | None, machine: str, list_machines: bool) -> None:
    """Draw a state machine of an Actor subclass.

    \b
    Examples:
        jumpstart graph examples.hello:Door --list
        jumpstart graph examples.hello:Door --machine position -o door.svg
        jumpstart graph examples.hello:Door -o lifecycle.mmd
    """
    hint = "'MODULE:CLASS'"
    obj = load_object(target, what="CLASS", param_hint=hint)
    if isinstance(obj, StateMachine):
        machines = {obj.name or target.partition(":")[2]: obj}
        if machine == "lifecycle":
            machine = next(iter(machines))
    elif inspect.isclass(obj) and issubclass(obj, Actor):
        machines = state_machines(obj)
    else:
        kind = "class" if inspect.isclass(obj) else type(obj).__name__
        raise click.BadParameter(
            f"{target!r} is a {kind}, not an Actor subclass (or a StateMachine)",
            param_hint=hint,
        )
    if list_machines:
        width = max(map(len, machines))
        for attr, declared in machines.items():
            click.echo(f"{attr:<{width}}  {_describe(declared)}")
        return
    chosen = machines.get(machine)
    if chosen is None:
        raise click.BadParameter(
            f"{target} has no state machine {machine!r}; available: {', '.join(machines)}",
            param_hint="'--machine'",
        )
    if output is None:
        raise click.UsageError(
            "missing option '-o' / '--output': the file to draw to, such as "
            f"{machine}.svg (or use --list)"
        )
    if output.suffix.lower() not in DRAW_SUFFIXES:
        raise click.BadParameter(
            f"cannot draw to {str(output)!r}: use one of {', '.join(DRAW_SUFFIXES)}",
            param_hint="'-o' / '--output'",
        )
    try:
        chosen.draw(output)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'-o' / '--output'") from None
    except RuntimeError as exc:  # Graphviz's dot is not installed
        raise click.UsageError(str(exc)) from None
    except ImportError as exc:
        raise click.UsageError(
            f"drawing {str(output)!r} needs the graphviz Python package ({exc}); "
            "install it with: pip install 'jumpstarter[graph]'"
        ) from None
    except subprocess.CalledProcessError as exc:
        raise click.ClickException(f"Graphviz's dot failed (exit code {exc.returncode})") from None
    except OSError as exc:
        raise click.ClickException(f"cannot write {str(output)!r}: {exc}") from None
    click.echo(f"wrote the {machine} machine of {target} ({_describe(chosen)}) to {output}")


@main.command()
@click.argument("directory", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--name",
    "names",
    multiple=True,
    metavar="NAME",
    help="A host name or IP address the node certificate is valid for; repeat for more.  "
    "[default: localhost, 127.0.0.1]",
)
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=365,
    show_default=True,
    metavar="DAYS",
    help="How many days the certificates are valid.",
)
@click.option("--force", is_flag=True, help="Overwrite certificate files that exist in DIR.")
def certs(directory: Path, names: tuple[str, ...], days: int, force: bool) -> None:
    """Write development TLS certificates to DIR.

    Makes a throw-away CA and, signed by it, a node certificate and a client
    certificate (for mutual TLS): ca.pem, node.pem, node.key, client.pem and
    client.key. Keys are unencrypted and readable only by you. For development
    and tests only: in production, use certificates from your own CA.

    \b
    Examples:
        jumpstart certs certs/
        jumpstart certs certs/ --name localhost --name 127.0.0.1 --name myhost.lan
    """
    import shlex

    from ._certs import DEFAULT_NAMES, CertificatesExist, write_dev_certificates  # loads trustme

    try:
        written = write_dev_certificates(
            directory, names=names or DEFAULT_NAMES, valid_days=days, force=force
        )
    except CertificatesExist as exc:
        raise click.ClickException(
            f"{', '.join(map(str, exc.paths))} already "
            f"exist{'s' if len(exc.paths) == 1 else ''}; pass --force to overwrite"
        ) from None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--name'") from None
    except OSError as exc:
        raise click.ClickException(f"cannot write to {str(directory)!r}: {exc}") from None

    def py(path: Path) -> str:
        return repr(str(path))

    def sh(path: Path) -> str:
        return shlex.quote(str(path))

    width = max(len(str(path)) for path in written.files)
    click.echo(
        f"wrote development TLS certificates for {', '.join(written.names)} "
        f"(valid for {days} days):\n"
        f"  {written.ca_file!s:<{width}}  the CA certificate to trust (its key was not kept)\n"
        f"  {written.cert_file!s:<{width}}  the node's certificate\n"
        f"  {written.key_file!s:<{width}}  the node's private key (mode 0600)\n"
        f"  {written.client_cert_file!s:<{width}}  a client certificate, for mutual TLS\n"
        f"  {written.client_key_file!s:<{width}}  the client's private key (mode 0600)\n"
        "\n"
        "In Python (from jumpstarter import TLSConfig):\n"
        f"  server: TLSConfig(ca_file={py(written.ca_file)}, "
        f"cert_file={py(written.cert_file)}, key_file={py(written.key_file)})\n"
        f"  client: TLSConfig(ca_file={py(written.ca_file)})\n"
        "  mutual TLS: add require_client_certificate=True on the server, and "
        f"cert_file={py(written.client_cert_file)}, "
        f"key_file={py(written.client_key_file)} on the client\n"
        "\n"
        "On the command line (jumpstart run):\n"
        f"  --tls-ca {sh(written.ca_file)} --tls-cert {sh(written.cert_file)} "
        f"--tls-key {sh(written.key_file)}"
    )


def _message_command(ask: bool) -> Callable[..., None]:
    def command(address: str, type_name: str, payload: str, **options: Any) -> None:
        registry = TypeRegistry()
        message = _message_from_json(registry, type_name, payload)
        answer = _talk_to_node(address, message, registry, ask, **options)
        if ask:
            click.echo(json.dumps(answer, default=_to_json, indent=2, sort_keys=True))

    return command


_MESSAGE_ARGUMENTS = (
    click.argument("address", metavar="ADDRESS"),
    click.argument("type_name", metavar="TYPE"),
    click.argument("payload", metavar="JSON", default="{}"),
)


def _with_message_arguments(command: Callable[..., Any]) -> Callable[..., Any]:
    for argument in reversed(_MESSAGE_ARGUMENTS):
        command = argument(command)
    return _remote_options(command)


@main.command()
@_with_message_arguments
def tell(address: str, type_name: str, payload: str, **options: Any) -> None:
    """Send a message to the actor at ADDRESS, without waiting for an answer.

    TYPE is the message's registered type name on the receiving node (or a
    builtin: str, int, float, bool, list, dict); JSON is its fields as a JSON
    object (or the builtin value).

    \b
    Example:
        jumpstart tell amqp://127.0.0.1:5700/bank/user/teller bank.Deposit \\
            '{"account": "alice", "cents": 250}'
    """
    _message_command(ask=False)(address, type_name, payload, **options)


@main.command()
@_with_message_arguments
def ask(address: str, type_name: str, payload: str, **options: Any) -> None:
    """Send a message to the actor at ADDRESS and print its answer as JSON.

    TYPE and JSON are as for 'jumpstart tell'. A handler's exception is printed
    with its remote traceback, and the command exits with status 1.

    \b
    Example:
        jumpstart ask amqp://127.0.0.1:5700/bank/user/teller bank.Balance '{"account": "alice"}'
    """
    _message_command(ask=True)(address, type_name, payload, **options)


@main.command("inspect")
@click.argument("address", metavar="ADDRESS")
@_remote_options
def inspect_(address: str, **options: Any) -> None:
    """List the actors of the node at ADDRESS (amqp://HOST:PORT/SYSTEM), with their
    state, mailbox depth and counters.

    \b
    Example:
        jumpstart inspect amqp://127.0.0.1:5700/bank
    """
    inspector = address.rstrip("/") + "/system/inspector"
    registry = TypeRegistry()
    report = _talk_to_node(inspector, InspectRequest(), registry, True, **options)
    actors: dict[str, dict[str, Any]] = report.get("actors", {})
    click.echo(f"{report.get('system')} at {report.get('address')}: {len(actors)} actors")
    columns = ("state", "mailbox", "received", "handled", "failed", "restarts")
    width = max([len("PATH"), *map(len, actors)])
    click.echo(
        f"{'PATH':<{width}}  {'STATE':<28}" + "".join(f"{c.upper():>10}" for c in columns[1:])
    )
    for path in sorted(actors):
        row = actors[path]
        click.echo(
            f"{path:<{width}}  {row.get('state', '?'):<28}"
            + "".join(f"{row.get(c, ''):>10}" for c in columns[1:])
        )


if __name__ == "__main__":
    main()
