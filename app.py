"""Start the promptopt web app: ``python app.py`` (same options as ``promptopt serve``)."""

import sys

from promptopt.ui.serve_cli import main

if __name__ == "__main__":
    sys.exit(main())
