"""Celery rebuilt on jumpstarter's actors: tasks, workers, routers and canvas."""

__all__: list[str] = []
