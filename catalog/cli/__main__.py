"""``python -m catalog.cli``: the ``muscle-catalog`` command, without its console script."""

from catalog.cli.group import main

main()
