"""promptopt: interactive prompt optimization from human feedback.

``promptopt.load(path)`` opens an exported bundle for use in your own code (see
``promptopt.export.runtime``). The import stays light: models load only when first needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from promptopt.export.runtime import PromptRuntime


def load(path: str | Path, *, embedder: Any = None) -> PromptRuntime:
    """Load an exported bundle: ``.render(input)`` gives the messages to send for an input,
    with the learned preferences retrieved for it; ``.complete(input)`` also calls the model."""
    from promptopt.export.runtime import load as _load

    return _load(path, embedder=embedder)


__all__ = ["__version__", "load"]
