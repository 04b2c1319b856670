"""Exporting what a project learned, and the runtime that applies an exported bundle.

``FORMATS`` lists the format ids in display order with their label and file extension;
``export_project(store, project_id, fmt)`` returns ``(file name, file text)``; ``write_export``
saves it with errors a user can act on. No export contains an API key: keys are never read
here, and every export is scrubbed of secret-looking environment values as a second guard.
"""

from __future__ import annotations

import json
import logging
import os
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

from promptopt.export.data import ExportData, collect
from promptopt.storage import Store

log = logging.getLogger("promptopt.export")

FORMATS: dict[str, tuple[str, str]] = {
    "markdown": ("Plain text / Markdown", ".md"),
    "bundle": ("promptopt bundle (JSON, for promptopt.load)", ".json"),
    "openai": ("OpenAI chat messages (JSON)", ".json"),
    "llm": ("llm CLI template (YAML)", ".yaml"),
    "promptfoo": ("promptfoo config (YAML)", ".yaml"),
    "pairs": ("Preference pairs for DPO (JSONL)", ".jsonl"),
    "votes-csv": ("All votes and edits (CSV)", ".csv"),
    "votes-jsonl": ("All votes and edits (JSONL)", ".jsonl"),
}

_SUFFIX = {
    "markdown": "prompt",
    "bundle": "bundle",
    "openai": "openai",
    "llm": "llm",
    "promptfoo": "promptfooconfig",
    "pairs": "pairs",
    "votes-csv": "votes",
    "votes-jsonl": "votes",
}


class ExportError(ValueError):
    """An export that cannot be made or saved; the message says what to do."""


def _renderers() -> dict[str, Callable[[ExportData, Store], str]]:
    from promptopt.export import formats
    from promptopt.export.bundle import build_bundle

    def to_bundle(data: ExportData, store: Store) -> str:
        return json.dumps(build_bundle(data), ensure_ascii=False, indent=2) + "\n"

    return {
        "markdown": formats.to_markdown,
        "bundle": to_bundle,
        "openai": formats.to_openai,
        "llm": formats.to_llm,
        "promptfoo": formats.to_promptfoo,
        "pairs": formats.to_pairs,
        "votes-csv": formats.to_votes_csv,
        "votes-jsonl": formats.to_votes_jsonl,
    }


def safe_filename(name: str, fallback: str = "project") -> str:
    """A file name stem safe on every OS: lower-case ASCII letters, digits, dash, underscore.

    No dots, so no ``..`` and no hidden files; callers add a suffix, so Windows device names
    such as ``con`` never stand alone."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", ascii_name).strip("-_").lower()
    stem = re.sub(r"-{2,}", "-", stem)[:60].strip("-_")
    return stem or fallback


def export_filename(project_name: str, project_id: int, fmt: str) -> str:
    stem = safe_filename(project_name, fallback=f"project-{project_id}")
    return f"{stem}-{_SUFFIX[fmt]}{FORMATS[fmt][1]}"


def export_project(
    store: Store,
    project_id: int,
    fmt: str,
    annotator: str | None = None,
    *,
    compare: Any = "auto",
    model: str | None = None,
) -> tuple[str, str]:
    """(sanitised file name, file text) of one export.

    ``annotator`` limits the export to one person's feedback and profile (all when None).
    With an annotator, the Compare engine's leaderboard and best prompt are used: pass the
    app's ``CompareService`` as ``compare`` (cheapest), or leave ``"auto"`` to build one with
    the default embedder; ``None`` ranks by plain win rates. Any engine failure falls back to
    win rates and is noted in the bundle's provenance. ``model`` names the model that the
    OpenAI, ``llm`` and promptfoo exports are for (default: the project's).
    """
    if fmt not in FORMATS:
        raise ExportError(f"Unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    if isinstance(compare, str) and compare == "auto":
        # Votes exports list feedback as recorded: no ranking, so no engine to start.
        wanted = annotator is not None and not fmt.startswith("votes-")
        compare = default_compare_service(store) if wanted else None
    data = collect(store, project_id, annotator, compare=compare, model_override=model)
    text = _renderers()[fmt](data, store)
    return export_filename(data.project.name, data.project.id, fmt), scrub_secrets(text)


def default_compare_service(store: Store) -> Any:
    """A CompareService over the default embedder, or None when the engine is not installed
    or cannot start (exports then rank by win rates)."""
    try:
        from promptopt.compare.service import CompareService
        from promptopt.embeddings import create_embedder
        from promptopt.llm import create_client

        # PROMPTOPT_EMBEDDER picks the embedder as it does for the app (fake in demos and tests).
        embedder = create_embedder(os.environ.get("PROMPTOPT_EMBEDDER", "default"))
        return CompareService(store, create_client(store), embedder)
    except Exception as exc:  # an optional refinement: never a reason to fail an export
        log.warning("Compare engine unavailable for export (%s); using win rates", exc)
        return None


# Values of these environment variables never appear in an export.
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH", re.IGNORECASE)
# Shapes of provider keys, caught even when the key is not in this process's environment.
_KEY_SHAPES = re.compile(
    r"\b(?:sk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}|AIza[0-9A-Za-z_-]{30,}|hf_[A-Za-z0-9]{30,}"
    r"|gh[pousr]_[A-Za-z0-9]{30,}|xox[baprs]-[A-Za-z0-9-]{20,})"
)
_MIN_SECRET = 8  # shorter values (e.g. "1", "true") would blank ordinary words


def scrub_secrets(text: str, environ: dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    secrets: set[str] = set()
    for name, value in env.items():
        if not value or not _SECRET_NAME.search(name):
            continue
        secrets.add(value)
        # "user:password,user2:password2" style lists: each password on its own as well.
        for piece in re.split(r"[,;\s]+", value):
            if ":" in piece:
                secrets.add(piece.split(":", 1)[1])
    for secret in sorted((s for s in secrets if len(s) >= _MIN_SECRET), key=len, reverse=True):
        text = text.replace(secret, "[REDACTED]")
    return _KEY_SHAPES.sub("[REDACTED]", text)


def write_export(text: str, out: str | Path, filename: str | None = None) -> Path:
    """Save an export. ``out`` is a file path, or a folder to put ``filename`` in: an existing
    folder, or a path that ends with a separator (``exports/``), which is created if needed."""
    path = Path(out).expanduser()
    if str(out).endswith(("/", os.sep)) or path.is_dir():
        if filename is None:
            raise ExportError(f"{path} is a folder; give a file path.")
        if path.exists() and not path.is_dir():
            raise ExportError(f"{path} is a file, not a folder; pick another path.")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ExportError(
                f"Cannot create the folder {path} ({exc.strerror}). Pick another path."
            ) from exc
        path = path / filename
    folder = path.parent
    if not folder.exists():
        raise ExportError(f"The folder {folder} does not exist; create it or pick another path.")
    if not folder.is_dir():
        raise ExportError(f"{folder} is not a folder; pick another path.")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ExportError(f"Cannot write to {path}: permission denied. Pick a writable path.")
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8", newline="")  # line ends as the format wrote them
        tmp.replace(path)  # whole file or nothing: never a half-written export
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ExportError(f"Cannot write to {path} ({exc.strerror}). Pick another path.") from exc
    return path


def load(path: str | Path) -> Any:
    """Load a bundle for use: see ``promptopt.export.runtime.PromptRuntime``."""
    from promptopt.export.runtime import load as _load

    return _load(path)


__all__ = [
    "FORMATS",
    "ExportError",
    "default_compare_service",
    "export_filename",
    "export_project",
    "load",
    "safe_filename",
    "scrub_secrets",
    "write_export",
]
