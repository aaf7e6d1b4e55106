"""Data sources: a directory, an HTTP webhook and a broker queue turn documents into
calls of their subscribed tasks; bad documents are rejected and counted; a full
source stops reading."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import proton
import pytest
import trio

from celery_actors import (
    App,
    BrokerQueueSource,
    DirectorySource,
    Document,
    DocumentRejected,
    Source,
    SourceFeed,
    SourceRef,
    SourceStats,
    WebhookSource,
)
from jumpstarter import Accepted, ActorStartError
from jumpstarter._amqp_driver import connect
from tests.jumpstarter.test_broker import Quiet

TIMEOUT = 30.0  # seconds; only ever reached when something hangs
POLL = 0.01  # the directory sources' polling interval here

app = App("test-sources")
seen: list[tuple[str, Document]] = []
gates: dict[str, trio.Event] = {}


@app.task
async def ingest(document: Document) -> str:
    seen.append(("ingest", document))
    return document.id


@app.task
async def audit(document: Document) -> int:
    seen.append(("audit", document))
    return len(json.dumps(document.body))


@app.task
async def slow_ingest(document: Document) -> None:
    """Waits for the test to open the gate named in the document."""
    seen.append(("slow", document))
    await gates[document.body["gate"]].wait()


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    seen.clear()
    gates.clear()
    yield


def bodies(task: str = "ingest") -> list[Any]:
    return [document.body for name, document in seen if name == task]


async def wait_for(source: SourceRef, condition: Any) -> SourceStats:
    """Poll the source's stats until ``condition(stats)``; the fail_after bounds it."""
    with trio.fail_after(TIMEOUT):
        while not condition(stats := await source.stats()):  # noqa: ASYNC110
            await trio.sleep(POLL)
    return stats


