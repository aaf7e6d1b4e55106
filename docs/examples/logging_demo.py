"""Structured logs with eliot: one action per handled message, one tree per request."""

import contextlib
import io
import json

import attrs
import eliot
import trio

from jumpstarter import Actor, ActorRef, ActorSystem, disable_logging, enable_logging, handler


@attrs.frozen
class Order:
    item: str


@attrs.frozen
class Reserve:
    item: str


class Stock(Actor):
    @handler
    def reserve(self, msg: Reserve) -> bool:
        return msg.item != "unobtainium"


class Shop(Actor):
    def __init__(self, stock: ActorRef) -> None:
        self.stock = stock

    @handler
    async def order(self, msg: Order) -> str:
        if not await self.stock.ask(Reserve(msg.item)):
            raise LookupError(f"{msg.item} is out of stock")
        return "ordered"


async def main() -> None:
    async with ActorSystem("shop") as system:
        stock = await system.spawn(Stock, name="stock")
        shop = await system.spawn(Shop, stock, name="shop")
        # Your own eliot action: the actors' actions become its children.
        with eliot.start_action(action_type="checkout", customer="ada"):
            await shop.ask(Order("book"))
            with contextlib.suppress(LookupError):
                await shop.ask(Order("unobtainium"))  # the shop crashes and is restarted
        await system.wait_for_state(shop, "started")

        for path, stats in system.statistics().actors.items():
            print(
                f"{path:<22} {stats.state:<24} received={stats.received} "
                f"handled={stats.handled} failed={stats.failed} restarts={stats.restarts}"
            )


if __name__ == "__main__":
    lines = io.StringIO()
    enable_logging(lines)  # or "stdout", "stderr", a file path; or JUMPSTARTER_LOG=...
    try:
        trio.run(main)
    finally:
        disable_logging()

    messages = [json.loads(line) for line in lines.getvalue().splitlines()]
    print("task ids:", len({m["task_uuid"] for m in messages}))
    for m in messages:
        if m.get("action_type") == "jumpstarter:handle" or m.get("action_type") == "checkout":
            indent = "  " * (len(m["task_level"]) - 1)
            fields = {k: m[k] for k in ("actor", "message_type", "exception", "reason") if k in m}
            print(f"{indent}{m['action_type']} {m['action_status']} {fields}")
