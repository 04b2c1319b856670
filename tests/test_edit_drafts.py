"""Two drafts, the one that fits: an unverified observed preference is tried in a second draft
and shown only when the output needs fewer changes by the user's own past edits; an output the
user accepts unchanged verifies what it was written with."""

from __future__ import annotations

from typing import Any

from promptopt.edit import EditService
from promptopt.edit.drafts import UNFIXABLE_WORDS, choose, effort
from promptopt.edit.observe import Fact, aggregate
from promptopt.edit.verify import VERIFIED
from promptopt.llm.base import LLMRequest
from tests.test_edit_learning import LONG, NEWS, bullets

RAMBLE = LONG + " And a fifth point. And a sixth one that nobody asked for at all."


# -- the yardstick ----------------------------------------------------------------------------
def test_effort_counts_the_words_left_to_change() -> None:
    facts = [Fact("bullets"), Fact("max_words", "8")]
    assert effort(bullets("One two three. Four five six."), facts) == 0
    assert effort(LONG, facts) > effort(bullets("First point here. Second point."), facts)
    # a preference with no exact fix costs a clause when unmet, nothing when met
    assert effort("We like it.", [Fact("second_person")]) == UNFIXABLE_WORDS
    assert effort("You will like it.", [Fact("second_person")]) == 0


def test_choose_takes_the_draft_with_fewer_changes_and_the_first_on_ties() -> None:
    facts = [Fact("bullets")]
    better = choose([LONG, bullets(LONG)], facts, trial=["bullet points"])
    assert better.index == 1 and "bullet points" in better.note and better.met == [0, 1]
    tie = choose([LONG, LONG + " "], facts, trial=["bullet points"])
    assert tie.index == 0 and "no better" in tie.note
    assert choose([LONG], []).index == 0 and choose([LONG], []).note == ""


def test_an_accepted_output_written_with_a_preference_counts_as_endorsing_it() -> None:
    kept = bullets(LONG)
    pairs = [(kept, kept), (LONG, kept)]
    assert not any(o.fact == Fact("bullets") for o in aggregate(pairs))  # made only once
    found = aggregate(pairs, endorsed=[[Fact("bullets")], []])
    assert any(o.fact == Fact("bullets") and o.introduced == 2 for o in found)


# -- the Edit engine, end to end with fakes ---------------------------------------------------
class Agent:
    """Writes four sentences; in bullets when told "bullet points" (helps) or rambling on when
    told anything (harms); infers the phrase the test chooses."""

    def __init__(self, inferred: str, helps: bool = True) -> None:
        self.inferred, self.helps = inferred, helps

    def __call__(self, request: LLMRequest) -> str:
        system = request.messages[0]["content"] if request.messages[0]["role"] == "system" else ""
        if "edits text written for them" in system or "merge notes" in system:
            return self.inferred
        if "bullet points" in system:
            return bullets(LONG) if self.helps else RAMBLE
        return LONG


def _round(svc: EditService, project: Any, store: Any, text: str) -> tuple[Any, str]:
    item = store.inputs.add(project.id, text)
    draft = svc.prepare(project.id, "ann", item.id)
    texts = [r.completion().text for r in svc.generate_drafts(draft)]
    return draft, svc.choose(draft, texts)


def _service(store: Any, client: Any, embedder: Any) -> tuple[EditService, Any]:
    project = store.projects.create("p", "Summarize:\n{input}", generator_model="fake")
    return EditService(store, client, embedder, meta_model="fake", threshold=0.3), project


def _after_one_bullet_edit(svc: EditService, project: Any, store: Any) -> tuple[Any, str]:
    """The user turned the first output into bullets; the next similar input's draft."""
    first, output = _round(svc, project, store, NEWS[0])
    svc.submit_and_learn(first, output, bullets(LONG), "ann")
    return _round(svc, project, store, NEWS[1])


def test_after_one_edit_a_second_draft_tries_the_waiting_preference_and_wins(
    store: Any, client: Any, fake_llm: Any, fake_embedder: Any
) -> None:
    fake_llm.default = Agent("bullet points")
    svc, project = _service(store, client, fake_embedder)
    first, output = _round(svc, project, store, NEWS[0])
    assert first.trial_messages == [] and output == LONG  # nothing learned yet: one draft
    svc.submit_and_learn(first, output, bullets(LONG), "ann")

    draft, shown = _round(svc, project, store, NEWS[1])
    assert draft.preference == "bullet points"  # the phrase it was written with
    assert draft.choice is not None and draft.choice.index == 1
    assert shown == bullets(LONG)
    assert "not verified yet" in draft.choice.note
    # both drafts are in the call log, as two generate calls
    generated = [c for c in store.calls.list(project.id) if c.purpose == "generate"]
    assert len(generated) >= 3


def test_a_second_draft_that_fits_worse_is_never_shown(
    store: Any, client: Any, fake_llm: Any, fake_embedder: Any
) -> None:
    fake_llm.default = Agent("bullet points", helps=False)
    svc, project = _service(store, client, fake_embedder)
    draft, shown = _after_one_bullet_edit(svc, project, store)
    assert draft.trial_messages  # it was tried
    assert draft.choice is not None and draft.choice.index == 0
    assert shown == LONG and draft.preference == ""


def test_accepting_an_output_written_with_a_waiting_phrase_verifies_it(
    store: Any, client: Any, fake_llm: Any, fake_embedder: Any
) -> None:
    fake_llm.default = Agent("bullet points")
    svc, project = _service(store, client, fake_embedder)
    draft, shown = _after_one_bullet_edit(svc, project, store)
    result = svc.accept(draft, shown, "ann")
    assert result.status == "accepted"
    phrase = store.preferences.find_text(project.id, "ann", "bullet points")
    assert phrase.status == VERIFIED
    assert "accepted" in phrase.evidence["verification"]["reason"]
    # the next similar input gets it applied in its first draft
    later, text = _round(svc, project, store, NEWS[2])
    assert "bullet points" in [p.text for p in later.applied]
    assert text == bullets(LONG)


def test_every_fact_is_named_back_from_its_phrase() -> None:
    facts = [
        Fact("max_words", "40"),
        Fact("max_sentences", "3"),
        Fact("bullets"),
        Fact("numbered"),
        Fact("plain"),
        Fact("no_char", "!"),
        Fact("no_char", ";"),
        Fact("no_markdown"),
        Fact("no_caps"),
        Fact("second_person"),
        Fact("no_first_person"),
        Fact("end_question"),
        Fact("start_with", "Verdict:"),
        Fact("end_with", "Would you buy it?"),
        Fact("replace", "utilize\tuse"),
        Fact("remove", "in conclusion"),
    ]
    for fact in facts:
        assert Fact.from_phrase(fact.phrase) == fact, fact
    assert Fact.from_phrase("write in a flowery style") is None
