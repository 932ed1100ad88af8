"""`python -m tinygpt ...` runs the `tinygpt` command (tinygpt/cli.py)."""

import sys

from tinygpt.cli import main

sys.exit(main())
