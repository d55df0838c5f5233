"""`python -m clustermass` is the same as `cmcat`."""

from clustermass.cli import main

main()
