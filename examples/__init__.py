"""Small, runnable jumpstarter programs: ``jumpstart run examples.hello:main``."""
