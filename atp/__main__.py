"""`python -m atp`: the `atp` command line."""

from atp.tools.cli import main

main()
