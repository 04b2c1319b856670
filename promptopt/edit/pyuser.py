"""Simulated users written in Python: ``promptopt bench edit --user python:FILE[:CLASS]``.

The protocol, exactly: ``CLASS(seed: int)`` (default class name ``User``) with
``preference(kind: str) -> str`` (the latent preference in words; the ``oracle`` method uses it)
and ``edit(kind: str, document: str, output: str) -> str`` (the user's revision; returning
``output`` unchanged means accept). ``kind`` is the document kind the rule user gets.

Loading runs the file's code, as ``python FILE`` would: point it only at files you trust.
"""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path
from typing import Any

from promptopt.edit.simulate import KindPreference

DEFAULT_CLASS = "User"


class UserFileError(ValueError):
    """A --user python: file that cannot be used; the message says what to change."""


def parse_spec(spec: str) -> tuple[Path, str]:
    """``python:FILE[:CLASS]`` -> (FILE, CLASS). A Windows drive letter is not a class."""
    rest = spec.split(":", 1)[1] if spec.startswith("python:") else spec
    if not rest:
        raise UserFileError("--user python: needs a file, e.g. --user python:my_user.py:User.")
    path, _, name = rest.rpartition(":")
    if not path or "/" in name or "\\" in name or name.endswith(".py"):
        path, name = rest, DEFAULT_CLASS
    return Path(path), name or DEFAULT_CLASS


class PythonUser:
    """Adapts a user class to what the benchmark calls."""

    def __init__(self, obj: Any, label: str) -> None:
        self.obj = obj
        self.name = label
        self.tokens = 0

    def preference(self, kind: str) -> str:
        value = self.obj.preference(kind)
        if not isinstance(value, str):
            raise UserFileError(
                f"{self.name}: preference({kind!r}) returned {type(value).__name__}, not str."
            )
        return value

    def edit(self, kind: str, input_text: str, output: str) -> str:
        value = self.obj.edit(kind, input_text, output)
        if not isinstance(value, str):
            raise UserFileError(
                f"{self.name}: edit({kind!r}, ...) returned {type(value).__name__}, not str."
            )
        return value

    def preferences(self, kinds: list[str]) -> dict[str, KindPreference]:
        """Latent preferences per kind, for the oracle and the accuracy judge (no rules: only
        the rule user's catalogue can drive the fake agent)."""
        return {k: KindPreference(k, self.preference(k), []) for k in kinds}


def load_python_user(spec: str, seed: int) -> PythonUser:
    path, name = parse_spec(spec)
    if not path.is_file():
        raise UserFileError(f"No simulated-user file {path}; pass --user python:FILE.py[:CLASS].")
    module_name = f"promptopt_user_{abs(hash(str(path.resolve())))}"
    try:
        loader_spec = importlib.util.spec_from_file_location(module_name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise UserFileError(f"{path} is not a Python file; pass a .py file.")
        module = importlib.util.module_from_spec(loader_spec)
        loader_spec.loader.exec_module(module)
    except UserFileError:
        raise
    except Exception as exc:  # the user's code: report its error in one line
        raise UserFileError(
            f"Cannot load {path}: {type(exc).__name__}: {exc}".splitlines()[0]
        ) from exc
    cls: Any = getattr(module, name, None)
    if not inspect.isclass(cls):
        raise UserFileError(f"{path} has no class {name!r}; define it or pass {path}:CLASS.")
    missing = [m for m in ("preference", "edit") if not callable(getattr(cls, m, None))]
    if missing:
        raise UserFileError(
            f"{path}:{name} has no method {' or '.join(missing)}; it needs "
            "preference(kind) -> str and edit(kind, document, output) -> str."
        )
    factory: Any = cls
    try:
        obj = factory(seed)
    except Exception as exc:
        raise UserFileError(
            f"{path}:{name}({seed}) failed: {type(exc).__name__}: {exc}".splitlines()[0]
        ) from exc
    return PythonUser(obj, f"python:{path.name}:{name}")