def write(path: Path, content: str) -> None:
    """Write a file the way a producer should: elsewhere, then renamed into place."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(content)
    os.replace(temporary, path)


# -- a directory


async def test_each_new_file_is_one_document_for_every_subscriber(tmp_path):
    write(tmp_path / "a.json", '{"order": 1}')
    (tmp_path / "ignored.txt").write_text("not matched by the pattern")
    source = DirectorySource(tmp_path, interval=POLL, subscribers=[ingest, audit])
    async with app.local() as client:
        running = await source.start(client)
        await wait_for(running, lambda s: s.finished == 1)
        write(tmp_path / "b.json", '{"order": 2}')
        stats = await wait_for(running, lambda s: s.finished == 2)
    assert bodies("ingest") == [{"order": 1}, {"order": 2}]
    assert bodies("audit") == [{"order": 1}, {"order": 2}]
    document = seen[0][1]
    assert document.source == f"directory:{tmp_path}"
    assert document.metadata["path"] == str(tmp_path / "a.json")
    assert document.metadata["name"] == "a.json" and document.metadata["size"] == 12
    assert stats.accepted == 2 and stats.rejected == {} and stats.health == "healthy"
    assert stats.kind == "directory" and stats.where == str(tmp_path)


async def test_a_file_is_read_once_per_version(tmp_path):
    first = tmp_path / "a.json"
    write(first, '{"v": 1}')
    source = DirectorySource(tmp_path, interval=POLL, subscribers=[ingest])
    async with app.local() as client:
        running = await source.start(client)
        await wait_for(running, lambda s: s.finished == 1)
        write(tmp_path / "b.json", '{"other": true}')  # rounds pass a.json unchanged
        await wait_for(running, lambda s: s.finished == 2)
        write(first, '{"v": 2}')
        os.utime(first, ns=(first.stat().st_atime_ns, first.stat().st_mtime_ns + 10**9))
        await wait_for(running, lambda s: s.finished == 3)
    assert bodies() == [{"v": 1}, {"other": True}, {"v": 2}]


async def test_the_same_file_read_by_a_new_source_runs_once(tmp_path):
    write(tmp_path / "a.json", '{"once": true}')
    async with app.local() as client:
        for _ in range(2):  # a source restarted with the same name
            source = DirectorySource(tmp_path, interval=POLL, subscribers=[ingest])
            running = await source.start(client)
            await wait_for(running, lambda s: s.finished == 1)
            await running.stop()
    assert bodies() == [{"once": True}]


async def test_bad_files_are_rejected_counted_and_the_source_carries_on(tmp_path):
    write(tmp_path / "1-broken.json", "{not json")
    write(tmp_path / "2-big.json", json.dumps({"blob": "x" * 200}))
    write(tmp_path / "3-empty.json", "  ")
    source = DirectorySource(tmp_path, interval=POLL, max_size=100, subscribers=[ingest])
    async with app.local() as client:
        running = await source.start(client)
        await wait_for(running, lambda s: s.rejected_total == 3)
        write(tmp_path / "4-good.json", "[1, 2]")
        stats = await wait_for(running, lambda s: s.finished == 1)
    assert bodies() == [[1, 2]]
    assert stats.rejected == {"invalid-json": 1, "oversized": 1, "empty": 1}
    assert stats.health == "healthy" and stats.accepted == 1


async def test_a_full_directory_source_reads_no_more_files_until_there_is_room(tmp_path):
    gates["one"], gates["two"] = trio.Event(), trio.Event()
    write(tmp_path / "1.json", '{"gate": "one"}')
    source = DirectorySource(tmp_path, interval=POLL, max_in_flight=1, subscribers=[slow_ingest])
    async with app.local() as client:
        running = await source.start(client)
        stats = await wait_for(running, lambda s: s.in_flight == 1)
        assert stats.health == "degraded"
        write(tmp_path / "2.json", '{"gate": "two"}')
        # The first document holds the only place: however many rounds pass, the
        # second file is not read. Let the source wait on its room for a while.
        for _ in range(10):
            assert (await running.stats()).accepted == 1
            await trio.sleep(POLL)
        gates["one"].set()
        stats = await wait_for(running, lambda s: s.accepted == 2)
        gates["two"].set()
        stats = await wait_for(running, lambda s: s.finished == 2)
    assert bodies("slow") == [{"gate": "one"}, {"gate": "two"}]
    assert stats.health == "healthy"


async def test_a_missing_directory_makes_the_source_unhealthy_until_it_appears(tmp_path):
    inbox = tmp_path / "inbox"
    source = DirectorySource(inbox, interval=POLL, subscribers=[ingest])
    async with app.local() as client:
        running = await source.start(client)
        stats = await wait_for(running, lambda s: s.health == "unhealthy")
        assert "cannot read the directory" in (stats.problem or "")
        inbox.mkdir()
        write(inbox / "a.json", "{}")
        stats = await wait_for(running, lambda s: s.finished == 1)
    assert stats.health == "healthy" and stats.problem is None


def test_options_are_checked_when_the_source_is_made(tmp_path):
    with pytest.raises(ValueError, match="max_size=0 must be at least 1 byte"):
        DirectorySource(tmp_path, max_size=0)
    with pytest.raises(ValueError, match="max_in_flight=0 must be at least 1"):
        DirectorySource(tmp_path, max_in_flight=0)
    with pytest.raises(ValueError, match="interval=0 must be a positive"):
        DirectorySource(tmp_path, interval=0)
    with pytest.raises(ValueError, match=r"subscribed to .* already"):
        DirectorySource(tmp_path, subscribers=[ingest, ingest])
    with pytest.raises(ValueError, match="path='hook' must start with '/'"):
        WebhookSource(path="hook")


async def test_a_source_without_subscribers_does_not_start(tmp_path):
    async with app.local() as client:
        with pytest.raises(ValueError, match="no subscribers"):
            await DirectorySource(tmp_path).start(client)


async def test_subscribe_adds_a_subscriber_and_works_as_a_decorator(tmp_path):
    source = DirectorySource(tmp_path, interval=POLL)
    assert source.subscribe(ingest) is ingest
    write(tmp_path / "a.json", "1")
    async with app.local() as client:
        running = await source.start(client)
        await wait_for(running, lambda s: s.finished == 1)
    assert bodies() == [1]


# -- an HTTP webhook


def post(
    url: str, body: bytes, headers: dict[str, str] | None = None, method: str = "POST"
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """One request with urllib (run it in a thread): status, JSON answer, headers (by
    lower-case name)."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            headers = {name.lower(): value for name, value in response.headers.items()}
            return response.status, json.loads(response.read()), headers
    except urllib.error.HTTPError as error:
        with error:
            headers = {name.lower(): value for name, value in error.headers.items()}
            return error.code, json.loads(error.read()), headers


