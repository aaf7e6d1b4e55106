"""Canvas with celery_actors: chains, groups, chords and their results, in one process."""

import trio

from celery_actors import NO_RETRY, App, TaskError, TaskFailed, chain, chord, group

app = App("canvas-demo")


@app.task
async def fetch(page: int) -> list[int]:
    return [page * 10 + n for n in range(3)]


@app.task
def count(items: list[int]) -> int:
    return len(items)


@app.task
def total(counts: list[int]) -> int:
    return sum(counts)


@app.task
async def double(x: int) -> int:
    return 2 * x


@app.task(retry=NO_RETRY)  # a bad input fails at once
async def parse(text: str) -> int:
    return int(text)


@app.task
async def fallback(error: TaskError) -> int:
    print(f"  parse failed ({error.type}), using 0")
    return 0


async def main() -> None:
    async with app.local(workers=2, concurrency=8):
        # A chain: each step gets the result before it.
        pipeline = fetch.s(1) | count.s() | double.s()
        print("chain:", await (await pipeline.delay()).get(timeout=10))

        # A group: members at once, their results in order.
        pages = group(fetch.s(page) for page in range(3))
        print("group:", await (await pages.delay()).get(timeout=10))

        # A chord: the body gets the list of the header's results.
        counted = chord((fetch.s(page) | count.s() for page in range(5)), total.s())
        result = await counted.delay()
        async for member in result.results(timeout=10):  # partial results as they come
            print(f"  {member.id.split('/')[1]:8} {member.task:>20} -> {member.value}")
        print("chord:", await result.get(timeout=10))

        # map, starmap and chunks: many calls of one task, compact on the wire.
        print("map:", await (await double.map(range(5)).delay()).get(timeout=10))
        print("chunks:", await (await double.chunks([(n,) for n in range(7)], 3).delay()).get())

        # Errors: a handler's result stands for what failed, and the chain goes on.
        recovered = chain(parse.si("not a number").on_error(fallback.s()), double.s())
        print("recovered:", await (await recovered.delay()).get(timeout=10))

        # A failed member fails its chord, and the error names it.
        broken = chord([parse.si("1"), parse.si("x")], total.s())
        failed = await broken.delay()
        try:
            await failed.get(timeout=10)
        except TaskFailed as exc:
            print("chord failed:", exc.result.error.message.split(":")[0])
        for member in (await failed.status()).members:
            print(f"  {member.path:6} {member.task:>20} {member.state}")


if __name__ == "__main__":
    trio.run(main)
