"""`python -m priorsep` runs the command-line interface."""

from priorsep.cli import main

main()
