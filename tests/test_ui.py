"""Handler tests through gradio_client against a launched app with the fake LLM and embedder.

One app serves the module (launching takes a second); each test opens its own client session,
which is its own browser tab as far as the app is concerned.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio_client
import pytest

from promptopt.llm import LLMError
from promptopt.ui.harness import RunningApp, running_app


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    folder = tmp_path_factory.mktemp("ui")
    with running_app(folder / "ui.db") as running:
        yield running


def session(app: RunningApp, annotator: str | None = None) -> Any:
    client = gradio_client.Client(app.url, verbose=False)
    if annotator is not None:
        client.predict(annotator, api_name="/set_annotator")
    return client


def create(client: Any, name: str, template: str = "Summarize:\n{input}") -> tuple:
    return client.predict(name, "a task", template, "fake", "fake", "", api_name="/create_project")


def test_create_project_validates_template_and_keeps_the_form(app: RunningApp) -> None:
    client = session(app)
    result = create(client, "no placeholder", template="Summarize this.")
    assert r"\{input\}" in result[0]  # the status says what to add (escaped Markdown source)
    assert app.store.projects.find("no placeholder") is None
    result = create(client, "ok project")
    assert "Created" in result[0]
    assert app.store.projects.find("ok project") is not None


def test_typed_and_imported_inputs_report_bad_rows(app: RunningApp, tmp_path: Path) -> None:
    client = session(app)
    create(client, "inputs project")
    status = client.predict(
        "first input\n\nsecond input\n", "one input per line", api_name="/add_inputs"
    )[0]
    assert "Added 2 inputs" in status
    csv_file = tmp_path / "rows.csv"
    csv_file.write_text("id,text\n1,good row one\n2,\n3,good row three\n", encoding="utf-8")
    status = client.predict(
        gradio_client.handle_file(str(csv_file)), "text", api_name="/import_inputs"
    )[0]
    assert "Imported 2 inputs" in status and "1 bad row skipped" in status
    project = app.store.projects.find("inputs project")
    texts = [i.text for i in app.store.inputs.list(project.id)]
    assert texts == ["first input", "second input", "good row one", "good row three"]
    # The same file again, and a typed input the project has: reported and left out.
    again = client.predict(
        gradio_client.handle_file(str(csv_file)), "text", api_name="/import_inputs"
    )[0]
    assert "Imported 0 inputs" in again and "Left out 2 inputs the project already has" in again
    typed = client.predict("first input\nthird input", "one input per line", api_name="/add_inputs")
    assert "Added 1 input." in typed[0] and "Left out 1 input" in typed[0]
    texts = [i.text for i in app.store.inputs.list(project.id)]
    assert texts == ["first input", "second input", "good row one", "good row three", "third input"]


def test_edit_round_updates_the_profile_of_that_annotator_only(app: RunningApp) -> None:
    alice = session(app, "alice")
    alice.predict(api_name="/open_sample_informal_to_formal")
    drafted = alice.predict(api_name="/edit_next")
    output = drafted[3]
    assert output  # the fake wrote something for the first input
    result = alice.predict("Dear sir, " + output + " Regards.", api_name="/edit_submit")
    status, diff, distance, inferred = result[0], result[1], result[2], result[3]
    assert status.startswith("Saved")
    assert "3 words" in distance  # "Dear sir," and "Regards." added
    added = [d["token"] for d in diff if d.get("class_or_confidence") == "+"]
    assert any("Dear" in token for token in added)
    assert "Inferred preference" in inferred  # "pending" until the background inference ends
    inferred = alice.predict(api_name="/edit_learned")
    assert "Inferred preference" in inferred and "pending" not in inferred
    table = alice.predict(api_name="/profile")[0]
    assert len(table["data"]) == 1
    pref_id, text = table["data"][0][0], table["data"][0][1]

    bob = session(app, "bob")
    bob.predict(api_name="/open_sample_informal_to_formal")
    assert bob.predict(api_name="/profile")[0]["data"] == []
    # Bob cannot change Alice's preference by typing its id.
    status = bob.predict(pref_id, "hijacked", False, api_name="/profile_save")[1]
    assert "another profile" in status
    assert app.store.preferences.get(pref_id).text == text

    alice.predict(pref_id, text, False, api_name="/profile_pin")
    assert app.store.preferences.get(pref_id).pinned == 1
    alice.predict(pref_id, "use formal register", False, api_name="/profile_save")
    assert app.store.preferences.get(pref_id).text == "use formal register"
    table = alice.predict(pref_id, "", False, api_name="/profile_delete")[0]
    assert table["data"] == []
    table = alice.predict(pref_id, "", True, api_name="/profile_restore")[0]
    assert table["data"][0][1] == "use formal register"


def test_llm_error_is_readable_and_retry_keeps_going(app: RunningApp) -> None:
    client = session(app, "carol")
    client.predict(api_name="/open_sample_news_summaries")

    def down(request: Any) -> str:
        raise LLMError("provider is down")

    # Every call fails while the provider is down (not one queued failure, which the project's
    # head-start pair, written in the background, may take first).
    working, app.fake.default = app.fake.default, down
    try:
        failed = client.predict(api_name="/edit_next")
    finally:
        app.fake.default = working
    assert "provider is down" in failed[4] and "Retry" in failed[4]
    retried = client.predict(None, api_name="/edit_retry")
    assert retried[3] and "Edit the output" in retried[4]


def test_accept_as_is_records_a_zero_distance_round(app: RunningApp) -> None:
    client = session(app, "dave")
    client.predict(api_name="/open_sample_news_summaries")
    client.predict(api_name="/edit_next")
    result = client.predict(api_name="/edit_accept")
    assert result[0].startswith("Saved") and "0 words" in result[2]
    project = app.store.projects.find("News summaries")
    edits = app.store.edits.list(project.id, "dave")
    assert len(edits) == 1 and edits[0].output == edits[0].edited


def test_export_and_inspect(app: RunningApp, tmp_path: Path) -> None:
    client = session(app, "erin")
    client.predict(api_name="/open_sample_news_summaries")
    status, path, preview = client.predict("markdown", True, api_name="/export")
    assert "Exported" in status
    content = Path(path).read_text(encoding="utf-8")
    assert "Summarize the following news article" in content and content.strip() in preview
    summary, table, refused = client.predict(api_name="/calls")
    assert "calls" in summary
    assert set(table["headers"]) >= {"model", "tokens (in + out)", "latency"}
    assert refused["headers"] == ["id", "time", "origin", "reason", "candidate"]


def test_confirmed_delete_removes_the_project(app: RunningApp) -> None:
    client = session(app)
    create(client, "doomed")
    client.predict(api_name="/delete_project")
    assert app.store.projects.find("doomed") is None


def test_votes_map_screen_sides_to_prompts(app: RunningApp) -> None:
    client = session(app, "frank")
    client.predict(api_name="/open_sample_news_summaries")
    project = app.store.projects.find("News summaries")
    client.predict(
        "Give me three bullet points about this article:\n{input}", api_name="/add_candidate"
    )
    shown = client.predict(api_name="/compare_start")
    assert shown[3] and shown[4]  # both outputs complete before a vote is possible
    for _ in range(3):
        shown = client.predict("", api_name="/vote_left")
    counter = shown[0]
    assert "3 by frank" in counter
    votes = app.store.comparisons.list(project.id, "frank")
    assert len(votes) == 3
    for vote in votes:
        # "A better" means the prompt that was on the left, whichever engine side that was.
        assert vote.verdict == vote.left
        assert vote.output_a and vote.output_b
    board = client.predict(api_name="/leaderboard")[1]
    assert len(board["data"]) >= 2


def test_voting_before_a_pair_is_shown_is_refused(app: RunningApp) -> None:
    client = session(app, "gina")
    client.predict(api_name="/open_sample_news_summaries")
    result = client.predict("", api_name="/vote_right")
    assert "Wait until both outputs" in result[5]


def test_login_is_the_annotator_whatever_the_client_says(tmp_path: Path) -> None:
    with running_app(tmp_path / "auth.db", auth=[("alice", "pw1"), ("bob", "pw2")]) as app:
        client = gradio_client.Client(app.url, auth=("alice", "pw1"), verbose=False)
        client.predict("mallory", api_name="/set_annotator")  # ignored: the login decides
        client.predict(api_name="/open_sample_informal_to_formal")
        client.predict(api_name="/edit_next")
        client.predict(api_name="/edit_accept")
        project = app.store.projects.find("Informal to formal")
        assert [e.annotator for e in app.store.edits.list(project.id)] == ["alice"]


def test_serve_options_and_warning() -> None:
    from promptopt.ui.serve_cli import host_warning, parse_auth

    assert parse_auth(["a:b", "c:d:e"]) == [("a", "b"), ("c", "d:e")]
    assert parse_auth(None, "u1:p1,u2:p2") == [("u1", "p1"), ("u2", "p2")]
    with pytest.raises(ValueError, match="USER:PASS"):
        parse_auth(["nopassword"])
    assert host_warning("127.0.0.1", []) is None
    assert host_warning("0.0.0.0", [("a", "b")]) is None
    warning = host_warning("0.0.0.0", [])
    assert warning is not None and "--auth" in warning


def test_word_diff_and_escaping() -> None:
    from promptopt.ui.formatting import escape_md, word_diff

    diff = word_diff("the cat sat", "the dog sat down")
    assert ("cat ", "-") in diff and ("dog ", "+") in diff and ("down ", "+") in diff
    escaped = escape_md("<script>alert(1)</script> **bold**")
    assert "<script>" not in escaped and "**" not in escaped


def test_engine_verdict_follows_the_screen_side() -> None:
    from promptopt.workspace import engine_verdict

    assert engine_verdict("left", "a") == "a" and engine_verdict("left", "b") == "b"
    assert engine_verdict("right", "a") == "b" and engine_verdict("right", "b") == "a"
    assert engine_verdict("tie", "b") == "tie" and engine_verdict("skip", "a") == "skip"


def test_screen_sides_and_prompts_map_both_ways() -> None:
    from types import SimpleNamespace

    from promptopt.workspace.sides import screen_prompts, to_prompts

    for left in ("a", "b"):
        duel = SimpleNamespace(left=left, prompt_a="A", prompt_b="B")
        on_left, on_right = screen_prompts(duel)  # type: ignore[arg-type]
        assert on_left == ("A" if left == "a" else "B") and {on_left, on_right} == {"A", "B"}
        # what was shown on each side goes back to the prompt that wrote it
        assert to_prompts(duel, f"out {on_left}", f"out {on_right}") == ("out A", "out B")  # type: ignore[arg-type]


def test_add_own_preference_is_pinned_and_applied(app: RunningApp) -> None:
    client = session(app, "hana")
    client.predict(api_name="/open_sample_informal_to_formal")
    table, status, _ = client.predict("always end with a question", False, api_name="/profile_add")
    assert "pinned" in status and table["data"][0][1] == "always end with a question"
    applied = client.predict(api_name="/edit_next")[1]
    assert "always end with a question" in applied


def test_hostile_files_get_a_report_never_a_traceback(app: RunningApp, tmp_path: Path) -> None:
    """Issue 9, failure 3: through the app, bad files gave "Something went wrong"."""
    client = session(app)
    create(client, "hostile files")
    files = {
        "surrogate.jsonl": b'{"text": "a \\ud800 b"}\n{"text": "good"}\n',
        "deep.jsonl": b"[" * 10_000 + b'\n{"text": "good"}\n',
        "bytes.csv": b"text\nbad \xff byte\ngood\n",
        "huge.csv": b'text\n"' + b"x" * 200_000 + b'"\ngood\n',
        "seps.txt": "a\u2028b\ngood\n".encode(),
        "utf16.csv": "text\ngood\n".encode("utf-16"),
        "empty.csv": b"",
        "nothing.jsonl": b"{bad\n[1,\n",
    }
    for name, data in files.items():
        path = tmp_path / name
        path.write_bytes(data)
        status = client.predict(
            gradio_client.handle_file(str(path)), None, api_name="/import_inputs"
        )[0]
        assert "Something went wrong" not in status, (name, status)
        if name in ("utf16.csv", "empty.csv", "nothing.jsonl"):
            assert "save it as" in status or "no good rows" in status, (name, status)
        else:
            # "good" is in several files: after the first, it is left out as already there
            assert status.startswith("Imported "), (name, status)
    project = app.context.workspace.store.projects.find("hostile files")
    texts = [i.text for i in app.context.workspace.store.inputs.list(project.id)]
    assert "a \ufffd b" in texts and "bad \ufffd byte" in texts and "a\u2028b" in texts


def test_an_empty_model_output_is_an_error_with_retry_not_a_pair(app: RunningApp) -> None:
    """Issue 9, failure 6: an empty reply was shown as a finished pair and could be voted on."""
    client = session(app, "hank")
    create(client, "empty outputs", template="Rewrite for hank:\n{input}")
    client.predict("an input about rivers\n", "one input per line", api_name="/add_inputs")
    client.predict("Shorten for hank:\n{input}", api_name="/add_candidate")
    app.fake.enqueue(["  \n "])
    shown = client.predict(api_name="/compare_start")
    assert "empty answer" in shown[5] and "Retry" in shown[5], shown[5]
    refused = client.predict("", api_name="/vote_left")
    assert "Wait until both outputs" in refused[5]
    project = app.store.projects.find("empty outputs")
    assert app.store.comparisons.list(project.id, "hank") == []
    retried = client.predict(api_name="/compare_retry")
    assert retried[3].strip() and retried[4].strip(), retried  # asked again, not the cache


def test_a_base_url_with_a_password_is_refused_and_never_stored(app: RunningApp) -> None:
    """Issue 9, failure 2: the credential sat in the project's settings and the Project tab."""
    client = session(app)
    secret = "pw-XYZZY-4242"
    result = client.predict(
        "creds", "a task", "Summarize:\n{input}", "openai/m", "openai/m",
        f"http://bob:{secret}@127.0.0.1:9/v1", api_name="/create_project",
    )  # fmt: skip
    assert "PROMPTOPT\\_API\\_BASE\\_AUTH" in result[0] and secret not in result[0]
    assert app.store.projects.find("creds") is None
    rows = app.store.database.db.execute("SELECT settings FROM project").fetchall()
    assert all(secret not in str(r) for r in rows)


