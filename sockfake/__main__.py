"""``python -m sockfake``: the command line (see ``sockfake.cli``)."""

from sockfake.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
