"""Retries and quarantine: a task whose blocks say what their failures mean, and the
calls that fail for good, inspected and run again once the cause is fixed.

``record`` stores a sensor reading in two places: the raw reading (nice to have) and a
time span computed from it (must happen). Bad input is poisonous: running it again
would fail again. The services it talks to are stand-ins that fail on demand.
"""

import trio

from celery_actors import App, RetryPolicy, TaskFailed, optional, poisonous, retry

# Every task of the app retries twice, quickly (the default is 3 retries within a second).
app = App("ingest", retry=RetryPolicy(max_retries=2, interval_start=0.01, interval_step=0.01))

raw_rows: list[dict[str, float]] = []
spans: list[float] = []
outages = {"raw": 0, "spans": 0}  # how many more calls each stand-in service fails


async def insert_raw(reading: dict[str, float]) -> None:
    await trio.sleep(0.001)  # a round trip to the service
    if outages["raw"]:
        outages["raw"] -= 1
        raise ConnectionError("the raw store is down")
    raw_rows.append(reading)


async def insert_span(reading: dict[str, float]) -> None:
    await trio.sleep(0.001)  # a round trip to the service
    if outages["spans"]:
        outages["spans"] -= 1
        raise TimeoutError("the span store timed out")
    spans.append(reading["end"] - reading["start"])


def validate(reading: dict[str, float]) -> None:
    if reading["end"] < reading["start"]:
        raise ValueError(f"the reading ends before it starts: {reading}")


@app.task
async def record(reading: dict[str, float]) -> float:
    with poisonous():  # bad input stays bad: fail at once, quarantine the call
        validate(reading)
    with optional(ConnectionError):  # nice to have: log a warning and go on
        await insert_raw(reading)
    with retry(max_retries=5, interval_start=0.01, interval_step=0.02, interval_max=0.05):
        await insert_span(reading)  # must happen: retry patiently
    return spans[-1]


async def main() -> None:
    policy = RetryPolicy(max_retries=5, interval_start=0.01, interval_step=0.02, jitter=0)
    print("delays:", [round(policy.delay(n), 3) for n in range(5)])  # 0.01 0.03 0.05 0.07 0.09
    capped = RetryPolicy(interval_start=1.0, interval_step=10.0, interval_max=15.0, jitter=0)
    print("capped:", [capped.delay(n) for n in range(3)])  # [1.0, 11.0, 15.0]

    async with app.local() as client:
        outages["raw"] = 1  # optional step fails: logged, the call succeeds at once
        result = await (await record.delay({"start": 0.0, "end": 2.5})).wait(timeout=10)
        print("raw store down:", result.state, result.value, "attempt", result.attempt)
        assert (result.state, result.attempt, raw_rows) == ("succeeded", 0, [])

        outages["spans"] = 3  # three failures: the retry() block allows five retries
        result = await (await record.delay({"start": 1.0, "end": 4.0})).wait(timeout=10)
        print("span store flaky:", result.state, "after", result.attempt, "retries")
        assert (result.state, result.attempt) == ("succeeded", 3)

        bad = await record.delay({"start": 5.0, "end": 1.0})
        try:
            await bad.get(timeout=10)
        except TaskFailed as failure:
            print("bad input:", failure)  # quarantined at once, attempt 0
            assert failure.result.quarantined and failure.result.attempt == 0

        outages["spans"] = 100  # a long outage: past the block's five retries
        down = await record.delay({"start": 2.0, "end": 3.0})
        result = await down.wait(timeout=10)
        print("span store down:", result.state, result.quarantined, "after", result.attempt)
        assert (result.quarantined, result.attempt) == (True, 5)

        kept = await client.quarantine()  # oldest first, with their arguments
        for call in kept:
            print("quarantined:", call.call.id, call.call.args, call.result.error.type)
        assert [call.call.id for call in kept] == [bad.id, down.id]

        outages["spans"] = 0  # the span store is back: run the call again
        rerun = await client.retry_quarantined(down.id)
        assert rerun is not None and rerun.id != down.id  # a new call, a new id
        print("re-run:", await rerun.get(timeout=10))
        assert await client.drop_quarantined(bad.id)  # nothing to fix: forget it
        assert await client.quarantine() == []
        assert (await down.wait()).state == "failed"  # the first failure stays stored


if __name__ == "__main__":
    trio.run(main)
