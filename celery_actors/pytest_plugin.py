"""Pytest fixtures for testing an app's tasks (a plugin registered through an entry point).

With celery_actors and pytest-trio installed, these fixtures are available in every test:

* ``celery_app`` — the app under test. Override it in your ``conftest.py`` to return your
  :class:`~celery_actors.App`; by default it fails and says so.
* ``celery_workers`` (``1``) and ``celery_concurrency`` (``10``) — how
  ``celery_harness`` runs the app; override them to change that.
* ``celery_harness`` — the :class:`~celery_actors.testing.Harness` of ``celery_app``
  running in the test's trio run (see :func:`~celery_actors.testing.run_app`).

``celery_harness`` is an async fixture: it works in trio tests (pytest-trio's
``trio_mode``, or tests marked ``@pytest.mark.trio``). Add pytest-trio's
``autojump_clock`` to a test to run countdowns, retries and time limits in virtual time::

    async def test_charge_is_retried(celery_harness, autojump_clock):
        await charge.delay("order-7")
        (result,) = await celery_harness.drain()
        assert result.state == "succeeded" and result.attempt == 2
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ._app import App
from .testing import Harness, run_app

__all__ = ["celery_app", "celery_concurrency", "celery_harness", "celery_workers"]


@pytest.fixture
def celery_app() -> App:
    """The app under test: override this fixture to return yours."""
    pytest.fail(
        "celery_harness runs the app that the celery_app fixture returns, and no "
        "celery_app fixture is defined: add one to your conftest.py that returns your "
        "App, e.g.\n\n"
        "    @pytest.fixture\n"
        "    def celery_app():\n"
        "        return app\n",
        pytrace=False,
    )


@pytest.fixture
def celery_workers() -> int:
    """How many workers ``celery_harness`` runs: override to change."""
    return 1


@pytest.fixture
def celery_concurrency() -> int:
    """How many calls each of ``celery_harness``'s workers runs at once: override to
    change."""
    return 10


@pytest.fixture
async def celery_harness(
    celery_app: App, celery_workers: int, celery_concurrency: int
) -> AsyncIterator[Harness]:
    """``celery_app``'s router and workers running in the test's trio run, and the
    harness to assert on its calls with; stopped when the test ends."""
    async with run_app(
        celery_app, workers=celery_workers, concurrency=celery_concurrency
    ) as harness:
        yield harness
