"""Theme, stylesheet and keyboard shortcuts (Gradio 6 takes them as ``launch()`` arguments).

The CSS and JS ship in the package (assets/ in a checkout); a missing file only loses the styling or
the shortcuts, never the app. System fonts only: the app must load with no network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from promptopt.workspace import ASSETS

CSS_FILE = ASSETS / "css" / "app.css"
JS_FILE = ASSETS / "js" / "shortcuts.js"

SYSTEM_FONTS = ["system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"]
MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]


def theme() -> gr.themes.Base:
    return gr.themes.Soft(
        primary_hue="indigo",
        secondary_hue="slate",
        font=SYSTEM_FONTS,
        font_mono=MONO_FONTS,
    )


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


def launch_kwargs() -> dict[str, Any]:
    kwargs: dict[str, Any] = {"theme": theme()}
    css = _read(CSS_FILE)
    if css:
        kwargs["css"] = css
    js = _read(JS_FILE)
    if js:
        kwargs["js"] = js
    return kwargs
