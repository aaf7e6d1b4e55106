"""AMQP 1.0 peers written with proton's own reactor, importing nothing from jumpstarter.

Run as ``python -m tests.interop.reactor_peers ask HOST:PORT TARGET TYPE JSON`` (a
client that asks an actor and prints the answer as one JSON line) or
``python -m tests.interop.reactor_peers receive PORT COUNT`` (a listener that prints
``ready``, then each message it receives as one JSON line, then exits).
"""

from __future__ import annotations

import json
import sys
import time
import uuid

from proton import Message
from proton.handlers import MessagingHandler
from proton.reactor import Container, DynamicNodeProperties


class Asker(MessagingHandler):
    def __init__(self, url: str, target: str, type_name: str, body: object) -> None:
        super().__init__()
        self.url = url
        self.target = target
        self.type_name = type_name
        self.body = body
        self.message_id = str(uuid.uuid4())

    def on_start(self, event):  # type: ignore[no-untyped-def]
        self.connection = event.container.connect(self.url)
        self.receiver = event.container.create_receiver(self.connection, None, dynamic=True)

    def on_link_opened(self, event):  # type: ignore[no-untyped-def]
        if event.receiver == self.receiver:
            reply_to = self.receiver.remote_source.address
            sender = event.container.create_sender(self.connection, self.target)
            request = Message(
                id=self.message_id,
                reply_to=reply_to,
                creation_time=time.time(),
                properties={"js:type": self.type_name},
                body=self.body,
            )
            sender.send(request)

    def on_message(self, event):  # type: ignore[no-untyped-def]
        message = event.message
        print(
            json.dumps(
                {
                    "correlation_id": message.correlation_id,
                    "matches": message.correlation_id == self.message_id,
                    "type": (message.properties or {}).get("js:type"),
                    "error": (message.properties or {}).get("js:error-type"),
                    "body": message.body,
                }
            ),
            flush=True,
        )
        event.connection.close()


class Receiver(MessagingHandler):
    def __init__(self, port: int, count: int) -> None:
        super().__init__()
        self.port = port
        self.count = count

    def on_start(self, event):  # type: ignore[no-untyped-def]
        self.acceptor = event.container.listen(f"127.0.0.1:{self.port}")
        print("ready", flush=True)

    def on_message(self, event):  # type: ignore[no-untyped-def]
        message = event.message
        print(
            json.dumps(
                {
                    "to": message.address,
                    "link_target": event.link.remote_target.address,
                    "type": (message.properties or {}).get("js:type"),
                    "body": message.body,
                }
            ),
            flush=True,
        )
        self.count -= 1
        if self.count == 0:
            event.connection.close()
            self.acceptor.close()


def main() -> None:
    mode, *args = sys.argv[1:]
    if mode == "ask":
        address, target, type_name, body = args
        Container(Asker(address, target, type_name, json.loads(body))).run()
    elif mode == "receive":
        port, count = args
        Container(Receiver(int(port), int(count))).run()
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    _ = DynamicNodeProperties  # the reactor's helper for dynamic nodes, for readers
    main()
