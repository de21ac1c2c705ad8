"""`python -m keymoments.cli` runs the command line."""

from keymoments.cli import main

main()
