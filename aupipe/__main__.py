"""``python -m aupipe`` runs the command line."""

from aupipe.cli.main import entry

if __name__ == "__main__":  # worker processes (spawn) import this module again: run nothing there
    entry()
