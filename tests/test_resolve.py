"""Every LLM call goes where the project says: one resolver of (model, api_base, params)."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

from promptopt.llm import GenerationParams
from promptopt.llm.resolve import (
    AUTH_ENV,
    connect_url,
    has_credentials,
    public_url,
    redact,
    resolve_call,
    secrets_of,
)
from promptopt.storage.models import Project

PACKAGE = Path(__file__).resolve().parents[1] / "promptopt"
CALL_METHODS = {"complete", "stream", "stream_many"}
# Calls that legitimately have no project to resolve from, each with its reason.
NO_PROJECT = {
    "llm": "the client and its backends themselves",
    "export/runtime.py": "the exported bundle's runtime: model and server come from the bundle",
    "edit/simulate.py": "the simulated user of the benchmark, a separate model by design",
}


def _exempt(path: Path) -> bool:
    rel = path.relative_to(PACKAGE).as_posix()
    return any(rel == key or rel.startswith(key + "/") for key in NO_PROJECT)


def _bypasses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in CALL_METHODS:
            continue
        named = {k.arg for k in node.keywords if k.arg is not None}
        splats = [k.value for k in node.keywords if k.arg is None]
        resolved = any(
            isinstance(v, ast.Call)
            and isinstance(v.func, ast.Attribute)
            and v.func.attr == "kwargs"
            for v in splats
        )
        if not resolved or named & {"model", "api_base", "params"}:
            found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    return found


def test_every_llm_call_in_the_package_goes_through_the_resolver() -> None:
    offenders: list[str] = []
    checked = 0
    for path in sorted(PACKAGE.rglob("*.py")):
        if _exempt(path):
            continue
        checked += 1
        offenders += _bypasses(path)
    assert checked > 30
    assert not offenders, (
        "These LLM calls do not take model/api_base/params from resolve_call(...).kwargs(): "
        + ", ".join(offenders)
    )


def test_the_bypass_check_catches_a_direct_call(tmp_path: Path) -> None:
    bad = PACKAGE / "_probe_tmp.py"
    try:
        bad.write_text(
            "def f(client, project):\n"
            "    return client.complete('hi', model=project.optimizer_model)\n",
            encoding="utf-8",
        )
        assert _bypasses(bad) == ["_probe_tmp.py:2"]
        bad.write_text(
            "def f(client, call):\n    return client.complete('hi', **call.kwargs())\n",
            encoding="utf-8",
        )
        assert _bypasses(bad) == []
    finally:
        bad.unlink()


def _project(**settings: Any) -> Project:
    return Project(
        id=1,
        name="p",
        template="{input}",
        generator_model="openai/gen",
        optimizer_model="openai/meta",
        settings=settings,
    )


def test_meta_purposes_use_the_optimizer_and_the_same_server() -> None:
    project = _project(api_base="http://10.0.0.5:8000/v1", temperature=0.3, max_tokens=99)
    gen = resolve_call(project, "generate")
    assert (gen.model, gen.api_base) == ("openai/gen", "http://10.0.0.5:8000/v1")
    assert (gen.params.temperature, gen.params.max_tokens) == (0.3, 99)
    for purpose in ("compare.propose", "infer", "condense", "verify"):
        call = resolve_call(project, purpose)
        assert (call.model, call.api_base) == ("openai/meta", "http://10.0.0.5:8000/v1")
    override = resolve_call(project, "infer", model="openai/x", params=GenerationParams())
    assert (override.model, override.api_base) == ("openai/x", "http://10.0.0.5:8000/v1")
    plain = Project(id=2, name="q", template="{input}")
    assert resolve_call(plain, "infer").model == "local/smollm2"
    assert resolve_call(plain, "infer").api_base is None


def test_credentials_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(AUTH_ENV, "alice:s3cr@t")
    call = resolve_call(_project(api_base="http://h:1/v1"), "generate")
    assert call.api_base == "http://alice:s3cr%40t@h:1/v1"
    assert call.public_api_base == "http://h:1/v1"
    monkeypatch.setenv("TEAM_AUTH", "bob:pw123")
    named = resolve_call(_project(api_base="http://h:1/v1", api_base_auth_env="TEAM_AUTH"), "x")
    assert named.api_base == "http://bob:pw123@h:1/v1"
    with pytest.raises(Exception, match="environment variable"):
        connect_url("http://h:1/v1", "not a name")


def test_credential_helpers() -> None:
    url = "http://user:top%2Fsecret@host:8000/v1?api_key=abcdef"
    assert public_url(url) == "http://host:8000/v1"
    assert has_credentials(url) and not has_credentials("http://host:8000/v1")
    assert has_credentials("http://host/v1?key=1")
    message = f"connection to {url} refused; key abcdef, password top/secret"
    cleaned = redact(message, secrets_of(url))
    assert not re.search("top|secret|abcdef", cleaned), cleaned
    assert "host:8000" in cleaned
