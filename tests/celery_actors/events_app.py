"""The app the multi-process event tests run with ``jumpstart run``: an event with
two subscribers, which leave a file named after the worker process that ran them."""

from __future__ import annotations

import os

import trio

from celery_actors import App

app = App("events-app")


@app.event(name="shop.OrderPlaced")
class OrderPlaced:
    order: int
    marker_dir: str


@OrderPlaced.subscribe
@app.task
async def reserve_stock(order: int, marker_dir: str) -> int:
    await trio.Path(marker_dir, f"reserve.{order}.{os.getpid()}").write_text("ran")
    return os.getpid()


@OrderPlaced.subscribe
@app.task
async def send_receipt(order: int, marker_dir: str) -> int:
    await trio.Path(marker_dir, f"receipt.{order}.{os.getpid()}").write_text("ran")
    return os.getpid()