async def http(url: str, body: bytes, **options: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
    return await trio.to_thread.run_sync(lambda: post(url, body, **options))


async def test_a_posted_json_document_is_accepted_and_runs_its_subscribers():
    source = WebhookSource(path="/hooks/orders", subscribers=[ingest, audit])
    async with app.local() as client:
        running = await source.start(client)
        url = (await running.stats()).where
        status, answer, _ = await http(url, b'{"order": 7}')
        stats = await wait_for(running, lambda s: s.finished == 1)
    assert status == 202
    assert answer["calls"] == [
        f"{answer['document']}.{ingest.name}",
        f"{answer['document']}.{audit.name}",
    ]
    assert bodies() == [{"order": 7}] and bodies("audit") == [{"order": 7}]
    document = seen[0][1]
    assert document.id == answer["document"]
    assert document.metadata["path"] == "/hooks/orders" and document.metadata["method"] == "POST"
    assert document.metadata["headers"]["content-type"] == "application/json"
    assert stats.accepted == 1 and stats.kind == "webhook"


async def test_a_document_sent_twice_runs_once_by_idempotency_key_or_by_body():
    source = WebhookSource(subscribers=[ingest])
    async with app.local() as client:
        running = await source.start(client)
        url = (await running.stats()).where
        key = {"Idempotency-Key": "order-8"}
        first = await http(url, b'{"order": 8}', headers=key)
        again = await http(url, b'{"order": 8, "sent": "again"}', headers=key)
        by_body = await http(url, b'{"order": 9}')
        by_body_again = await http(url, b'{"order": 9}')
        await wait_for(running, lambda s: s.finished == 4)
    assert first[0] == again[0] == by_body[0] == by_body_again[0] == 202
    assert first[1] == again[1] and by_body[1] == by_body_again[1]
    assert bodies() == [{"order": 8}, {"order": 9}]


async def test_invalid_and_oversized_bodies_are_refused_with_400_and_413_and_counted():
    source = WebhookSource(max_size=64, subscribers=[ingest])
    async with app.local() as client:
        running = await source.start(client)
        url = (await running.stats()).where
        invalid = await http(url, b"{oops")
        oversized = await http(url, json.dumps({"x": "y" * 100}).encode())
        good = await http(url, b"[]")
        stats = await wait_for(running, lambda s: s.finished == 1)
    assert invalid[0] == 400 and invalid[1]["error"] == "invalid-json"
    assert "not valid JSON" in invalid[1]["message"]
    assert oversized[0] == 413 and "max_size=64" in oversized[1]["message"]
    assert good[0] == 202 and bodies() == [[]]
    assert stats.rejected == {"invalid-json": 1, "oversized": 1} and stats.health == "healthy"


async def test_a_body_larger_than_its_content_length_says_is_still_refused():
    """A chunked body has no length up front: it is counted as it arrives."""
    source = WebhookSource(max_size=64, subscribers=[ingest])
    async with app.local() as client:
        running = await source.start(client)
        port = int((await running.stats()).where.rsplit(":", 1)[1].split("/")[0])
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        chunk = b'"' + b"z" * 100 + b'"'
        await stream.send_all(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + f"{len(chunk):x}\r\n".encode()
            + chunk
            + b"\r\n0\r\n\r\n"
        )
        answer = b""
        while chunk := await stream.receive_some():
            answer += chunk
        await stream.aclose()
        stats = await running.stats()
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert stats.rejected == {"oversized": 1}


async def test_a_full_webhook_answers_503_until_there_is_room():
    gates["a"] = trio.Event()
    source = WebhookSource(max_in_flight=1, subscribers=[slow_ingest])
    async with app.local() as client:
        running = await source.start(client)
        url = (await running.stats()).where
        first = await http(url, b'{"gate": "a"}')
        full = await http(url, b'{"gate": "b"}')
        assert (await running.stats()).health == "degraded"
        gates["a"].set()
        await wait_for(running, lambda s: s.in_flight == 0)
        gates["b"] = trio.Event()
        gates["b"].set()
        later = await http(url, b'{"gate": "b"}')
        stats = await wait_for(running, lambda s: s.finished == 2)
    assert first[0] == 202 and later[0] == 202
    assert full[0] == 503 and full[2]["retry-after"] == "1" and full[1]["error"] == "full"
    assert stats.health == "healthy" and stats.rejected == {}


async def test_other_paths_and_methods_are_answered_404_and_405():
    source = WebhookSource(path="/in", subscribers=[ingest])
    async with app.local() as client:
        running = await source.start(client)
        url = (await running.stats()).where
        elsewhere = await http(url.replace("/in", "/out"), b"{}")
        wrong_method = await http(url, b"{}", method="PUT")
        stats = await running.stats()
    assert elsewhere[0] == 404 and wrong_method[0] == 405
    assert stats.accepted == 0 and stats.rejected == {}


async def test_garbage_instead_of_http_is_answered_400_and_the_source_carries_on():
    source = WebhookSource(subscribers=[ingest])
    async with app.local() as client:
        running = await source.start(client)
        url = (await running.stats()).where
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"\x00\x01 this is not HTTP\r\n\r\n")
        answer = b""
        while chunk := await stream.receive_some():
            answer += chunk
        await stream.aclose()
        after = await http(url, b"{}")
    assert answer.startswith(b"HTTP/1.1 400 ") and after[0] == 202


async def test_a_webhook_on_a_port_in_use_does_not_start_and_says_why():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with app.local() as client:
            with pytest.raises(ActorStartError, match="ddress already in use"):
                await WebhookSource(port=port, subscribers=[ingest]).start(client)


