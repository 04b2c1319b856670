"""Edit distances, the rule-based simulated user and the fake agent."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from promptopt.edit.distance import char_distance, word_distance
from promptopt.edit.simulate import (
    FakeAgent,
    KindPreference,
    Rule,
    RuleUser,
    content_words,
    load_user,
    make_rule,
    rules_in,
)
from promptopt.llm.base import GenerationParams, LLMRequest


def _dp(a: list[str] | str, b: list[str] | str) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, y in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
        prev = cur
    return prev[-1]


def test_distances_match_textbook_dp() -> None:
    rng = random.Random(7)
    for _ in range(400):
        a = [rng.choice(["ab", "cd", "e", "f."]) for _ in range(rng.randint(0, 70))]
        b = [rng.choice(["ab", "cd", "e", "f.", "g"]) for _ in range(rng.randint(0, 70))]
        assert word_distance(" ".join(a), "\n".join(b)) == _dp(a, b)
        assert char_distance("".join(a), "".join(b)) == _dp("".join(a), "".join(b))
    # Longer than one machine word, with shared prefix and suffix.
    a = "x" * 100 + "kitten" * 20 + "y" * 100
    b = "x" * 100 + "sitting" * 20 + "y" * 100
    assert char_distance(a, b) == _dp(a, b)


def test_word_and_char_distance() -> None:
    assert word_distance("the cat sat", "the cat sat") == 0
    assert word_distance("the cat sat", "the  cat\nsat") == 0
    assert word_distance("the cat sat", "a cat sat down") == 2
    assert word_distance("", "one two") == 2
    assert char_distance("kitten", "sitting") == 3
    assert word_distance("Ça va très bien", "Ça va bien") == 1
    assert char_distance("naïve café", "naive cafe") == 2
    long = "word " * 20_000
    assert word_distance(long, long + "extra") == 1


@pytest.mark.parametrize(
    ("spec", "text", "expected"),
    [
        ({"rule": "bullets"}, "One. Two! Three?", "- One.\n- Two!\n- Three?"),
        ({"rule": "numbered"}, "- One.\n- Two.", "1. One.\n2. Two."),
        ({"rule": "no_exclamation"}, "Great! Really!", "Great. Really."),
        ({"rule": "max_words", "n": 4}, "One two. Three four five. Six.", "One two."),
        ({"rule": "max_words", "n": 3}, "One two three four five.", "One two three."),
        ({"rule": "max_sentences", "n": 1}, "One. Two.", "One."),
        ({"rule": "start_with", "text": "TL;DR:"}, "- A point.", "- TL;DR: A point."),
        ({"rule": "end_with_question", "question": "Why?"}, "Done.", "Done. Why?"),
        ({"rule": "second_person"}, "We start. I am done.", "You start. You are done."),
        ({"rule": "second_person"}, "The sky is blue.", "For you: The sky is blue."),
        ({"rule": "plain"}, "- One.\n- Two.", "One. Two."),
    ],
)
def test_rules_apply(spec: dict[str, object], text: str, expected: str) -> None:
    rule = make_rule(spec)
    assert rule.apply(text) == expected
    assert rule.satisfied(expected)


def test_max_words_keeps_closing_question() -> None:
    rule = make_rule({"rule": "max_words", "n": 6})
    out = rule.apply("One two three. Four five six. Seven eight nine. Would you?")
    assert out == "One two three. Would you?"
    assert len(content_words(out)) <= 6


def test_default_user_edits_are_idempotent_and_checkable() -> None:
    user = load_user()
    rng = random.Random(3)
    vocab = ["we", "I", "the", "pan", "great!", "really", "my", "oven", "Then", "bake", "it."]
    for kind, pref in user.items():
        for _ in range(100):
            parts = [" ".join(rng.choices(vocab, k=rng.randint(1, 12))) for _ in range(6)]
            text = ". ".join(parts) + rng.choice([".", "!", "?", ""])
            once = pref.apply(text)
            assert pref.apply(once) == once, (kind, text)
            assert all(rule.satisfied(once) for rule in pref.rules), (kind, text)


def test_user_config_file_defines_new_users(tmp_path: Path) -> None:
    path = tmp_path / "user.json"
    path.write_text(
        json.dumps({"kinds": {"memo": {"rules": [{"rule": "max_words", "n": 3}]}}}),
        encoding="utf-8",
    )
    user = load_user(path)
    assert user["memo"].preference == "at most 3 words"
    assert RuleUser(user).edit("memo", "", "a b c d e") == "a b c."
    with pytest.raises(ValueError, match="no preference for document kind"):
        RuleUser(user).edit("news", "", "x")
    path.write_text(json.dumps({"kinds": {"memo": {"rules": [{"rule": "shout"}]}}}))
    with pytest.raises(ValueError, match="Unknown rule"):
        load_user(path)


def test_rules_in_reads_canonical_phrases() -> None:
    found = rules_in("bullet points, at most 40 words; start with 'Verdict:'")
    assert set(found) == {
        Rule("bullets"),
        Rule("max_words", 40),
        Rule("start_with", text="Verdict:"),
    }
    assert rules_in("be nice") == []


def test_fake_agent_follows_preferences_and_infers_them() -> None:
    user = {"k": KindPreference("k", "bullet points", [Rule("bullets")])}
    agent = FakeAgent(user, summary_sentences=2)

    def ask(messages: list[dict[str, str]]) -> str:
        return agent(LLMRequest("fake", messages, GenerationParams()))

    plain = ask([{"role": "user", "content": "Summarize.\n\nOne. Two. Three."}])
    assert plain == "One. Two."
    styled = ask(
        [
            {"role": "system", "content": "follow: bullet points"},
            {"role": "user", "content": "Summarize.\n\nOne. Two. Three."},
        ]
    )
    assert styled == "- One.\n- Two."
    inferred = ask(
        [
            {"role": "system", "content": "x"},
            {
                "role": "user",
                "content": "<original>\nOne. Two.\n</original>\n\n"
                "<revised>\n- One.\n- Two.\n</revised>",
            },
        ]
    )
    assert inferred == "bullet points"


def test_llm_user_follows_reference_protocol(store: object) -> None:
    from promptopt.edit.simulate import LLMUser
    from promptopt.llm import FakeLLM, create_client

    fake = FakeLLM(["Yes.", "no", "- One.\n- Two."])
    client = create_client(store, fake=fake)  # type: ignore[arg-type]
    user = LLMUser({"k": KindPreference("k", "bullet points", [])}, client, "fake")
    assert user.edit("k", "input", "One. Two.") == "One. Two."  # fits: left as it is
    assert user.edit("k", "input2", "One. Two!") == "- One.\n- Two."  # asked to rewrite
    asks = [r.messages[0]["content"] for r in fake.history]
    assert "satisfy the preference" in asks[1] and "bullet points" in asks[1]
    assert "Revise the text" in asks[2]
    assert user.tokens > 0
