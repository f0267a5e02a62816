"""``python -m aupipe`` runs the command line."""

import sys

from .cli import main

if __name__ == "__main__":  # worker processes (spawn) import this module again: run nothing there
    sys.exit(main())