def test_a_slow_first_pair_shows_its_progress_above_the_boxes(tmp_path: Path) -> None:
    """Every model wait of a new project's first pair says what is happening and how long it has
    taken, in the line above the pair; done, it is gone. (The first candidate needs no model.)"""
    with running_app(tmp_path / "slow.db", fake_delay_s=1.5) as slow:
        client = session(slow, "ivy")
        client.predict(api_name="/open_sample_news_summaries")
        job = client.submit(api_name="/compare_start")
        final = job.result(timeout=60)
        seen = [out[-1] for out in job.outputs() if isinstance(out[-1], str) and out[-1]]
    assert any("Starting the model" in s for s in seen), seen
    assert any(re.search(r"[1-9] s\b", s) for s in seen), seen  # the seconds go up
    assert final[3] and final[4] and final[-1] == ""  # the progress line, last


def test_progress_rate_counts_tokens_after_the_first(monkeypatch: pytest.MonkeyPatch) -> None:
    from promptopt.ui import formatting

    clock = iter([100.0, 103.0, 103.5, 105.0])
    monkeypatch.setattr(formatting.time, "perf_counter", lambda: next(clock))
    rate = formatting.Rate()  # started at 100
    assert rate.text("Starting the model…") == "⏳ Starting the model… 3 s"
    assert rate.text("Writing…", 4) == "⏳ Writing… 4 s"  # first tokens: no rate yet
    assert rate.text("Writing…", 19) == "⏳ Writing… 5 s · 19 tokens so far, 10.0 tokens/s"


