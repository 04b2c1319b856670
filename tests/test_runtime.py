"""promptopt.load(bundle): retrieval of the nearest context's preference, rendering, completion,
and the errors of a bundle that cannot be used."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_export_data import ANNOTATOR, FINANCE_CONTEXT, SPORT_CONTEXT, Sample, build_sample

import promptopt
from promptopt.export import export_project, write_export
from promptopt.export.bundle import SCHEMA_VERSION, BundleError
from promptopt.export.runtime import PromptRuntime
from promptopt.generation import build_messages
from promptopt.storage import Store

SPORT_INPUT = "The striker scored a goal in the league match."
FINANCE_INPUT = "Bank shares fell as investors sold."
DISTANT_INPUT = "Recipe: bake bread with yeast"


def bundle_file(store: Store, sample: Sample, tmp_path: Path) -> Path:
    _, text = export_project(store, sample.project_id, "bundle", ANNOTATOR, compare=None)
    return write_export(text, tmp_path / "bundle.json")


@pytest.fixture
def runtime(store: Store, tmp_path: Path) -> PromptRuntime:
    return promptopt.load(bundle_file(store, build_sample(store), tmp_path))


def test_retrieves_the_preference_of_the_nearest_context(runtime: PromptRuntime) -> None:
    applied = runtime.preferences_for(SPORT_INPUT)
    # Retrieved first, pinned after: the order the Edit engine writes them in.
    assert [a.text for a in applied] == ["bullet points", "British spelling"]
    assert applied[1].pinned and applied[1].score is None
    assert applied[0].score is not None and applied[0].score >= runtime.bundle.retrieval.threshold
    finance = [a.text for a in runtime.preferences_for(FINANCE_INPUT)]
    assert finance == ["formal tone", "British spelling"]


def test_distant_inputs_get_only_pinned_preferences(runtime: PromptRuntime) -> None:
    assert runtime.neighbours(DISTANT_INPUT) == []
    assert [a.text for a in runtime.preferences_for(DISTANT_INPUT)] == ["British spelling"]


def test_render_puts_retrieved_preferences_in_the_system_message(runtime: PromptRuntime) -> None:
    messages = runtime.render(SPORT_INPUT)
    expected = build_messages(
        runtime.template, SPORT_INPUT, preference="bullet points; British spelling"
    )
    assert messages == expected
    assert "formal tone" not in messages[0]["content"]
    assert messages[1]["content"] == "In three bullet points, " + SPORT_INPUT + " summarised."


def test_complete_sends_the_rendered_messages_through_the_client(
    runtime: PromptRuntime, client: Any, fake_llm: Any
) -> None:
    fake_llm.enqueue(["- scored\n- twice"])
    out = runtime.complete(FINANCE_INPUT, model="fake", client=client, temperature=0.0)
    assert out == "- scored\n- twice"
    request = fake_llm.history[-1]
    assert request.messages == runtime.render(FINANCE_INPUT)
    assert request.params.temperature == 0.0
    assert request.params.max_tokens == runtime.bundle.generation.max_tokens


def test_a_bundle_without_preferences_renders_the_plain_prompt(
    store: Store, tmp_path: Path
) -> None:
    from promptopt.projects import create_project

    project = create_project(store, "plain", "Fix the grammar: {input}")
    _, text = export_project(store, project.id, "bundle")
    rt = promptopt.load(write_export(text, tmp_path / "plain.json"))
    assert rt.render("me go") == [{"role": "user", "content": "Fix the grammar: me go"}]


def test_a_wrong_embedder_is_refused(store: Store, tmp_path: Path) -> None:
    from promptopt.embeddings import FakeEmbedder

    path = bundle_file(store, build_sample(store), tmp_path)
    with pytest.raises(BundleError, match="cannot be compared"):
        promptopt.load(path, embedder=FakeEmbedder(dim=64, name="other"))


# -- bundles that cannot be used ---------------------------------------------------------------
@pytest.fixture
def doc(store: Store) -> dict[str, Any]:
    sample = build_sample(store)
    result: dict[str, Any] = json.loads(
        export_project(store, sample.project_id, "bundle", ANNOTATOR, compare=None)[1]
    )
    return result


def write(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / "b.json"
    path.write_text(json.dumps(doc))
    return path


def test_a_newer_schema_asks_to_upgrade(tmp_path: Path, doc: dict[str, Any]) -> None:
    doc["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(BundleError, match=r"newer than this promptopt.*pip install -U promptopt"):
        promptopt.load(write(tmp_path, doc))


def test_an_older_schema_says_to_export_again(tmp_path: Path, doc: dict[str, Any]) -> None:
    doc["schema_version"] = 0
    with pytest.raises(BundleError, match=r"no longer reads.*Export the project again"):
        promptopt.load(write(tmp_path, doc))


def test_unknown_extra_fields_are_ignored(tmp_path: Path, doc: dict[str, Any]) -> None:
    doc["added_later"] = {"x": 1}
    doc["prompt"]["also_new"] = True
    assert promptopt.load(write(tmp_path, doc)).template == doc["prompt"]["template"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("format"), "is not a promptopt bundle"),
        (lambda d: d.pop("schema_version"), "no valid schema_version"),
        (lambda d: d["prompt"].update(template="no placeholder"), "prompt.template"),
        (lambda d: d.pop("provenance"), "provenance: Field required"),
        (lambda d: d["retrieval"].update(k=0), "retrieval.k"),
        (lambda d: d["contexts"][0].update(vector="not base64!"), "not valid base64"),
        (lambda d: d["contexts"][0].update(preference_id=999), "preference 999"),
        (lambda d: d["retrieval"].update(embedding_model=None), "no embedding model name"),
    ],
)
def test_invalid_bundles_fail_with_one_clear_line(
    tmp_path: Path, doc: dict[str, Any], mutate: Any, message: str
) -> None:
    mutate(doc)
    with pytest.raises(BundleError, match=message) as info:
        promptopt.load(write(tmp_path, doc))
    assert "\n" not in str(info.value)


def test_bad_paths_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"No bundle at .*check the path"):
        promptopt.load(tmp_path / "missing.json")
    with pytest.raises(BundleError, match="is a folder"):
        promptopt.load(tmp_path)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        promptopt.load(tmp_path / "bad.json")


def test_import_promptopt_stays_light() -> None:
    code = (
        "import sys, promptopt; promptopt.load; "
        "print(sorted(m for m in ('torch', 'gradio', 'sentence_transformers', 'litellm') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_runtime_with_the_real_minilm_embedder(
    store: Store, tmp_path: Path, real_embedder: Any
) -> None:
    sample = build_sample(store, embedder=real_embedder)
    path = bundle_file(store, sample, tmp_path)
    rt = promptopt.load(path)  # loads MiniLM itself from the bundle's model name
    assert rt.bundle.retrieval.embedding_model == "all-MiniLM-L6-v2"
    assert rt.embedder.name == real_embedder.name
    sport = "Late goal from the striker wins the league game for the home team."
    finance = "Investors sold bank shares and bonds as the stock market fell."
    assert [a.text for a in rt.preferences_for(sport)] == ["bullet points", "British spelling"]
    assert [a.text for a in rt.preferences_for(finance)] == ["formal tone", "British spelling"]
    # Below the Edit engine's MiniLM threshold (0.1) for every stored context (measured: 0.04,
    # -0.01, 0.09).
    assert [a.text for a in rt.preferences_for("Knitting a warm wool scarf")] == [
        "British spelling"
    ]
    # The stored contexts are what the sample says they are.
    assert rt.bundle.provenance.project == sample.name
    assert (
        float(real_embedder.encode([SPORT_CONTEXT])[0] @ real_embedder.encode([FINANCE_CONTEXT])[0])
        < 0.1
    )


def test_a_bundle_from_the_edit_engine_renders_what_the_app_would_send(
    store: Store, client: Any, fake_llm: Any, fake_embedder: Any, tmp_path: Path
) -> None:
    """Memory written by the real EditService, exported, applied: the runtime's messages equal
    the app's own draft for a new input (one neighbour, so the app does not condense)."""
    from promptopt.edit import service as edit_service
    from promptopt.projects import create_project

    project = create_project(
        store,
        "mail",
        "Summarise: {input}",
        generator_model="fake",
        optimizer_model="fake",  # the engine's own LLM calls go to the FakeLLM
        inputs=[SPORT_CONTEXT, FINANCE_CONTEXT, SPORT_INPUT],
    )
    sport, finance, new = store.inputs.list(project.id)
    service = edit_service.EditService(store, client, fake_embedder)
    for item, phrase in ((sport, "bullet points"), (finance, "formal tone")):
        fake_llm.enqueue([phrase])  # the preference the engine infers from this edit
        draft = service.prepare(project.id, ANNOTATOR, item.id)
        service.submit_and_learn(
            draft, "the output", "the edited output, quite different", ANNOTATOR
        )
    for pref in store.preferences.list(project.id, ANNOTATOR):
        # what replaying them on later edits would decide; unverified ones are not exported
        store.preferences.update(pref.id, status="verified")
    app = service.prepare(project.id, ANNOTATOR, new.id)
    _, text = export_project(store, project.id, "bundle", ANNOTATOR, compare=None)
    rt = promptopt.load(write_export(text, tmp_path / "mail.json"))
    assert [p.text for p in app.applied] == ["bullet points"]
    assert rt.render(new.text) == app.messages


