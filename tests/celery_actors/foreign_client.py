"""A celery_actors client that knows only AMQP 1.0: the standard library and proton.

It follows ``docs/protocol.md`` and nothing else, to show that any AMQP 1.0 client can
run a task. Two commands, each printing one JSON line per ask it makes::

    python foreign_client.py HOST:PORT APP call TASK [--args JSON] [--kwargs JSON] [--id ID]
    python foreign_client.py HOST:PORT APP ask TYPE BODY_JSON

``call`` sends ``celery.submit.v1`` carrying a ``celery.call.v1`` map, then
``celery.await-result.v1``; ``ask`` sends one message of any type with any body. A line
is ``{"ask": TYPE, "outcome": "answered", "type": ..., "error": ..., "body": ...}`` for
an answer (``error`` holds the ``js:error-*`` properties of a failed ask, else null),
or ``{"ask": TYPE, "outcome": "rejected", "condition": ..., "description": ...}`` when
the router refused the message itself; after a refusal or an error answer, the asks that
depended on it are not sent. With ``--key-id`` and ``--key-hex`` every message
is signed as ``docs/wire-format.md`` says. The exit status is 0 once every ask has had
its answer or refusal, 1 if ``--timeout`` ran out first.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import struct
import sys
import time
import uuid
from collections.abc import Mapping
from typing import Any

from proton import Message, symbol
from proton.handlers import MessagingHandler
from proton.reactor import Container

CONTENT_TYPE = symbol("application/vnd.jumpstarter.v1+amqp")
SIGNATURE_DOMAIN = b"jumpstarter-hmac-sha256-v1\x00"


def request(type_name: str, body: object) -> Message:
    """A message with the envelope every request needs: a string message-id, a
    creation-time, and ``js:type`` naming the body's type."""
    return Message(
        id=str(uuid.uuid4()),
        creation_time=time.time(),
        content_type=CONTENT_TYPE,
        properties={"js:type": type_name},
        body=body,
        inferred=False,
    )


def _field(value: object) -> bytes:
    if value is None:
        return b"\x00"
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float):  # proton's timestamps are seconds; the wire has ms
        text = str(round(value * 1000))
    else:
        text = str(value)
    data = text.encode()
    return b"\x01" + struct.pack(">I", len(data)) + data


def sign(message: Message, key_id: str, key: bytes) -> None:
    """Add ``js:key`` and ``js:sig`` to ``message`` (docs/wire-format.md, Signing).

    The body section is the end of the encoded message, after what the same message
    without a body encodes to; proton encodes the same body the same way every time.
    """
    encoded = message.encode()
    body, message.body = message.body, None
    head = message.encode()
    message.body = body
    assert encoded.startswith(head), "the body section is not the end of the message"
    body_bytes = encoded[len(head) :]
    properties: dict[str, object] = dict(message.properties or {})
    canonical = SIGNATURE_DOMAIN + b"".join(
        _field(value)
        for value in (
            key_id,
            message.id,
            message.address,
            message.reply_to,
            message.correlation_id,
            message.content_type,
            message.creation_time or None,
            message.expiry_time or None,
            properties.get("js:type"),
            properties.get("js:sender"),
            properties.get("js:trace"),
            properties.get("js:settle"),
            properties.get("js:error-type"),
            properties.get("js:error-message"),
            properties.get("js:error-traceback"),
        )
    )
    properties["js:key"] = key_id
    properties["js:sig"] = hmac.new(key, canonical + body_bytes, hashlib.sha256).digest()
    message.properties = properties


def plain(value: object) -> object:
    """``value`` as JSON can hold it: binary as ``{"$bytes": base64}``."""
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return str(value)


