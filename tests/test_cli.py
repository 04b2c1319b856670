"""The ``promptopt`` command, through ``promptopt.cli.main`` and once through the installed
console script."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_export_data import ANNOTATOR, INPUTS, Sample, build_sample

from promptopt import cli
from promptopt.export.formats import read_markdown_prompt
from promptopt.storage import Store


@pytest.fixture
def sample(store: Store) -> Sample:
    return build_sample(store)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("path", [(), *(path for path, _, _ in cli.COMMANDS), ("votes",)])
def test_every_command_has_help(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main([*path, "--help"])
    assert info.value.code == 0
    assert f"usage: promptopt {' '.join(path)}".rstrip() in capsys.readouterr().out


def test_a_command_whose_module_is_missing_fails_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    commands = [*cli.COMMANDS, (("bench", "missing"), "promptopt.no_such_module", "help text")]
    monkeypatch.setattr(cli, "COMMANDS", commands)
    with pytest.raises(SystemExit):
        cli.main(["bench", "missing", "--help"])
    assert "help text" in capsys.readouterr().out
    code, _, err = run(capsys, "bench", "missing")
    assert code == 1
    assert err.startswith("promptopt: error: 'promptopt bench missing' is not available")
    assert err.count("\n") == 1


def test_db_path(capsys: pytest.CaptureFixture[str], promptopt_home: Path) -> None:
    assert run(capsys, "db", "path")[1].strip() == str(promptopt_home / "promptopt.db")


def test_projects_list_and_inputs_import(
    sample: Sample, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "more.txt"
    file.write_text("first new input\n\nsecond new input\n", encoding="utf-8")
    code, out, _ = run(capsys, "inputs", "import", str(sample.project_id), str(file))
    assert code == 0 and "imported 2 inputs" in out
    code, out, _ = run(capsys, "projects", "list", "--json")
    row = json.loads(out.splitlines()[0])
    # Issue 13, failure 4: the edits' own comparisons were counted as votes (5 votes for 3 + 2).
    assert (row["name"], row["inputs"], row["votes"], row["edits"]) == (
        sample.name, len(INPUTS) + 2, 7, 2,
    )  # fmt: skip
    code, out, _ = run(capsys, "projects", "list")
    assert out.split("\t")[2:] == ["5 inputs", "7 votes", "2 edits\n"]


def test_export_to_a_file(
    sample: Sample, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "prompt.md"
    code, _, err = run(
        capsys, "export", sample.name, "--format", "markdown", "--out", str(out_file),
        "--annotator", ANNOTATOR, "--win-rates",
    )  # fmt: skip
    assert code == 0 and f"wrote {out_file}" in err
    assert read_markdown_prompt(out_file.read_text()).endswith(sample.winner.text)


def test_export_into_a_folder_names_the_file(
    sample: Sample, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, _ = run(capsys, "export", str(sample.project_id), "-f", "bundle", "-o", str(tmp_path))
    assert code == 0
    written = tmp_path / "news-summaries-v1-etc-bundle.json"
    import promptopt

    assert promptopt.load(written).template == sample.winner.text


def test_export_to_stdout(sample: Sample, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "export", sample.name, "--format", "promptfoo")
    assert code == 0
    assert [t["vars"]["input"] for t in yaml.safe_load(out)["tests"]] == INPUTS


def test_votes_export_csv_and_jsonl(
    sample: Sample, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "votes", "export", sample.name)
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 9 and rows[0]["kind"] in ("vote", "edit")
    path = tmp_path / "votes.jsonl"
    code, _, _ = run(
        capsys, "votes", "export", sample.name, "--format", "jsonl", "--out", str(path),
        "--annotator", "bob",
    )  # fmt: skip
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert code == 0 and [r["annotator"] for r in lines] == ["bob"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["export", "nope", "-f", "markdown"], "No project 'nope'. Projects: 'News"),
        (["export", "NAME", "-f", "llm", "-o", "/no/such/dir/x.yaml"], "does not exist; create"),
        (["export", "NAME", "-f", "openai", "--model", "fake"], "--model NAME"),
        (["projects", "create", "P"], "Give a name and a base prompt"),
        (["projects", "create", "P", "--template", "no slot"], "{input}"),
        (["projects", "set", "NAME"], "Nothing to change"),
        (["votes", "export", "NAME", "-o", "/no/such/dir/v.csv"], "does not exist; create"),
        (["votes", "export", "nope"], "No project 'nope'"),
        (["inputs", "import", "NAME", "/no/such/file.csv"], "file.csv"),
    ],
)
def test_errors_are_one_clear_line(
    sample: Sample, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    argv = [sample.name if a == "NAME" else a for a in argv]
    code, out, err = run(capsys, *argv)
    assert code == 1 and out == ""
    assert err.startswith("promptopt: error: ") and message in err
    assert err.count("\n") == 1


def test_an_unknown_format_is_a_usage_error(
    sample: Sample, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["export", sample.name, "--format", "docx"])
    assert info.value.code == 2
    assert "invalid choice: 'docx'" in capsys.readouterr().err


def _console_script() -> str:
    found = shutil.which("promptopt", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("the promptopt console script is not installed in this environment")
    return found


ROOT = Path(__file__).resolve().parents[1]


def _env(home: Path) -> dict[str, str]:
    # This checkout's code, whichever checkout the console script was installed from.
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PROMPTOPT_HOME": str(home), "PYTHONPATH": path}


def test_the_installed_command(sample: Sample, tmp_path: Path, promptopt_home: Path) -> None:
    env = _env(promptopt_home)
    target = tmp_path / "learned.yaml"
    done = subprocess.run(
        [_console_script(), "export", sample.name, "--format", "llm", "--out", str(target)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (
        yaml.safe_load(target.read_text())["prompt"] == "In three bullet points, $input summarised."
    )
    failed = subprocess.run(
        [_console_script(), "export", "nope", "--format", "llm"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert failed.returncode == 1
    assert failed.stderr.startswith("promptopt: error: No project 'nope'")
    assert failed.stderr.count("\n") == 1


def test_projects_list_when_empty_says_what_to_do(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "projects", "list")
    assert (code, out) == (0, "")
    assert "No projects yet" in err


# -- issue 13: a CLI that covers the work --------------------------------------------------------
def test_version_and_python_dash_m(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from promptopt import __version__

    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out == f"promptopt {__version__}\n"
    done = subprocess.run(
        [sys.executable, "-m", "promptopt", "--version"],
        capture_output=True, text=True, cwd=tmp_path, env=_env(tmp_path), timeout=60,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (0, f"promptopt {__version__}\n")


def test_group_help_has_one_line_per_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for path, _, text in cli.COMMANDS:
        assert any(line.split() == [*path, *text.split()] for line in out.splitlines()), (
            f"{path} missing from: {out}"
        )
    assert "db ..." not in out and "projects ..." not in out
    with pytest.raises(SystemExit):
        cli.main(["projects", "--help"])
    out = capsys.readouterr().out
    assert "create a project (or open a sample)" in out and "list projects with" in out


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_anywhere_shows_the_traceback(where: str) -> None:
    argv = ["export", "nope", "--format", "markdown"]
    argv = ["--debug", *argv] if where == "before" else [*argv, "--debug"]
    with pytest.raises(Exception, match="No project 'nope'"):
        cli.main(argv)


def test_projects_create_show_set(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMPTOPT_EMBEDDER", "fake")  # a new template joins the Compare pool
    inputs = tmp_path / "inputs.csv"
    inputs.write_text("text\nfirst article\nsecond article\n", encoding="utf-8")
    code, out, err = run(
        capsys, "projects", "create", "Briefs", "--template", "Summarize: {input}",
        "--task", "summaries", "--inputs", str(inputs), "--generator-model", "openai/qwen",
        "--optimizer-model", "gpt-4o-mini", "--api-base", "http://gpu-box:8000/v1", "--json",
    )  # fmt: skip
    assert code == 0, err
    shown = json.loads(out.splitlines()[-1])
    assert shown["name"] == "Briefs" and shown["template"] == "Summarize: {input}"
    assert (shown["generator_model"], shown["optimizer_model"]) == ("openai/qwen", "gpt-4o-mini")
    assert shown["api_base"] == "http://gpu-box:8000/v1" and shown["inputs"] == 2
    template = tmp_path / "t.txt"
    template.write_text("Summarize in one line:\n{input}\n", encoding="utf-8")
    code, out, err = run(
        capsys, "projects", "set", "Briefs", "--name", "Short briefs", "--template-file",
        str(template), "--api-base", "", "--max-tokens", "64", "--temperature", "0.2",
    )  # fmt: skip
    assert code == 0, err
    code, out, _ = run(capsys, "projects", "show", "Short briefs", "--json")
    shown = json.loads(out)
    assert shown["template"] == "Summarize in one line:\n{input}"
    assert shown["api_base"] is None and shown["max_tokens"] == 64 and shown["prompts"] == 2
    code, out, _ = run(capsys, "projects", "show", "Short briefs")
    assert "generator_model: openai/qwen" in out.splitlines()
    code, out, err = run(
        capsys, "projects", "set", "Short briefs", "--stop", "\n\n", "--stop", "###"
    )
    assert code == 0, err
    code, out, _ = run(capsys, "projects", "show", "Short briefs", "--json")
    assert json.loads(out)["stop"] == ["\n\n", "###"]
    code, out, err = run(capsys, "projects", "set", "Short briefs", "--stop", "")
    code, out, _ = run(capsys, "projects", "show", "Short briefs", "--json")
    assert json.loads(out)["stop"] is None


def test_projects_create_opens_a_sample(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "projects", "create", "--sample", "news-summaries", "--json")
    assert code == 0 and json.loads(out)["inputs"] > 0


def test_inputs_import_from_stdin(
    sample: Sample, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13, failure 4: `inputs import X -` said "No file at -"."""
    monkeypatch.setattr(sys, "stdin", io.StringIO("one from a pipe\n"))
    code, out, _ = run(capsys, "inputs", "import", sample.name, "-")
    # Issue 13, failure 7: "imported 1 inputs".
    assert code == 0 and out == f"imported 1 input into {sample.name!r}\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"text": "json from a pipe"}\n'))
    run(capsys, "inputs", "import", sample.name, "-", "--format", "jsonl")
    code, out, _ = run(capsys, "inputs", "list", sample.name, "--json")
    texts = [json.loads(line)["text"] for line in out.splitlines()]
    assert texts[-2:] == ["one from a pipe", "json from a pipe"]


