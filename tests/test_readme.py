"""The README's examples, run as written: its Python blocks in order in one namespace, and the
``promptopt`` lines of its command blocks through the installed console script. The stand-in
model and embedder answer (PROMPTOPT_FAKE_LLM=1, PROMPTOPT_EMBEDDER=fake), so no model loads;
the wheel smoke test (.ci/wheel-smoke) runs the install steps with the real ones."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README, re.DOTALL | re.MULTILINE)


def section(title: str) -> str:
    start = README.index(f"\n{title}\n")
    end = README.find("\n## ", start + len(title) + 2)
    return README[start : end if end > 0 else None]


@pytest.fixture
def stand_ins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PROMPTOPT_FAKE_LLM", "1")
    monkeypatch.setenv("PROMPTOPT_EMBEDDER", "fake")
    monkeypatch.setenv("PROMPTOPT_MODEL", "fake")
    return tmp_path


def test_the_python_examples_run(stand_ins: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import promptopt.llm
    from promptopt.workspace.fakes import demo_fake_llm

    real_factory = promptopt.llm.create_client

    def with_stand_in(*args: object, **kwargs: object) -> object:
        # The bundle runtime's complete() makes its own client: give it the stand-in model.
        kwargs.setdefault("fake", demo_fake_llm())
        return real_factory(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(promptopt.llm, "create_client", with_stand_in)
    code = blocks("python")
    assert len(code) >= 2, "the README lost its Python examples"
    namespace: dict[str, object] = {"__name__": "__readme__"}
    for number, block in enumerate(code, start=1):
        exec(compile(block, f"README.md python block {number}", "exec"), namespace)
    assert (stand_ins / "news-summaries-bundle.json").is_file()
    assert namespace["text"]  # the bundle example's complete() answered


def _commands(text: str) -> list[str]:
    """The ``promptopt`` command lines of the bash blocks in ``text`` (a pipe into promptopt
    included); the server and the benchmarks are left to their own tests."""
    lines: list[str] = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, re.DOTALL | re.MULTILINE):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            command = line.split("|")[-1].strip()
            if command.startswith("promptopt ") and not command.startswith(
                ("promptopt serve", "promptopt bench", "promptopt setup")
            ):
                lines.append(line)
    return lines


def run_line(line: str) -> str:
    """One README command line through ``promptopt.cli.main``, with its pipe from ``printf``
    or its ``>`` redirect done as the shell would."""
    import contextlib
    import io

    from promptopt import cli

    stdin = ""
    if "|" in line:
        feeder, line = line.rsplit("|", 1)
        stdin = subprocess.run(
            ["bash", "-c", feeder], capture_output=True, text=True, check=True
        ).stdout
    words = shlex.split(line)
    target = None
    if ">" in words:
        target = Path(words[words.index(">") + 1])
        words = words[: words.index(">")]
    out = io.StringIO()
    old_stdin = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out):
            try:
                code = cli.main(words[1:])
            except SystemExit as done:  # --version and --help exit through argparse
                code = int(done.code or 0)
    finally:
        sys.stdin = old_stdin
    assert code == 0, line
    if target is not None:
        target.write_text(out.getvalue(), encoding="utf-8")
    return out.getvalue()


def test_the_command_examples_run(stand_ins: Path) -> None:
    lines = _commands(section("## Export and use what you learned"))
    assert any("inputs import" in line for line in lines)
    (stand_ins / "articles.csv").write_text("id,text\n1,An article\n2,Another\n", "utf-8")
    # The examples export "News summaries": the sample project, as a new user would open it.
    for line in ["promptopt projects create --sample news-summaries", *lines]:
        run_line(line)
    assert (stand_ins / "exports" / "news-summaries-bundle.json").is_file()
    assert (stand_ins / "promptfooconfig.yaml").read_text().startswith("# promptopt")
    rows = run_line("promptopt inputs list Briefs").splitlines()
    texts = [row.split("\t")[1] for row in rows]
    assert texts == ["First article", "Second article", "An article", "Another"]


def test_the_commands_in_the_readme_exist() -> None:
    from promptopt import cli

    known = {" ".join(path) for path, _, _ in cli.COMMANDS}
    for line in _commands(README):
        words = shlex.split(line.split("|")[-1])[1:]
        words = [w for w in words if not w.startswith("-")]
        if not words:
            continue  # promptopt --version
        assert any(" ".join(words).startswith(k) for k in known), line


def test_the_install_steps_are_the_ones_ci_runs() -> None:
    """The README's pip install steps are run by .ci/wheel-smoke (in a fresh virtualenv, with
    the built wheel in place of the index and the local CPU torch wheel): keep the two in step."""
    install = section("### Install with pip (no Makefile)")
    (block,) = re.findall(r"^```bash\n(.*?)^```", install, re.DOTALL | re.MULTILINE)
    steps = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    smoke = (ROOT / ".ci" / "wheel-smoke").read_text(encoding="utf-8")
    cpu_torch = "pip install torch --index-url https://download.pytorch.org/whl/cpu"
    ci_form = {
        cpu_torch: '"$BIN/pip" install -q --no-compile "torch==',
        "pip install promptopt": '"$BIN/pip" install -q --no-compile "$WHEEL"',
        "promptopt setup": '"$BIN/promptopt" setup',
        "promptopt serve": '"$BIN/promptopt" serve',
    }
    assert steps == list(ci_form)
    for step in steps:
        assert ci_form[step] in smoke, step
