"""``python -m jobfleet.cli``: what background runners are started as."""

from jobfleet.cli import main

main()