def test_reimporting_the_same_file_skips_what_is_there(
    sample: Sample, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 13, failure 7: importing the same CSV twice silently duplicated every input."""
    file = tmp_path / "more.csv"
    file.write_text("text\nnew one\nnew two\n", encoding="utf-8")
    assert run(capsys, "inputs", "import", sample.name, str(file))[1].startswith("imported 2 ")
    code, out, err = run(capsys, "inputs", "import", sample.name, str(file))
    assert code == 0 and out.startswith("imported 0 inputs")
    assert "skipped 2 inputs already in the project" in err
    code, out, _ = run(capsys, "inputs", "import", sample.name, str(file), "--allow-duplicates")
    assert out.startswith("imported 2 inputs")


def test_skipped_lines_are_listed_in_file_order(
    sample: Sample, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "rows.jsonl"
    file.write_text('{"text": "ok"}\n{"other": 1}\nnot json\n{"text": "fine"}\n', "utf-8")
    _, _, err = run(capsys, "inputs", "import", sample.name, str(file))
    assert err.splitlines() == [
        "skipped line 2: no text under 'text'",
        "skipped line 3: not valid JSON (Expecting value)",
    ]


def test_export_out_ending_in_a_separator_is_a_folder(
    sample: Sample,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 13, failure 7: `--out exports/` wrote a *file* named exports."""
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "export", sample.name, "--format", "bundle", "--out", "exports/")
    assert code == 0, err
    written = list((tmp_path / "exports").iterdir())
    assert [p.name for p in written] == ["news-summaries-v1-etc-bundle.json"]