@pytest.mark.slow
async def test_a_webhook_that_cannot_reach_the_router_answers_503_and_is_unhealthy():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    async with app.connect(router=f"127.0.0.1:{port}") as client:  # no router there
        running = await WebhookSource(subscribers=[ingest]).start(client)
        url = (await running.stats()).where
        status, answer, _ = await http(url, b"{}")
        stats = await running.stats()
    assert status == 503 and "cannot hand documents to the router" in answer["message"]
    assert stats.health == "unhealthy" and stats.in_flight == 0 and stats.accepted == 0


# -- a source of one's own


class Countdown(Source):
    """Hands over the numbers from ``n`` down to 1, then stops."""

    kind = "countdown"

    def __init__(self, n: int, **options: Any) -> None:
        self.n = n
        super().__init__(**options)

    async def run(self, feed: SourceFeed) -> None:
        feed.started()
        for number in range(self.n, 0, -1):
            await feed.wait_for_room()
            try:
                body = feed.read_json(str(number) if number != 2 else "two")
            except DocumentRejected as error:
                feed.reject(error)
                continue
            await feed.deliver(f"number:{number}", body, {})


async def test_a_source_of_one_s_own_uses_the_feed():
    async with app.local() as client:
        running = await Countdown(3, name="countdown", subscribers=[ingest]).start(client)
        stats = await wait_for(running, lambda s: s.finished == 2)
    assert sorted(bodies()) == [1, 3]
    assert stats.rejected == {"invalid-json": 1}
    assert {document.id.split(".")[0] for _, document in seen} == {"countdown"}


# -- a broker queue

BROKER = "amqp://guest:guest@127.0.0.1:5672"


@pytest.fixture
def queue() -> Iterator[str]:
    name = f"ca-source-{uuid.uuid4().hex[:10]}"
    yield name
    subprocess.run(["rabbitmqctl", "-q", "delete_queue", name], capture_output=True, check=False)


async def publish_foreign(queue: str, messages: list[proton.Message]) -> None:
    """Publish as another AMQP 1.0 program would: proton messages, no jumpstarter
    envelope."""
    async with trio.open_nursery() as nursery:
        connection = await connect(
            "127.0.0.1",
            5672,
            Quiet(),
            nursery,
            container_id="foreign",
            sasl=("plain", "guest", "guest"),
        )
        sender = await connection.open_sender(f"/queue/{queue}")
        for message in messages:
            assert await sender.send_and_wait(bytes(message.encode())) == Accepted()
        await connection.aclose()


async def test_foreign_json_messages_on_a_queue_become_documents_and_bad_ones_are_rejected(
    queue,
):
    source = BrokerQueueSource(BROKER, queue, max_size=100, subscribers=[ingest])
    async with app.local() as client:
        running = await source.start(client)
        await wait_for(running, lambda s: s.health == "healthy")
        await publish_foreign(
            queue,
            [
                proton.Message(
                    id="m-1",
                    body=b'{"n": 1}',
                    content_type="application/json",
                    properties={"tenant": "acme"},
                    inferred=True,
                ),
                proton.Message(id="m-1", body=b'{"n": 1}', inferred=True),  # again: runs once
                proton.Message(body='{"n": 2}'),  # a string body, no message id
                proton.Message(body={"n": 3}),  # a structured AMQP value, as it is
                proton.Message(id="bad", body=b"{nope", inferred=True),
                proton.Message(id="big", body=b'"' + b"x" * 200 + b'"', inferred=True),
            ],
        )
        stats = await wait_for(running, lambda s: s.finished + s.rejected_total == 6)
    assert sorted(json.dumps(body) for body in bodies()) == ['{"n": 1}', '{"n": 2}', '{"n": 3}']
    first = next(document for _, document in seen if document.body == {"n": 1})
    assert first.metadata["message_id"] == "m-1"
    assert first.metadata["properties"] == {"tenant": "acme"}
    assert first.metadata["address"] == f"/queue/{queue}"
    assert stats.rejected == {"invalid-json": 1, "oversized": 1}
    assert stats.accepted == 4  # m-1 twice: one document, its calls run once
    # Everything settled, accepted or rejected: the broker counts the last settlement
    # a moment after it arrives, so ask until it has (a message released instead would
    # stay counted, and fail this).
    with trio.fail_after(30):
        while True:
            listed = await trio.run_process(
                ["rabbitmqctl", "-q", "list_queues", "name", "messages"], capture_stdout=True
            )
            if f"{queue}\t0" in listed.stdout.decode().splitlines():
                break
            await trio.sleep(0.2)


async def test_a_broker_that_does_not_answer_makes_the_source_unhealthy():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    source = BrokerQueueSource(f"amqp://127.0.0.1:{port}", "nowhere", subscribers=[ingest])
    async with app.local() as client:
        running = await source.start(client)
        stats = await wait_for(running, lambda s: s.health == "unhealthy")
    assert "cannot consume" in (stats.problem or "")
