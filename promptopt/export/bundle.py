"""The JSON bundle: everything the runtime needs to apply a learned prompt outside the app.

Schema (version 1)::

    {"format": "promptopt-bundle", "schema_version": 1,
     "prompt": {"template": "... {input} ...", "prompt_id": 3, "origin": "rephrase",
                "chosen_by": "promoted"},
     "generation": {"model": "gpt-4o-mini", "temperature": 0.7, "max_tokens": 256},
     "preferences": [{"id": 4, "text": "short sentences", "pinned": false, "count": 3},
                     {"id": 7, "text": "bullet points", "pinned": false, "count": 1}],
     "retrieval": {"embedding_model": "all-MiniLM-L6-v2", "dim": 384, "k": 5, "threshold": 0.45},
     "contexts": [{"preference_id": 4, "vector": "<base64 of little-endian float32>",
                   "also": [7]}],
     "leaderboard": [{"prompt_id": 3, "text": "...", "utility": 1.2, "win_rate": 0.7, "votes": 9}],
     "provenance": {"project": "...", "exported_at": "...", "votes": 12, "edits": 5, ...}}

A context is one past round: the preference inferred from it and, in ``also`` (optional), the
observed preferences (bullets, a word limit...) that its revision is evidence for; the runtime
retrieves both by similarity, as the app does.
Vectors are base64 float32 so that they load back bit for bit (a JSON float list would round).
Loading validates the whole document and says which field is wrong; a bundle written by a newer
promptopt is refused with a message that says to upgrade.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from promptopt import __version__
from promptopt.export.data import ContextVector, ExportData
from promptopt.generation import PLACEHOLDER
from promptopt.llm.secrets import public_url

FORMAT_NAME = "promptopt-bundle"
SCHEMA_VERSION = 1
# Versions this code reads. A future schema change adds an upgrade step from the old version
# here, so that every bundle ever written keeps loading.
READABLE_VERSIONS = (1,)


class BundleError(ValueError):
    """A file that is not a usable promptopt bundle; the message says why and what to do."""


class _Model(BaseModel):
    # Unknown keys are ignored rather than refused: a minor addition in a later promptopt must
    # not stop an older runtime from applying the prompt.
    model_config = ConfigDict(extra="ignore")


class PromptSpec(_Model):
    template: str
    prompt_id: int | None = None
    origin: str = "base"
    chosen_by: str = "base"

    @field_validator("template")
    @classmethod
    def _has_placeholder(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the prompt template is empty")
        if PLACEHOLDER not in value:
            raise ValueError("the prompt template has no {input} placeholder")
        return value


class GenerationSpec(_Model):
    model: str | None = None
    temperature: float = 0.7
    max_tokens: int = 256
    seed: int | None = None
    api_base: str | None = None


class PreferenceSpec(_Model):
    id: int
    text: str
    pinned: bool = False
    count: int = 1


class RetrievalSpec(_Model):
    embedding_model: str | None = None
    dim: int | None = None
    k: int = Field(5, ge=1)
    threshold: float = Field(0.5, ge=-1.0, le=1.0)


class ContextSpec(_Model):
    preference_id: int | None  # None: a past round with no usable phrase (still a neighbour)
    vector: str  # base64 float32
    also: list[int] = Field(default_factory=list)  # observed preferences this round supports

    def array(self) -> np.ndarray:
        try:
            raw = base64.b64decode(self.vector, validate=True)
        except ValueError as exc:
            raise BundleError(
                f"A context vector of preference {self.preference_id} is not valid base64."
            ) from exc
        return np.frombuffer(raw, dtype="<f4").astype(np.float32)


class LeaderboardSpec(_Model):
    prompt_id: int
    text: str
    origin: str = ""
    utility: float | None = None
    win_rate: float | None = None
    votes: int = 0


class ProvenanceSpec(_Model):
    project: str
    project_id: int | None = None
    task: str = ""
    annotator: str | None = None
    exported_at: str
    votes: int = 0
    edits: int = 0
    promptopt_version: str = ""
    notes: list[str] = Field(default_factory=list)


class Bundle(_Model):
    format: str
    schema_version: int
    prompt: PromptSpec
    generation: GenerationSpec = Field(default_factory=GenerationSpec)
    preferences: list[PreferenceSpec] = Field(default_factory=list)
    retrieval: RetrievalSpec = Field(default_factory=RetrievalSpec)
    contexts: list[ContextSpec] = Field(default_factory=list)
    leaderboard: list[LeaderboardSpec] = Field(default_factory=list)
    provenance: ProvenanceSpec

    def context_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """(preference ids, (n, dim) float32 vectors) of the stored contexts."""
        # -1 stands for "no phrase" so that the ids fit one integer array.
        ids = np.array(
            [-1 if c.preference_id is None else c.preference_id for c in self.contexts],
            dtype=np.int64,
        )
        if not self.contexts:
            return ids, np.zeros((0, self.retrieval.dim or 0), dtype=np.float32)
        return ids, np.stack([c.array() for c in self.contexts])


def encode_vector(vector: np.ndarray) -> str:
    data = np.ascontiguousarray(vector, dtype="<f4").reshape(-1).tobytes()
    return base64.b64encode(data).decode("ascii")


def build_bundle(data: ExportData) -> dict[str, Any]:
    """The bundle document of one export, as plain JSON-ready data."""
    from promptopt.generation import GenerationSettings

    settings = GenerationSettings.from_project(data.project)
    live = {p.id for p in data.preferences}
    contexts = [c for c in data.contexts if c.preference_id is None or c.preference_id in live]
    dims = {int(c.vector.shape[0]) for c in contexts}
    doc: dict[str, Any] = {
        "format": FORMAT_NAME,
        "schema_version": SCHEMA_VERSION,
        "prompt": {
            "template": data.best.text,
            "prompt_id": data.best.id or None,
            "origin": data.best.origin,
            "chosen_by": data.best_reason,
        },
        "generation": {
            "model": settings.model,
            "temperature": settings.temperature,
            "max_tokens": settings.max_tokens,
            "seed": settings.seed,
            "api_base": public_url(settings.api_base),
        },
        "preferences": [
            {"id": p.id, "text": p.text, "pinned": bool(p.pinned), "count": p.count}
            for p in data.preferences
        ],
        "retrieval": {
            "embedding_model": data.embedding_model,
            "dim": dims.pop() if len(dims) == 1 else None,
            "k": data.k,
            "threshold": data.threshold,
        },
        "contexts": [_context(c, live) for c in contexts],
        "leaderboard": [
            {
                "prompt_id": r.prompt.id,
                "text": r.prompt.text,
                "origin": r.prompt.origin,
                "utility": r.utility,
                "win_rate": r.win_rate,
                "votes": r.votes,
            }
            for r in data.leaderboard
        ],
        "provenance": {
            "project": data.project.name,
            "project_id": data.project.id,
            "task": data.project.task,
            "annotator": data.annotator,
            "exported_at": data.exported_at,
            "votes": data.votes,
            "edits": len(data.edits),
            "promptopt_version": __version__,
            "notes": data.notes,
        },
    }
    return doc


def _context(context: ContextVector, live: set[int]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "preference_id": context.preference_id,
        "vector": encode_vector(context.vector),
    }
    also = [i for i in context.also if i in live]
    if also:  # absent when empty, so bundles without observed preferences are unchanged
        doc["also"] = also
    return doc


def parse_bundle(doc: Any, source: str = "the bundle") -> Bundle:
    """Validate a decoded bundle document; every problem becomes one BundleError line."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        raise BundleError(
            f'{source} is not a promptopt bundle (no "format": "{FORMAT_NAME}"). Export one '
            "with `promptopt export PROJECT --format bundle`."
        )
    version = doc.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise BundleError(f"{source} has no valid schema_version; export it again.")
    if version > SCHEMA_VERSION:
        raise BundleError(
            f"{source} uses bundle schema version {version}, newer than this promptopt "
            f"({__version__}) reads (up to {SCHEMA_VERSION}). Upgrade promptopt: "
            "pip install -U promptopt."
        )
    if version not in READABLE_VERSIONS:
        raise BundleError(
            f"{source} uses bundle schema version {version}, which this promptopt no longer "
            f"reads (it reads {', '.join(map(str, READABLE_VERSIONS))}). Export the project "
            "again with this version."
        )
    try:
        bundle = Bundle.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise BundleError(
            f"{source} is not a valid bundle: {where}: {first['msg']} "
            f"({exc.error_count()} problem(s)). Export it again."
        ) from exc
    _check_vectors(bundle, source)
    return bundle