def test_observed_preferences_are_retrieved_by_context_like_inferred_ones(
    store: Store, client: Any, fake_llm: Any, fake_embedder: Any, tmp_path: Path
) -> None:
    """Two football reports turned into bullets make "bullet points" an observed preference
    (verified here): the bundle links it to those rounds, so the runtime applies it to a new
    football report, as the app does, and not to an unrelated input, though it is not pinned."""
    from promptopt.edit import service as edit_service
    from promptopt.projects import create_project

    second = "football match report: the keeper saved a penalty late in the league game"
    project = create_project(
        store,
        "sport",
        "Summarise: {input}",
        generator_model="fake",
        optimizer_model="fake",
        inputs=[SPORT_CONTEXT, second, SPORT_INPUT],
    )
    first, other, new = store.inputs.list(project.id)
    service = edit_service.EditService(store, client, fake_embedder)
    output = "The match ended late. The striker scored. Fans cheered loudly in the stadium."
    for item in (first, other):
        fake_llm.enqueue(["short"])
        draft = service.prepare(project.id, ANNOTATOR, item.id)
        service.submit_and_learn(draft, output, "- Match ended.\n- Striker scored.", ANNOTATOR)
    observed = store.preferences.find_text(project.id, ANNOTATOR, "bullet points")
    assert observed is not None and observed.kind == "observable" and not observed.pinned
    store.preferences.update(observed.id, status="verified")
    app = service.prepare(project.id, ANNOTATOR, new.id)
    assert "bullet points" in [p.text for p in app.applied]

    _, text = export_project(store, project.id, "bundle", ANNOTATOR, compare=None)
    doc = json.loads(text)
    assert any(observed.id in c.get("also", []) for c in doc["contexts"])
    rt = promptopt.load(write_export(text, tmp_path / "sport.json"))
    assert "bullet points" in [p.text for p in rt.preferences_for(new.text)]
    assert "bullet points" not in rt.preference_text(DISTANT_INPUT)
    store.preferences.update(observed.id, status="unverified")  # refused: not exported at all
    _, text = export_project(store, project.id, "bundle", ANNOTATOR, compare=None)
    assert all("also" not in c for c in json.loads(text)["contexts"])
