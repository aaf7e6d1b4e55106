"""A webhook source: documents POSTed as JSON become calls of a subscribed task."""

import json
import urllib.error
import urllib.request

import trio

from celery_actors import App, Document, WebhookSource

app = App("orders")


@app.task
async def ingest(document: Document) -> int:
    return len(document.body["items"])


def post(url: str, body: bytes, key: str) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, data=body, headers={"Idempotency-Key": key})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


async def main() -> None:
    orders = WebhookSource("127.0.0.1", 0, "/orders", subscribers=[ingest])
    async with app.local() as client:
        source = await orders.start(client)
        url = (await source.stats()).where  # port 0: the port it was given
        status, answer = await trio.to_thread.run_sync(
            post, url, b'{"items": ["tea", "cake"]}', "order-1"
        )
        (call,) = answer["calls"]
        print(status, "items:", await client.result(call).get(timeout=10))
        status, answer = await trio.to_thread.run_sync(post, url, b"{oops", "order-2")
        print(status, answer["error"])
        stats = await source.stats()
        print(f"accepted={stats.accepted} rejected={stats.rejected} health={stats.health}")


if __name__ == "__main__":
    trio.run(main)
