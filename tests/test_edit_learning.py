"""Learning that earns its place: verification, the default policy, exports of what was verified,
observable checks as promptfoo asserts, and the python: simulated-user loader."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from promptopt.edit import EditService
from promptopt.edit.observe import Fact
from promptopt.edit.pyuser import UserFileError, load_python_user
from promptopt.edit.verify import PENDING, UNVERIFIED, VERIFIED, Budget, Replay, Verifier, judge
from promptopt.export.checks import fact_expression
from promptopt.llm.base import LLMRequest

NEWS = [
    "The city council voted on the new budget for schools and roads in the city today.",
    "The city council approved the budget for roads and schools after a long vote today.",
    "The city council debated the budget for schools and roads in the city hall today.",
    "The city council passed the budget for roads and city schools on a vote today.",
]
LONG = "First point here. Second point here. Third point here. Fourth point here."


def bullets(text: str) -> str:
    return "\n".join(f"- {s.strip()}." for s in text.split(".") if s.strip())


# -- the verifier on its own ------------------------------------------------------------------
def test_judge_keeps_only_what_brings_outputs_closer() -> None:
    assert judge([2, 3], [10, 9]).status == VERIFIED
    assert judge([10, 9], [2, 3]).status == UNVERIFIED
    assert judge([5], [5]).status == UNVERIFIED  # no gain is no reason to apply it
    closer_but_fails = judge([2], [3], [False], [True])
    assert closer_but_fails.status == UNVERIFIED and "check" in closer_but_fails.reason


def _writer(helps: bool) -> Any:
    """A generator that writes bullets when told "bullet points" (helps) or rambles (harms)."""

    def generate(input_text: str, phrase: str | None) -> tuple[str, bool]:
        if phrase is None:
            return LONG, False
        return (bullets(LONG) if helps else LONG + " Also more words nobody wanted."), False

    return generate


def test_a_helpful_phrase_is_verified_and_a_harmful_one_is_not() -> None:
    replays = [Replay("in 1", bullets(LONG)), Replay("in 2", bullets(LONG))]
    good = Verifier(_writer(helps=True)).verify(
        "bullet points", replays, Budget(10), Fact("bullets").check
    )
    assert good.status == VERIFIED and good.distance_with == 0
    bad = Verifier(_writer(helps=False)).verify(
        "bullet points", replays, Budget(10), Fact("bullets").check
    )
    assert bad.status == UNVERIFIED and "did not help" in bad.reason


def test_verification_waits_without_history_or_budget() -> None:
    verifier = Verifier(_writer(helps=True))
    assert verifier.verify("x", [], Budget(10)).status == PENDING
    assert verifier.verify("x", [Replay("in", "t")], Budget(0)).status == PENDING


def test_budget_counts_uncached_generations_and_reuses_the_baseline() -> None:
    calls: list[str | None] = []

    def generate(input_text: str, phrase: str | None) -> tuple[str, bool]:
        calls.append(phrase)
        return "text", False

    verifier = Verifier(generate)
    budget = Budget(10)
    replays = [Replay("a", "text"), Replay("b", "text")]
    verifier.verify("p1", replays, budget)
    verifier.verify("p2", replays, budget)
    assert calls.count(None) == 2  # the "without" outputs are shared by both phrases
    assert budget.spent == 6


# -- the Edit engine's default policy, end to end with fakes ----------------------------------
class Agent:
    """A fake agent: writes four sentences, in bullets when its prompt asks for bullet points;
    infers a phrase chosen by the test."""

    def __init__(self, inferred: str) -> None:
        self.inferred = inferred

    def __call__(self, request: LLMRequest) -> str:
        system = request.messages[0]["content"] if request.messages[0]["role"] == "system" else ""
        if "edits text written for them" in system:
            return self.inferred
        if "merge notes" in system:
            return self.inferred
        return bullets(LONG) if "bullet points" in system else LONG


def _rounds(store: Any, client: Any, embedder: Any, n: int) -> tuple[EditService, Any, list[Any]]:
    project = store.projects.create("p", "Summarize:\n{input}", generator_model="fake")
    svc = EditService(store, client, embedder, meta_model="fake", threshold=0.3)
    drafts = []
    for text in NEWS[:n]:
        item = store.inputs.add(project.id, text)
        draft = svc.prepare(project.id, "ann", item.id)
        output = draft.finish(svc.generate(draft).text())
        svc.submit_and_learn(draft, output, bullets(LONG), "ann")
        drafts.append(draft)
    return svc, project, drafts


def test_observable_preference_appears_after_two_edits_with_evidence(
    store: Any, client: Any, fake_llm: Any, fake_embedder: Any
) -> None:
    fake_llm.default = Agent("bullet points")
    svc, project, _ = _rounds(store, client, fake_embedder, 2)
    prefs = {p.text: p for p in store.preferences.list(project.id, "ann")}
    observed = prefs["bullet points"]
    assert observed.kind == "observable"  # the observable fact (the inferred one shares text)
    assert observed.evidence["text"] == "holds in 2 of 2 of your edits on similar inputs"
    assert Fact.from_spec(observed.spec) == Fact("bullets")
    assert svc is not None


def test_a_phrase_that_helps_is_verified_then_applied(
    store: Any, client: Any, fake_llm: Any, fake_embedder: Any
) -> None:
    fake_llm.default = Agent("bullet points")
    _, project, drafts = _rounds(store, client, fake_embedder, 3)
    assert drafts[0].preference == "" and drafts[1].preference == ""  # nothing verified yet
    assert "bullet points" in drafts[2].preference
    bullet = store.preferences.find_text(project.id, "ann", "bullet points")
    assert bullet.status == VERIFIED
    assert bullet.evidence["verification"]["distance_with"] == 0
    calls = [c for c in store.calls.list(project.id) if c.purpose == "verify-preference"]
    assert calls  # every replay is in the call log


def test_a_phrase_that_harms_is_shown_but_never_applied(
    store: Any, client: Any, fake_llm: Any, fake_embedder: Any
) -> None:
    fake_llm.default = Agent("write in a very long and flowery style")
    svc, project, drafts = _rounds(store, client, fake_embedder, 4)
    flowery = store.preferences.find_text(
        project.id, "ann", "write in a very long and flowery style"
    )
    assert flowery is not None and flowery.status != VERIFIED
    assert all("flowery" not in d.preference for d in drafts)
    item = store.inputs.add(project.id, NEWS[0] + " Again.")
    draft = svc.prepare(project.id, "ann", item.id)
    assert "flowery" not in draft.preference
    # pinning forces it
    svc.update_preference(flowery.id, project_id=project.id, annotator="ann", pinned=True)
    assert "flowery" in svc.prepare(project.id, "ann", item.id).preference


def test_nothing_applied_says_why(
    store: Any, client: Any, fake_llm: Any, fake_embedder: Any
) -> None:
    fake_llm.default = Agent("write in a very long and flowery style")
    svc, project, _ = _rounds(store, client, fake_embedder, 1)
    far = store.inputs.add(project.id, "Whisk eggs with sugar and bake the batter for an hour.")
    draft = svc.prepare(project.id, "ann", far.id)
    assert draft.preference == "" and "similar enough" in draft.note
    near = store.inputs.add(project.id, NEWS[1])
    draft = svc.prepare(project.id, "ann", near.id)
    assert draft.preference == "" and "not verified yet" in draft.note


def test_fix_switched_on_is_applied_to_the_output(
    store: Any, client: Any, fake_llm: Any, fake_embedder: Any
) -> None:
    fake_llm.default = Agent("keep it")
    svc, project, _ = _rounds(store, client, fake_embedder, 2)
    observed = store.preferences.find_text(project.id, "ann", "bullet points")
    svc.update_preference(observed.id, project_id=project.id, annotator="ann", fix=True)
    item = store.inputs.add(project.id, NEWS[2])
    draft = svc.prepare(project.id, "ann", item.id)
    assert draft.finish(LONG) == bullets(LONG)


# -- observable checks exported as promptfoo asserts run the same as the Python checkers -------
@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the asserts")
def test_promptfoo_asserts_agree_with_the_checkers() -> None:
    facts = [
        Fact("max_words", "6"),
        Fact("max_sentences", "2"),
        Fact("bullets"),
        Fact("numbered"),
        Fact("plain"),
        Fact("no_char", "!"),
        Fact("no_markdown"),
        Fact("no_caps"),
        Fact("second_person"),
        Fact("no_first_person"),
        Fact("start_with", "Verdict:"),
        Fact("end_question"),
        Fact("end_with", "Would you buy it?"),
        Fact("replace", "utilize\tuse"),
        Fact("remove", "in summary"),
    ]
    texts = [
        "- One two.\n- Three four.",
        "1. Open it.\n2. Close it.",
        "Verdict: You will like it. Would you buy it?",
        "In summary, I LOVE it! **Great**. We utilize it daily and we always will.",
        "A plain text. With two sentences.",
    ]
    script = "const cases = " + json.dumps(
        [[fact_expression(f.kind, f.value), t] for f in facts for t in texts]
    )
    script += ";\nconsole.log(JSON.stringify(cases.map(([e, output]) => Boolean(eval(e)))));"
    done = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    expected = [f.check(t) for f in facts for t in texts]
    assert json.loads(done.stdout) == expected


# -- --user python: -----------------------------------------------------------------------------
USER_FILE = """
class User:
    def __init__(self, seed):
        self.seed = seed
    def preference(self, kind):
        return "no exclamation marks"
    def edit(self, kind, document, output):
        return output.replace("!", ".")
