"""Run aftercare from a checkout: ``python cli.py ...`` is the installed ``aftercare`` command."""

from aftercare.cli import main

if __name__ == "__main__":
    main()
