"""promptopt: interactive prompt optimization from human feedback.

The Python API (see the README's "Python API"):

- ``open_studio(path=None, annotator="me")`` -> ``Studio``: one database with its models.
  ``create_project``, ``open_sample``, ``project``, ``add_inputs``; Compare rounds with
  ``next_pair`` / ``vote`` / ``best``; Edit rounds with ``next_edit`` / ``edit``; ``export``.
- ``load(path)`` -> ``PromptRuntime``: an exported bundle for your own code (``render``,
  ``preferences_for``, ``complete``).
- ``open_store(path=None)``: the storage layer itself (``promptopt.storage``).
- ``FORMATS``: the export formats.

The import stays light: every name is imported when first used, so models and the web
framework load only when needed.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "Studio": "promptopt.api",
    "Pair": "promptopt.api",
    "EditRound": "promptopt.api",
    "open_studio": "promptopt.api",
    "load": "promptopt.export.runtime",
    "PromptRuntime": "promptopt.export.runtime",
    "BundleError": "promptopt.export.runtime",
    "open_store": "promptopt.storage",
    "FORMATS": "promptopt.export",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'promptopt' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
