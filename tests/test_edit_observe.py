"""The observable-preference analyser: each kind of fact on real edits, aggregation, fixes."""

from __future__ import annotations

import pytest

from promptopt.edit.observe import Fact, aggregate, analyse, apply_fixes, relevant
from promptopt.edit.simulate import RuleUser, load_user

NEWS = (
    "The city council met on Tuesday to vote on the new road plan! The mayor said the plan will "
    "cost two million dollars. Residents who live near the river protested outside the hall. "
    "The vote was postponed until next month because three members were absent."
)
REVIEW = "I love this blender! It crushes ice in seconds. We use it every morning for smoothies."
GUIDE = "First, I open the lid. Then we pour the water. Finally, close it and wait ten minutes."


def phrases(output: str, edited: str) -> set[str]:
    return {f.phrase for f in analyse(output, edited)}


def test_length_in_words_and_sentences() -> None:
    edited = "The city council met on Tuesday to vote on the new road plan."
    found = {f.kind: f for f in analyse(NEWS, edited)}
    assert found["max_words"].value == "13"
    assert found["max_sentences"].value == "1"
    assert found["max_words"].check(edited) and not found["max_words"].check(NEWS)


def test_list_formats_and_plain() -> None:
    bullets = "- The council met.\n- The vote was postponed."
    numbered = "1. Open the lid.\n2. Pour the water."
    assert "bullet points" in phrases(NEWS, bullets)
    assert "numbered steps" in phrases(GUIDE, numbered)
    assert "plain paragraphs without lists" in phrases(bullets, "The council met. It waited.")


def test_punctuation_markdown_and_capitals() -> None:
    assert "no exclamation marks" in phrases(REVIEW, REVIEW.replace("!", "."))
    assert "no markdown formatting" in phrases("**Summary**: it works.", "Summary: it works.")
    assert "no words in capitals" in phrases("This is VERY good.", "This is very good.")


def test_person_opening_closing() -> None:
    edited = "Verdict: You love this blender. It crushes ice in seconds. Would you buy it?"
    found = phrases(REVIEW, edited)
    assert "start with 'Verdict:'" in found
    assert "end with 'Would you buy it?'" in found
    assert "address the reader as you" in found


def test_words_replaced_and_content_removed() -> None:
    output = "In summary, the utilize step is simple. In summary, it works."
    edited = "The use step is simple. It works."
    found = phrases(output, edited)
    assert "write 'use' instead of 'utilize'" in found
    assert "leave out 'in summary'" in found


def test_unchanged_or_whitespace_edit_shows_nothing() -> None:
    assert analyse(NEWS, NEWS) == []
    assert analyse(NEWS, NEWS.replace(" ", "  ")) == []


def test_rule_user_edits_become_preferences_with_evidence() -> None:
    """Two real edits of the simulated user on similar inputs: bullets and the word limit."""
    user = RuleUser(load_user())
    outputs = [
        NEWS,
        "Police arrested a man on Tuesday after a long chase through the town centre. The "
        "suspect was driving a stolen car! He was taken to the county jail on Wednesday. "
        "Officers said no one was hurt during the chase, which lasted twenty minutes.",
    ]
    pairs = [(o, user.edit("cnndm-235", "", o)) for o in outputs]
    found = {o.fact.phrase: o for o in aggregate(pairs)}
    assert "bullet points" in found
    assert "at most 40 words" in found
    assert found["bullet points"].evidence == "holds in 2 of 2 of your edits on similar inputs"


def test_one_off_edit_is_not_a_preference() -> None:
    pairs = [(REVIEW, REVIEW.replace("!", ".")), (NEWS, NEWS)]
    assert aggregate(pairs) == []


def test_trailing_neighbours_of_another_kind_do_not_hide_a_habit() -> None:
    review = "It works well! It is cheap."
    pairs = [
        (REVIEW, REVIEW.replace("!", ".")),
        (review, review.replace("!", ".")),
        (REVIEW, REVIEW.replace("!", ".")),
        (NEWS, NEWS + " More!"),
        (NEWS, NEWS + " Again!"),
    ]
    found = {o.fact.phrase: o for o in aggregate(pairs)}
    assert found["no exclamation marks"].total == 4  # 3 of the nearest 4 reach 75%
    assert relevant(Fact("no_char", "!"), pairs[:3])
    assert not relevant(Fact("no_char", "!"), pairs[3:])


@pytest.mark.parametrize(
    ("fact", "text", "fixed"),
    [
        (Fact("no_char", "!"), "Great! Buy it!", "Great. Buy it."),
        (
            Fact("max_words", "6"),
            "One two three. Four five six. Seven.",
            "One two three. Four five six.",
        ),
        (Fact("start_with", "Verdict:"), "Good value.", "Verdict: Good value."),
        (Fact("replace", "utilize\tuse"), "Utilize it and utilize more.", "Use it and use more."),
        (Fact("bullets"), "One. Two.", "- One.\n- Two."),
        (Fact("no_caps"), "It is VERY good.", "It is Very good."),
    ],
)
def test_fixes_are_exact_and_satisfy_their_checker(fact: Fact, text: str, fixed: str) -> None:
    assert fact.fixable
    assert fact.fix(text) == fixed
    assert fact.check(fixed)
    assert fact.fix(fixed) == fixed  # a satisfying text is left alone


def test_facts_without_exact_fix_leave_text_alone() -> None:
    assert not Fact("second_person").fixable
    assert Fact("second_person").fix(GUIDE) == GUIDE


def test_fixes_compose_in_order() -> None:
    facts = [Fact("bullets"), Fact("no_char", "!"), Fact("max_words", "6")]
    assert apply_fixes("Great! It works well. It is cheap too.", facts) == (
        "- Great.\n- It works well."
    )


def test_spec_round_trip_and_unknown_kind() -> None:
    fact = Fact("replace", "utilize\tuse")
    assert Fact.from_spec(fact.spec()) == fact
    with pytest.raises(KeyError):
        Fact.from_spec({"kind": "nonsense"})
