"""`python -m mpk ...`: the `mpk` command where it is not installed (the GPU machine)."""

import sys

from mpk.cli import main

sys.exit(main())
