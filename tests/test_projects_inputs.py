"""Projects service, template validation and input file parsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from promptopt.generation import TemplateError, build_messages, render, validate_template
from promptopt.inputs_io import InputFormatError, parse_inputs_file, parse_inputs_text
from promptopt.projects import SAMPLES, create_project, load_sample, resolve_project
from promptopt.storage import NotFoundError, Store, ValidationError


def test_template_validation_messages() -> None:
    assert validate_template("Summarize {input}") == "Summarize {input}"
    with pytest.raises(TemplateError, match=r"no \{input\} placeholder"):
        validate_template("Summarize this")
    with pytest.raises(TemplateError, match="empty"):
        validate_template("   ")


def test_render_substitutes_only_the_placeholder() -> None:
    assert render('JSON like {"a": 1} for {input}', "x {y}") == 'JSON like {"a": 1} for x {y}'
    assert render("No slot", "text") == "No slot\n\ntext"


def test_build_messages_puts_preference_in_system_message() -> None:
    plain = build_messages("Do {input}", "it")
    assert plain == [{"role": "user", "content": "Do it"}]
    with_pref = build_messages("Do {input}", "it", preference="short, bullet points")
    assert with_pref[0]["role"] == "system"
    assert "short, bullet points" in with_pref[0]["content"]


def test_create_project_adds_and_promotes_base_prompt(store: Store) -> None:
    p = create_project(store, "Mine", "Answer {input}", inputs=["q1", "q2"])
    (base,) = store.prompts.list(p.id)
    assert (base.origin, base.text, p.prompt_id) == ("base", "Answer {input}", base.id)
    assert [i.text for i in store.inputs.list(p.id)] == ["q1", "q2"]
    with pytest.raises(TemplateError):
        create_project(store, "Bad", "no placeholder")
    assert store.projects.find("Bad") is None


def test_resolve_project_by_name_or_id(store: Store) -> None:
    p = create_project(store, "Alpha", "Answer {input}")
    assert resolve_project(store, "Alpha").id == p.id
    assert resolve_project(store, str(p.id)).id == p.id
    with pytest.raises(NotFoundError, match="'Alpha'"):
        resolve_project(store, "Beta")


def test_samples_open_in_one_step_and_reopen(store: Store) -> None:
    assert {"news-summaries", "informal-to-formal"} <= set(SAMPLES)
    news = load_sample(store, "news-summaries")
    assert len(store.inputs.list(news.id)) == 24
    assert load_sample(store, "news-summaries").id == news.id
    formal = load_sample(store, "informal-to-formal")
    assert formal.settings["examples"][0]["output"]
    with pytest.raises(ValidationError, match="No sample"):
        load_sample(store, "nope")


def test_csv_keeps_good_rows_and_reports_bad_ones() -> None:
    text = "id,text,label\n1,hello,x\n2,,y\n3\n4,world,z\n"
    result = parse_inputs_text(text, "csv")
    assert result.texts == ["hello", "world"]
    assert result.columns == ["id", "text", "label"]
    assert any(p.startswith("line 3") for p in result.problems)
    assert any(p.startswith("line 4") for p in result.problems)
    assert parse_inputs_text(text, "csv", column="label").texts == ["x", "y", "z"]
    with pytest.raises(InputFormatError, match="choose one of"):
        parse_inputs_text(text, "csv", column="nope")


def test_csv_with_quoted_multiline_cells() -> None:
    result = parse_inputs_text('text\n"line one\nline two"\nsecond\n', "csv")
    assert result.texts == ["line one\nline two", "second"]


def test_jsonl_and_txt(tmp_path: Path) -> None:
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text('{"input": "a"}\n{oops\n\n"b"\n{"other": 1}\n', encoding="utf-8")
    result = parse_inputs_file(jsonl)
    assert result.texts == ["a", "b"]
    assert [p.split(":")[0] for p in result.problems] == ["line 2", "line 5"]
    txt = tmp_path / "in.txt"
    txt.write_text("\ufefffirst\n\n  second  \nnon-ASCII: café 日本\n", encoding="utf-8")
    assert parse_inputs_file(txt).texts == ["first", "second", "non-ASCII: café 日本"]


def test_bad_files_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InputFormatError, match="No file"):
        parse_inputs_file(tmp_path / "missing.csv")
    with pytest.raises(InputFormatError, match="folder"):
        parse_inputs_file(tmp_path)
    binary = tmp_path / "b.txt"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(InputFormatError, match="UTF-8"):
        parse_inputs_file(binary)
