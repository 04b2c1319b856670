"""Applying an exported bundle outside the app: ``promptopt.load(path)``.

``render(input)`` embeds the input with the bundle's embedding model, retrieves the preferences
of the most similar stored contexts (cosine top-k above the bundle's threshold, as the Edit
engine does), adds the pinned ones, and returns the messages to send. ``complete(input)`` also
sends them through promptopt's LLM client. No database and no app are involved.

Where the Edit engine condenses several retrieved phrases with an LLM, the runtime joins them
instead, so that ``render`` stays offline, fast and deterministic.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from promptopt.export.bundle import Bundle, BundleError, read_bundle
from promptopt.export.data import join_preferences
from promptopt.generation import build_messages

if TYPE_CHECKING:
    from promptopt.embeddings import Embedder
    from promptopt.llm import LLMClient


@dataclass
class AppliedPreference:
    id: int
    text: str
    pinned: bool
    score: float | None  # cosine similarity of the nearest context; None for pinned-only


def embedder_for(model: str | None) -> Embedder:
    """The embedder a bundle was made with. Only the offline default and the test fake load
    without a model download; another name is tried as a local sentence-transformers folder."""
    from promptopt.embeddings import create_embedder
    from promptopt.embeddings.encoder import DEFAULT_MODEL

    if model is None or model == DEFAULT_MODEL:
        return create_embedder("default")
    if model.startswith("fake"):
        from promptopt.embeddings import FakeEmbedder

        name, _, dim = model.rpartition("-")
        if not dim.isdigit():
            raise BundleError(f"Unknown fake embedder name {model!r} in the bundle.")
        return FakeEmbedder(dim=int(dim), name=name)
    try:
        return create_embedder(model)
    except Exception as exc:
        raise BundleError(
            f"The bundle's preferences were embedded with {model!r}, which cannot be loaded here "
            f"({exc}). Pass embedder= to promptopt.load with that model."
        ) from exc


class PromptRuntime:
    """A learned prompt with its preference memory, ready to apply to new inputs."""

    def __init__(self, bundle: Bundle, *, embedder: Embedder | None = None) -> None:
        self.bundle = bundle
        self._embedder = embedder
        self._ids, vectors = bundle.context_matrix()
        # Exports hold normalised vectors; normalising once more guards hand-made bundles, so
        # that the inner product is the cosine.
        norms = np.linalg.norm(vectors, axis=1, keepdims=True) if len(vectors) else None
        if norms is not None:
            norms[norms == 0] = 1.0
            vectors = np.ascontiguousarray(vectors / norms, dtype=np.float32)
        self._vectors = vectors
        self._pref = {p.id: p for p in bundle.preferences}
        if embedder is not None and self._vectors.shape[0]:
            self._check_embedder(embedder)

    # -- properties -------------------------------------------------------------------------
    @property
    def template(self) -> str:
        return self.bundle.prompt.template

    @property
    def model(self) -> str | None:
        return self.bundle.generation.model

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = embedder_for(self.bundle.retrieval.embedding_model)
            self._check_embedder(self._embedder)
        return self._embedder

    def _check_embedder(self, embedder: Embedder) -> None:
        expected = self.bundle.retrieval.embedding_model
        if expected and embedder.name != expected:
            raise BundleError(
                f"The bundle's contexts were embedded with {expected!r} but the embedder given "
                f"is {embedder.name!r}; their vectors cannot be compared."
            )
        if self._vectors.shape[0] and embedder.dim != self._vectors.shape[1]:
            raise BundleError(
                f"The embedder gives {embedder.dim}-dimensional vectors but the bundle holds "
                f"{self._vectors.shape[1]}-dimensional ones."
            )

    # -- retrieval --------------------------------------------------------------------------
    def preferences_for(self, input_text: str) -> list[AppliedPreference]:
        """The observed preferences of the k nearest contexts above the threshold (those that
        hold in the nearest one and in at least half of them, the app's rule), the phrases
        inferred from those contexts, then the pinned ones."""
        found = self._nearest(input_text)
        applied: list[AppliedPreference] = []

        def add(pref_id: int | None, score: float) -> None:
            if pref_id is not None and all(a.id != pref_id for a in applied):
                p = self._pref[pref_id]
                applied.append(AppliedPreference(p.id, p.text, p.pinned, score))

        if found:
            also = self.bundle.contexts
            support = Counter(i for row, _ in found for i in set(also[row].also))
            for pref_id in also[found[0][0]].also:
                if support[pref_id] * 2 >= len(found):
                    add(pref_id, found[0][1])
        for row, score in found:
            add(None if self._ids[row] < 0 else int(self._ids[row]), score)
        seen = {a.id for a in applied}
        applied += [
            AppliedPreference(p.id, p.text, True, None)
            for p in self.bundle.preferences
            if p.pinned and p.id not in seen
        ]
        return applied

    def neighbours(self, input_text: str) -> list[tuple[int | None, float]]:
        """(preference id or None, cosine) of the k most similar stored contexts at or above
        the threshold, best first; None marks a past round that left no usable phrase."""
        return [
            (None if self._ids[row] < 0 else int(self._ids[row]), score)
            for row, score in self._nearest(input_text)
        ]

    def _nearest(self, input_text: str) -> list[tuple[int, float]]:
        """(context row, cosine) of the k most similar contexts at or above the threshold."""
        if self._vectors.shape[0] == 0:
            return []
        query = np.asarray(self.embedder.encode([input_text]), dtype=np.float32).reshape(-1)
        scores = self._vectors @ query
        k = min(self.bundle.retrieval.k, len(scores))
        # argpartition finds the k best in linear time; only those k are then sorted.
        part = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        top = part[np.argsort(-scores[part], kind="stable")]
        threshold = self.bundle.retrieval.threshold
        return [(int(i), float(scores[i])) for i in top if scores[i] >= threshold]

    def preference_text(self, input_text: str) -> str:
        return join_preferences([a.text for a in self.preferences_for(input_text)])

    # -- use --------------------------------------------------------------------------------
    def render(self, input_text: str) -> list[dict[str, str]]:
        """The chat messages to send for this input, with its retrieved preferences."""
        return build_messages(
            self.template, input_text, preference=self.preference_text(input_text)
        )

    def complete(
        self,
        input_text: str,
        *,
        model: str | None = None,
        client: LLMClient | None = None,
        **params: Any,
    ) -> str:
        """Render and call the model (the bundle's, PROMPTOPT_MODEL's, or the offline default)
        through promptopt's LLM client; ``params`` override temperature, max_tokens, seed."""
        from promptopt.llm import CallContext, create_client

        gen = self.bundle.generation
        options: dict[str, Any] = {"temperature": gen.temperature, "max_tokens": gen.max_tokens}
        if gen.seed is not None:
            options["seed"] = gen.seed
        options.update(params)
        llm = client or create_client()
        completion = llm.complete(
            self.render(input_text),
            model=model or gen.model or None,
            params=options,
            context=CallContext(purpose="runtime"),
            api_base=gen.api_base,
        )
        return completion.text

    def __repr__(self) -> str:
        return (
            f"PromptRuntime(project={self.bundle.provenance.project!r}, "
            f"preferences={len(self.bundle.preferences)}, contexts={len(self.bundle.contexts)})"
        )


def load(path: str | Path, *, embedder: Embedder | None = None) -> PromptRuntime:
    """Load and validate a bundle exported by promptopt; raises BundleError with the reason."""
    return PromptRuntime(read_bundle(path), embedder=embedder)