class Client(MessagingHandler):  # type: ignore[misc]
    """Sends ``asks`` one after the other, each once the previous one has its answer."""

    def __init__(
        self,
        url: str,
        target: str,
        asks: list[Message],
        timeout: float,
        key: tuple[str, bytes] | None,
    ) -> None:
        super().__init__(auto_accept=True)
        self.url = url
        self.target = target
        self.asks = asks
        self.timeout = timeout
        self.key = key
        self.current: Message | None = None
        self.reply_to: str | None = None
        self.finished = False

    def on_start(self, event: Any) -> None:
        self.timer = event.container.schedule(self.timeout, self)
        self.connection = event.container.connect(self.url, reconnect=False)
        # a dynamic receiver: the router makes up the address its answers go to
        self.receiver = event.container.create_receiver(self.connection, None, dynamic=True)
        self.sender = event.container.create_sender(self.connection, self.target)

    def on_link_opened(self, event: Any) -> None:
        if event.receiver == self.receiver:
            self.reply_to = self.receiver.remote_source.address
            self._next()

    def on_sendable(self, event: Any) -> None:
        self._next()

    def _next(self) -> None:
        if self.current is not None or self.reply_to is None or not self.sender.credit:
            return
        if not self.asks:
            self._finish()
            return
        message = self.asks.pop(0)
        message.reply_to = self.reply_to
        if self.key is not None:
            sign(message, *self.key)
        self.current = message
        self.sender.send(message)

    def on_message(self, event: Any) -> None:
        answer = event.message
        if self.current is None or answer.correlation_id != self.current.id:
            return  # not the answer to the ask in flight
        properties = answer.properties or {}
        error = None
        if "js:error-type" in properties:
            error = {
                "type": properties["js:error-type"],
                "message": properties.get("js:error-message", ""),
            }
        self._report(
            outcome="answered",
            type=properties.get("js:type"),
            error=error,
            body=plain(answer.body),
        )

    def on_rejected(self, event: Any) -> None:
        condition = event.delivery.remote.condition
        self._report(
            outcome="rejected",
            condition=str(condition.name) if condition else None,
            description=condition.description if condition else None,
        )

    def on_released(self, event: Any) -> None:
        self._report(outcome="released")

    def _report(self, **line: object) -> None:
        assert self.current is not None
        ask = (self.current.properties or {})["js:type"]
        print(json.dumps({"ask": ask, **line}), flush=True)
        self.current = None
        if line["outcome"] != "answered" or line.get("error") is not None:
            self.asks.clear()  # what follows depended on this ask
        self._next()

    def _finish(self) -> None:
        self.finished = True
        self.timer.cancel()
        self.connection.close()

    def on_timer_task(self, event: Any) -> None:
        what = (self.current.properties or {})["js:type"] if self.current else "the link"
        print(f"no answer to {what} within {self.timeout} s", file=sys.stderr, flush=True)
        self.connection.close()

    def on_transport_error(self, event: Any) -> None:
        condition = event.transport.condition
        print(f"connection failed: {condition}", file=sys.stderr, flush=True)
        self.timer.cancel()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("router", metavar="HOST:PORT")
    parser.add_argument("app", help="the app's name: the router's actor system")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--key-id", help="sign every message with this key id ...")
    parser.add_argument("--key-hex", help="... and this key, in hexadecimal")
    commands = parser.add_subparsers(dest="command", required=True)
    call = commands.add_parser("call", help="submit a call, then wait for its result")
    call.add_argument("task")
    call.add_argument("--args", default="[]", help="a JSON list")
    call.add_argument("--kwargs", default="{}", help="a JSON object")
    call.add_argument("--id", default=None, help="the call's id (default: a new UUID)")
    ask = commands.add_parser("ask", help="send one message of any type and body")
    ask.add_argument("type")
    ask.add_argument("body", help="JSON")
    options = parser.parse_args(argv)

    if options.command == "call":
        call_id = options.id or uuid.uuid4().hex
        task_call = {
            "$type": "celery.call.v1",
            "id": call_id,
            "task": options.task,
            "args": json.loads(options.args),
            "kwargs": json.loads(options.kwargs),
        }
        asks = [
            request("celery.submit.v1", {"call": task_call}),
            request("celery.await-result.v1", {"id": call_id}),
        ]
    else:
        asks = [request(options.type, json.loads(options.body))]
    key = None
    if options.key_id is not None:
        key = (options.key_id, bytes.fromhex(options.key_hex or ""))
    client = Client(
        f"amqp://{options.router}", f"/{options.app}/user/router", asks, options.timeout, key
    )
    Container(client).run()
    return 0 if client.finished else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
