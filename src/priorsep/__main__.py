"""`python -m priorsep` runs the command-line interface."""

from priorsep.console import main

main()