def test_votes_export_has_one_row_per_event_with_unique_ids(
    sample: Sample, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 13, failure 5: each edit appeared twice; ids collided across kinds; blank ids
    read back as floats."""
    import pandas as pd

    _, out, _ = run(capsys, "votes", "export", sample.name)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["kind"] for r in rows].count("edit") == 2
    assert all(r["source"] != "edit" for r in rows if r["kind"] == "vote")
    assert len({r["id"] for r in rows}) == len(rows)
    assert not any("." in r[c] for r in rows for c in r if c.endswith("_id"))
    frame = pd.read_csv(io.StringIO(out), dtype_backend="numpy_nullable")
    assert str(frame["input_id"].dtype) == "Int64" and str(frame["edit_id"].dtype) == "Int64"


def test_db_metadata_labels_every_main_table(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, store: Store
) -> None:
    code, out, _ = run(capsys, "db", "metadata")
    assert code == 0
    doc = json.loads(out)
    tables = doc["databases"]["promptopt"]["tables"]
    db = store.database.db
    for table, conf in tables.items():
        assert conf["label_column"] in db.table(table).columns_dict, table
    assert {"input", "prompt", "comparison", "edit", "preference"} <= set(tables)
    target = tmp_path / "metadata.json"
    assert run(capsys, "db", "metadata", "--out", str(target))[0] == 0
    assert json.loads(target.read_text()) == doc


def test_datasette_labels_the_foreign_keys(
    sample: Sample, tmp_path: Path, capsys: pytest.CaptureFixture[str], store: Store
) -> None:
    """Issue 13, failure 8: only ``project`` got readable labels in Datasette. Runs where
    datasette is installed (checked by hand with datasette 0.65.5)."""
    datasette_app = pytest.importorskip("datasette.app")
    import asyncio

    _, out, _ = run(capsys, "db", "metadata")

    async def labels() -> dict[str, object]:
        ds = datasette_app.Datasette([str(store.path)], metadata=json.loads(out))
        await ds.invoke_startup()
        response = await ds.client.get("/promptopt/comparison.json?_shape=array&_labels=on")
        return response.json()[0]

    row = asyncio.run(labels())
    assert row["input_id"]["label"] == INPUTS[0]  # type: ignore[index]
    assert row["prompt_a_id"]["label"]  # type: ignore[index]


def test_import_reports_repaired_and_skipped_rows(
    sample: Sample, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 9, failure 3: one invalid byte refused the whole file."""
    file = tmp_path / "rows.jsonl"
    file.write_bytes(b'{"text": "caf\xe9 ok"}\n{"text": "\\ud800"}\nnot json\n{"text": "fine"}\n')
    _, out, err = run(capsys, "inputs", "import", sample.name, str(file))
    assert "imported 3 inputs" in out
    assert err.splitlines() == [
        "repaired line 1: bytes that are not UTF-8 were replaced with \ufffd (row kept)",
        "repaired line 2: lone surrogate characters were replaced with \ufffd (row kept)",
        "skipped line 3: not valid JSON (Expecting value)",
    ]