def test_your_change_shows_a_hint_then_the_word_diff_as_text() -> None:
    from promptopt.edit.learning import LearnReport
    from promptopt.storage.models import Preference
    from promptopt.ui.tabs.edit import DIFF_HINT, live_diff, observed_text
    from promptopt.workspace import EditResult

    assert live_diff(None, "typed before any output") == DIFF_HINT
    assert live_diff("a b", " a  b\n") == DIFF_HINT  # spacing only: no change of words
    diff = live_diff("keep this word", "keep <b>that</b> word")
    assert ("this ", "-") in diff and ("<b>that</b> ", "+") in diff  # raw text, never markup
    pref = Preference(
        id=1, project_id=1, annotator="a", text="<i>bullet</i> points",
        evidence={"text": "holds in 2 of 2 of your edits on similar inputs"},
    )  # fmt: skip
    edit: Any = object()
    shown = observed_text(EditResult(edit, 1, 1, None, "pending", learned=LearnReport([pref])))
    assert shown.startswith("**Observed in your edits:**")
    assert "<i>" not in shown and "holds in 2 of 2" in shown
    assert observed_text(EditResult(edit, 1, 1, None, "pending")) == ""


def test_once_learned_each_phrase_says_whether_it_is_applied_and_why_not() -> None:
    from promptopt.storage.models import Edit, Preference
    from promptopt.ui.tabs.edit import learned_text
    from promptopt.workspace import EditResult, ProfileEntry

    def entry(pid: int, phrase: str, status: str, **evidence: Any) -> ProfileEntry:
        pref = Preference(id=pid, project_id=1, annotator="a", text=phrase, evidence=evidence)
        return ProfileEntry(pref, 1, status)

    refused = {"reason": "did not help on 1 earlier input(s): 32.0 words to change with it"}
    profile = [
        entry(1, "bullet points", "not verified", text="holds in 2 of 2", verification=refused),
        entry(2, "*style* and format", "pending"),
        entry(3, "unrelated", "verified"),
    ]
    edit = Edit(id=5, project_id=1, annotator="a", output="o", edited="e")
    done = EditResult(edit, 1, 1, "*Style*  and format", "done")
    text = learned_text(done, [1], profile)
    assert "bullet points (holds in 2 of 2) — not verified: did not help on 1 earlier" in text
    assert "\\*Style\\*  and format — not verified yet, so not applied" in text  # escaped
    assert "unrelated" not in text
    failed = EditResult(edit, 1, 1, None, "pending", error="timeout")
    assert "the model call failed" in learned_text(failed, [], profile)
