import io
import json
import os
import subprocess
import sys

import attrs
import pytest

from jumpstarter import (
    Actor,
    ActorSystem,
    disable_logging,
    enable_logging,
    handler,
    logging_enabled,
)


@attrs.frozen
class Order:
    item: str


@attrs.frozen
class Reserve:
    item: str


class Stock(Actor):
    @handler
    async def reserve(self, msg: Reserve) -> bool:
        return msg.item != "unobtainium"


class Shop(Actor):
    def __init__(self, stock) -> None:
        self.stock = stock

    @handler
    async def order(self, msg: Order) -> str:
        ok = await self.stock.ask(Reserve(msg.item))
        if not ok:
            raise LookupError(f"{msg.item} is out of stock")
        return "ordered"


@pytest.fixture
def log_lines():
    stream = io.StringIO()
    enable_logging(stream)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        disable_logging()


async def test_logging_is_off_by_default():
    assert not logging_enabled()


async def test_a_chain_of_asks_forms_one_tree_of_actions(log_lines):
    async with ActorSystem("shop") as system:
        stock = await system.spawn(Stock, name="stock")
        shop = await system.spawn(Shop, stock, name="shop")
        assert await shop.ask(Order("book")) == "ordered"
    handles = [line for line in log_lines() if line.get("action_type") == "jumpstarter:handle"]
    started = [line for line in handles if line["action_status"] == "started"]
    assert {line["actor"] for line in started} == {"/user/shop", "/user/stock"}
    assert {line["message_type"] for line in started} == {"Order", "Reserve"}
    assert len({line["task_uuid"] for line in started}) == 1, "one tree, one task id"
    succeeded = [line for line in handles if line["action_status"] == "succeeded"]
    assert len(succeeded) == 2
    assert all(line["duration"] >= 0 for line in succeeded)


async def test_a_failing_handler_is_logged_with_its_exception(log_lines):
    async with ActorSystem("shop") as system:
        stock = await system.spawn(Stock)
        shop = await system.spawn(Shop, stock)
        with pytest.raises(LookupError):
            await shop.ask(Order("unobtainium"))
    failed = [
        line
        for line in log_lines()
        if line.get("action_type") == "jumpstarter:handle" and line["action_status"] == "failed"
    ]
    assert len(failed) == 1
    assert failed[0]["exception"].endswith("LookupError")
    assert "out of stock" in failed[0]["reason"]


async def test_logging_can_be_turned_off_again(log_lines):
    disable_logging()
    async with ActorSystem("shop") as system:
        stock = await system.spawn(Stock)
        await stock.ask(Reserve("pen"))
    assert log_lines() == []


def test_the_environment_variable_turns_logging_on_for_a_file(tmp_path):
    target = tmp_path / "log.json"
    script = (
        "import trio, attrs\n"
        "from jumpstarter import Actor, ActorSystem, handler\n"
        "class Echo(Actor):\n"
        "    @handler\n"
        "    def echo(self, msg: str) -> str:\n"
        "        return msg\n"
        "async def main():\n"
        "    async with ActorSystem('env') as system:\n"
        "        ref = await system.spawn(Echo, name='echo')\n"
        "        await ref.tell('hi')\n"
        "trio.run(main)\n"
    )
    env = {**os.environ, "JUMPSTARTER_LOG": str(target)}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=60)
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert any(line.get("actor") == "/user/echo" for line in lines)
