"""`python -m tailorkit ...`: the same as the `tailorkit` command."""

from __future__ import annotations

import sys

from tailorkit.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
