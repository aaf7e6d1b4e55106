"""``python -m jumpstarter`` is the ``jumpstart`` command."""

from ._cli import main

main()
