"""A workflow: checked when it is made, drawn, then started with different inputs."""

import trio

from celery_actors import App, Workflow, WorkflowInvalid, chord, group

app = App("shop")

PRICES = {"tea": 2.5, "coffee": 4.0, "cocoa": 3.2}


@app.task(name="unit_price")
async def unit_price(item: str) -> float:
    return PRICES[item]


@app.task(name="for_quantity")
async def for_quantity(unit: float, quantity: int) -> float:
    discount = 0.1 if quantity >= 10 else 0.0
    return round(unit * quantity * (1 - discount), 2)


@app.task(name="price_list")
async def price_list(prices: list[float]) -> str:
    return " / ".join(f"{price:.2f}" for price in prices)


quote = Workflow(
    unit_price.s() | chord(group(for_quantity.s(q) for q in (1, 10, 100)), price_list.s()),
    app=app,
    name="quote",
)


async def main() -> None:
    print(quote.to_mermaid())
    try:
        Workflow(unit_price.s() | price_list.s(), app=app, name="broken")
    except WorkflowInvalid as exc:
        print(exc, end="\n\n")
    async with app.local():
        started = {item: await quote.delay(item) for item in PRICES}
        for item, result in started.items():
            print(f"{item}: {await result.get(timeout=10)}")


trio.run(main)
