"""Resources: context managers an actor holds while it runs."""

import contextlib
import tempfile
from pathlib import Path

import attrs
import trio

from jumpstarter import Actor, ActorStartError, ActorSystem, handler, resource


@contextlib.asynccontextmanager
async def connect(url: str):
    print(f"  connect to {url}")
    await trio.sleep(0.01)
    if "down" in url:
        raise ConnectionError(f"{url} does not answer")
    yield f"<connection to {url}>"
    print(f"  disconnect from {url}")


@attrs.frozen
class Record:
    text: str


class Journal(Actor):
    def __init__(self, url: str, path: Path) -> None:
        self.url = url
        self.file = path

    # Acquired in declaration order while the actor starts...
    @resource
    def db(self):
        return connect(self.url)  # an async context manager

    @resource
    def log(self):
        return open(self.file, "a")  # a plain one: entered and exited in a worker thread

    # ...then on_start runs. on_stop runs before the resources are released,
    # in reverse order, when the actor stops or before it restarts.
    def on_start(self) -> None:
        print(f"  on_start: db is {self.db}")

    def on_stop(self) -> None:
        print("  on_stop")

    @handler
    def record(self, msg: Record) -> None:
        self.log.write(msg.text + "\n")


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "journal.txt"
        async with ActorSystem("journal") as system:
            print("spawn:")
            journal = await system.spawn(Journal, "db://primary", path)
            await journal.tell(Record("hello"))
            print("stop:")
            await system.stop(journal, drain=True)
            print("written:", path.read_text().strip())

            print("spawn with a database that is down:")
            try:
                await system.spawn(Journal, "db://down", path)
            except ActorStartError as exc:
                print("  ActorStartError caused by", repr(exc.__cause__))


if __name__ == "__main__":
    trio.run(main)