"""


def test_python_user_loads_and_follows_the_protocol(tmp_path: Path) -> None:
    path = tmp_path / "me.py"
    path.write_text(USER_FILE, encoding="utf-8")
    user = load_python_user(f"python:{path}", seed=3)
    assert user.obj.seed == 3
    assert user.edit("news", "doc", "Wow!") == "Wow."
    assert user.preference("news") == "no exclamation marks"
    assert load_python_user(f"python:{path}:User", seed=0).name.endswith("me.py:User")


@pytest.mark.parametrize(
    ("body", "spec", "message"),
    [
        (None, "python:{dir}/missing.py", "No simulated-user file"),
        ("def broken(:\n", "python:{path}", "Cannot load"),
        ("class Other: pass\n", "python:{path}", "has no class 'User'"),
        ("class User:\n    def __init__(self, seed): pass\n", "python:{path}", "has no method"),
        (
            "class U:\n    def __init__(self, seed): pass\n    def preference(self, k): return 1"
            "\n    def edit(self, k, d, o): return o\n",
            "python:{path}:U",
            None,
        ),
    ],
)
def test_python_user_errors_are_one_line(
    tmp_path: Path, body: str | None, spec: str, message: str | None
) -> None:
    path = tmp_path / "u.py"
    if body is not None:
        path.write_text(body, encoding="utf-8")
    spec = spec.format(dir=tmp_path, path=path)
    if message is None:  # loads, but a wrong return type is reported when it is used
        with pytest.raises(UserFileError, match="not str"):
            load_python_user(spec, 0).preference("news")
        return
    with pytest.raises(UserFileError, match=message) as info:
        load_python_user(spec, 0)
    assert "\n" not in str(info.value)


def test_bench_cli_reports_a_bad_user_file_in_one_line(tmp_path: Path, capsys: Any) -> None:
    from promptopt.cli import main

    docs = tmp_path / "d.jsonl"
    docs.write_text(json.dumps({"id": 1, "text": "A doc."}) + "\n", encoding="utf-8")
    bad = tmp_path / "bad.py"
    bad.write_text("class User:\n    pass\n", encoding="utf-8")
    code = main(
        ["bench", "edit", "--agent", "fake", "--embedder", "fake", "--docs", str(docs),
         "--user", f"python:{bad}", "--out", str(tmp_path / "o.json")]
    )  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and "has no method" in err
