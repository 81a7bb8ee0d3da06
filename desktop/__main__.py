"""python -m desktop: the console (Qt), --headless, or a CLI subcommand (no Qt imported)."""

import sys

from desktop.cli import main

if __name__ == "__main__":
    sys.exit(main())
