"""Where the runtime assets (samples, CSS, JS, benchmark documents) live.

They ship inside the installed package as ``promptopt/assets``; in a checkout that folder is a link
to the top-level ``assets/`` the README describes, so both layouts read the same files.
"""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"
