"""A first celery_actors app: two tasks, called from a router and a worker in this process.

The router and worker processes of the getting-started guide import this module
(``jumpstart run first_tasks:app --role router``), and so do the clients that call
its tasks from other processes (``first_processes.py``).
"""

import trio

from celery_actors import App

app = App("first")


@app.task
async def add(x: int, y: int) -> int:
    """async def: runs as a coroutine on a worker, for I/O-bound work."""
    await trio.sleep(0.01)  # waiting for a database or another service
    return x + y


@app.task
def word_count(text: str) -> int:
    """def: runs in a worker thread, for blocking or CPU-bound work."""
    return len(text.split())


async def main() -> None:
    async with app.local():  # a router and a worker in this trio run, and a client
        result = await add.delay(2, 3)  # returns as soon as the router holds the call
        print("add(2, 3) =", await result.get(timeout=10))
        lines = ["one", "two words", "and three words"]
        counts = [await word_count.delay(line) for line in lines]
        print("word counts:", [await count.get(timeout=10) for count in counts])


if __name__ == "__main__":
    trio.run(main)
