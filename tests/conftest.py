"""Shared fixtures. No test touches the user's data: PROMPTOPT_HOME is a temporary folder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# litellm must never phone home from tests; the llm CLI must not load plugins that need llama.cpp.
os.environ.setdefault("LITELLM_TELEMETRY", "False")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LLM_LOAD_PLUGINS", "")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
# Model files converted once and reused by every test run (the offline SmolLM2 conversion takes
# ~20 s); kept outside the per-test home on purpose.
MODEL_CACHE = Path(os.environ.get("PROMPTOPT_TEST_MODEL_CACHE", "/tmp/promptopt-test-models"))


@pytest.fixture(autouse=True)
def promptopt_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("PROMPTOPT_HOME", str(home))
    monkeypatch.setenv("PROMPTOPT_MODEL_CACHE", str(MODEL_CACHE))
    monkeypatch.delenv("PROMPTOPT_MODEL", raising=False)
    return home


@pytest.fixture
def store(promptopt_home: Path) -> Iterator[object]:
    from promptopt.storage import open_store

    s = open_store()
    yield s
    s.database.close()


@pytest.fixture
def fake_llm() -> object:
    from promptopt.llm import FakeLLM

    return FakeLLM()


@pytest.fixture
def client(store: object, fake_llm: object) -> object:
    from promptopt.llm import create_client

    return create_client(store, fake=fake_llm, backoff_s=0.0)  # type: ignore[arg-type]


@pytest.fixture
def fake_embedder() -> object:
    from promptopt.embeddings import FakeEmbedder

    return FakeEmbedder()


@pytest.fixture(scope="session")
def real_embedder() -> object:
    from promptopt.embeddings import create_embedder

    return create_embedder("default")


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA
