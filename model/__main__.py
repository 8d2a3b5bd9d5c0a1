"""`python -m model encode | decode | info` (see model/cli.py)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
