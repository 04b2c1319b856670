"""Where the browser tests, the UI benchmark and CI find chromium: one rule for all three.

PROMPTOPT_CHROMIUM names it; otherwise the first ``chromium`` on PATH (what ``command -v`` sees);
otherwise Debian's /usr/bin/chromium. Runs with the system python too (no imports of ours), so
CI can ask before the package is installed: ``python3 promptopt/chromium.py`` prints the path,
or exits 1 when there is none.
"""

from __future__ import annotations

import os
import shutil
import sys

DEBIAN_CHROMIUM = "/usr/bin/chromium"


def find_chromium() -> str | None:
    named = os.environ.get("PROMPTOPT_CHROMIUM")
    if named:
        return named if os.access(named, os.X_OK) else None
    found = shutil.which("chromium")
    if found:
        return found
    return DEBIAN_CHROMIUM if os.access(DEBIAN_CHROMIUM, os.X_OK) else None


def required_in_ci() -> bool:
    """CI must not pass by skipping the browser tests (CI=true is set by most CI services)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


if __name__ == "__main__":
    path = find_chromium()
    if path is None:
        sys.exit(1)
    print(path)
