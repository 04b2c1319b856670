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
    assert (row["name"], row["inputs"], row["votes"]) == (sample.name, len(INPUTS) + 2, 8)


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
    assert len(rows) == 10 and rows[0]["kind"] in ("comparison", "edit")
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


def test_the_installed_command(sample: Sample, tmp_path: Path, promptopt_home: Path) -> None:
    env = {**os.environ, "PROMPTOPT_HOME": str(promptopt_home)}
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
