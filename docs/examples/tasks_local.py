"""Tasks with celery_actors: a router and a worker in this process, called from async code."""

import trio

from celery_actors import App, RetryPolicy, TaskFailed, optional, poisonous

app = App("shop")
attempts = {"charge": 0}


@app.task
async def add(x: int, y: int) -> int:
    """async def: I/O-bound, runs as a coroutine on the worker."""
    return x + y


@app.task
def checksum(data: bytes) -> int:
    """def: blocking or CPU-bound, runs in a worker thread."""
    return sum(data) % 251


@app.task(retry=RetryPolicy(max_retries=5, interval_start=0.01, interval_step=0.01))
async def charge(order: str) -> str:
    attempts["charge"] += 1
    with optional():  # not important: a failure here is logged, and the task goes on
        raise ConnectionError("the analytics service is down")
    if attempts["charge"] < 3:
        raise TimeoutError("the payment gateway timed out")  # retried by the policy
    return f"{order} charged after {attempts['charge']} attempts"


@app.task
async def parse(text: str) -> int:
    with poisonous():  # retrying would fail the same way: fail at once, quarantine
        return int(text)


async def main() -> None:
    async with app.local(workers=2, concurrency=8):
        total = await add.delay(2, 3)
        print("add:", await total.get(timeout=5))
        print("checksum:", await (await checksum.delay(b"jumpstarter")).get(timeout=5))
        print("charge:", await (await charge.delay("order-7")).get(timeout=5))
        try:
            await (await parse.delay("seven")).get(timeout=5)
        except TaskFailed as failure:
            print("parse:", failure)
        results = [await add.apply_async((i, i), priority=i % 10) for i in range(100)]
        print("100 calls:", sum([await r.get(timeout=5) for r in results]))


if __name__ == "__main__":
    trio.run(main)