def _check_vectors(bundle: Bundle, source: str) -> None:
    known = {p.id for p in bundle.preferences}
    dims = set()
    for c in bundle.contexts:
        for pref_id in [c.preference_id, *c.also]:
            if pref_id is not None and pref_id not in known:
                raise BundleError(
                    f"{source}: a context points to preference {pref_id}, which the bundle "
                    "does not contain. Export it again."
                )
        dims.add(c.array().shape[0])
    if len(dims) > 1 or (bundle.retrieval.dim is not None and dims - {bundle.retrieval.dim}):
        raise BundleError(f"{source}: its context vectors have different sizes. Export it again.")
    if bundle.contexts and not bundle.retrieval.embedding_model:
        raise BundleError(f"{source} has context vectors but no embedding model name.")


def read_bundle(path: str | Path) -> Bundle:
    """Load and validate a bundle file."""
    file = Path(path).expanduser()
    if file.is_dir():
        raise BundleError(f"{file} is a folder; give the path of a .json bundle file.")
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise BundleError(f"No bundle at {file}; check the path.") from exc
    except OSError as exc:
        raise BundleError(f"Cannot read {file} ({exc.strerror}).") from exc
    except UnicodeDecodeError as exc:
        raise BundleError(f"{file} is not a text file; give a .json bundle.") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BundleError(
            f"{file} is not valid JSON (line {exc.lineno}: {exc.msg}); export it again."
        ) from exc
    return parse_bundle(doc, source=str(file))
