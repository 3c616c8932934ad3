"""``python -m aftercare`` is the ``aftercare`` command."""

from aftercare.cli import main

main()
