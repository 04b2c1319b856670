"""Propose, infer, condense and generate all reach the project's api_base, through the real
litellm path, and nothing else is contacted: a second server stands in for OpenAI's default
endpoint (OPENAI_BASE_URL) and must see no request."""

from __future__ import annotations

import base64
import importlib.util
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from promptopt.compare import CompareService
from promptopt.edit import EditService
from promptopt.export import FORMATS, export_project
from promptopt.generation import GenerationSettings, generate
from promptopt.llm import LLMError, create_client
from promptopt.projects import create_project
from promptopt.storage import ValidationError
from tests.openai_server import FakeOpenAIServer, serve

# Not importorskip: importing litellm here, before promptopt configures it, would make it fetch
# its price list from the network.
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("litellm") is None, reason="litellm is not installed"
)

SECRET = "pa55-w0rd-XYZZY"


def _reply(body: dict[str, Any]) -> str:
    count = _reply.count = getattr(_reply, "count", 0) + 1  # type: ignore[attr-defined]
    if body.get("max_tokens", 0) <= 32:  # preference inference and condensing
        return f"short plain sentences, style {count}"
    return f"Summarize the text below for a busy reader, variant {count}:\n\n{{input}}"


@pytest.fixture
def servers(monkeypatch: pytest.MonkeyPatch) -> Any:
    with serve(FakeOpenAIServer(reply=_reply)) as target, serve() as trap:
        for name in ("OPENAI_BASE_URL", "OPENAI_API_BASE"):
            monkeypatch.setenv(name, trap.base)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
        yield target, trap


def test_every_purpose_reaches_the_configured_server(
    store: Any,
    fake_embedder: Any,
    servers: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG")
    target, trap = servers
    monkeypatch.setenv("PROMPTOPT_API_BASE_AUTH", f"alice:{SECRET}")
    client = create_client(store, backoff_s=0.0, max_retries=0)
    project = create_project(
        store,
        "routed",
        "Summarize: {input}",
        generator_model="openai/gen-model",
        optimizer_model="openai/meta-model",
        inputs=["The cat sat on the mat all afternoon.", "Rain is expected tomorrow."],
        settings={"api_base": target.base},
    )
    first = store.inputs.list(project.id)[0]

    text = generate(
        client, project.template, first.text, GenerationSettings.from_project(project)
    ).text()
    assert "variant" in text

    added = CompareService(store, client, fake_embedder).propose(project.id, "ann", n=2)
    assert added

    # The reference method condenses; the app's default policy verifies by replaying.
    for policy, who in (("cipher", "ann"), ("default", "bob")):
        edit = EditService(store, client, fake_embedder, k=5, policy=policy)
        for n in range(3):
            draft = edit.prepare(project.id, who, first.id)
            output = edit.generate(draft).completion().text
            stored = edit.submit(draft, output, f"A shorter version number {n}.", who)
            edit.learn(stored.edit.id)

    purposes = {row["purpose"] for row in store.database.db.query("SELECT purpose FROM llm_call")}
    expected = {"generate", "compare.propose", "infer-preference", "condense", "verify-preference"}
    assert expected <= purposes
    models = {r.body.get("model") for r in target.requests}
    assert models == {"gen-model", "meta-model"}
    assert all(r.path.endswith("/chat/completions") for r in target.requests)
    # The credential from the environment is what connects (HTTP Basic from the URL's userinfo),
    # and nothing reached the default endpoint.
    basic = "Basic " + base64.b64encode(f"alice:{SECRET}".encode()).decode()
    assert {r.headers.get("Authorization") for r in target.requests} == {basic}
    assert trap.requests == []
    _assert_nowhere(store.path, SECRET)
    for fmt in FORMATS:
        _, exported = export_project(store, project.id, fmt, "ann", compare=None)
        assert SECRET not in exported, fmt
    assert SECRET not in caplog.text


def test_a_server_error_echoing_the_credential_is_redacted(
    store: Any, servers: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    target, trap = servers
    monkeypatch.setenv("PROMPTOPT_API_BASE_AUTH", f"alice:{SECRET}")
    target.error_body = (
        '{"error": {"message": "bad request from http://alice:'
        + SECRET
        + "@host, password "
        + SECRET
        + '", "type": "invalid_request_error"}}'
    )
    client = create_client(store, backoff_s=0.0, max_retries=0)
    project = create_project(
        store,
        "echo",
        "Summarize: {input}",
        generator_model="openai/gen-model",
        settings={"api_base": target.base},
    )
    with caplog.at_level("DEBUG"), pytest.raises(LLMError) as caught:
        generate(client, project.template, "x", GenerationSettings.from_project(project)).text()
    assert SECRET not in str(caught.value)
    assert "***" in str(caught.value) or "rejected" in str(caught.value)
    assert SECRET not in caplog.text
    assert target.requests and trap.requests == []
    _assert_nowhere(store.path, SECRET)


def test_an_address_with_a_credential_is_refused_before_it_is_stored(store: Any) -> None:
    for url in (f"http://alice:{SECRET}@127.0.0.1:9/v1", f"http://127.0.0.1:9/v1?key={SECRET}"):
        with pytest.raises(ValidationError) as caught:
            create_project(store, "leaky", "{input}", settings={"api_base": url})
        assert SECRET not in str(caught.value)
        assert "PROMPTOPT_API_BASE_AUTH" in str(caught.value)
    project = create_project(store, "clean", "{input}", settings={"api_base": "http://h:1/v1"})
    with pytest.raises(ValidationError):
        store.projects.update(project.id, settings={"api_base": f"http://u:{SECRET}@h:1/v1"})
    _assert_nowhere(store.path, SECRET)


def _assert_nowhere(db_path: Path, secret: str) -> None:
    """Not one row of any table, and not one byte of the database, WAL or journal files."""
    conn = sqlite3.connect(db_path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in conn.execute(f"SELECT * FROM [{table}]"):
                assert secret not in repr(row), f"{table}: {row!r}"
    finally:
        conn.close()
    for path in db_path.parent.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
