"""``python -m promptopt``: the same as the ``promptopt`` command."""

import sys

from promptopt.cli import main

sys.exit(main())
