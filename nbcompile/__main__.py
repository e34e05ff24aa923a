"""``python -m nbcompile``: the command line."""

from nbcompile.cli import main

main()
