"""`python -m meshops` is the `meshops` command."""

from meshops.cli import main

main()
