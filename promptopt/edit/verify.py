"""Verified before applied: a learned phrase earns its place on the annotator's own history.

A phrase (inferred by the LLM, or an observable fact put in words) is replayed on a few past
similar inputs it was not learned from: the generator writes each of them once without the phrase
and once with it, and the phrase is kept active only if the outputs come closer to what the user
actually wrote there (lower mean word edit distance, and no lower pass rate of the phrase's
checker where it has one). A weak model that gets worse when told a preference therefore never
has that preference applied; a capable one earns it after a couple of edits.

The work is bounded: one ``Budget`` per learned edit caps the generations that were not served
from the cache (the "without" outputs of an input are shared by every phrase tried on it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from promptopt.edit.distance import word_distance

PENDING = "pending"  # not enough history, or no budget left yet: shown, not applied
VERIFIED = "verified"  # applied to new outputs
UNVERIFIED = "unverified"  # replayed and did not help: shown, applied only if pinned
STATUSES = (PENDING, VERIFIED, UNVERIFIED)

# Defaults sized for the offline model on two CPU cores: each replay costs one generation with
# the phrase (and one without, the first time an input is replayed).
DEFAULT_REPLAYS = 2
DEFAULT_BUDGET = 6
DEFAULT_MARGIN = 0.1


@dataclass(frozen=True)
class VerifyConfig:
    replays: int = DEFAULT_REPLAYS  # past inputs one phrase is replayed on
    budget: int = DEFAULT_BUDGET  # uncached generations per learned edit, all phrases together
    # Share by which the mean distance must fall: a word or two either way is the noise of
    # generating again on one or two inputs, not a phrase that helps.
    margin: float = DEFAULT_MARGIN

    def __post_init__(self) -> None:
        if self.replays < 1 or self.budget < 0:
            raise ValueError("Verification needs at least one replay and a budget of 0 or more.")


@dataclass(frozen=True)
class Replay:
    """One past round: its input and the text the user turned the output into."""

    input_text: str
    target: str
    edit_id: int | None = None


@dataclass
class Verdict:
    status: str
    replays: int = 0
    distance_with: float | None = None
    distance_without: float | None = None
    pass_with: float | None = None
    pass_without: float | None = None
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "replays": self.replays,
            "distance_with": self.distance_with,
            "distance_without": self.distance_without,
            "pass_with": self.pass_with,
            "pass_without": self.pass_without,
            "reason": self.reason,
        }


@dataclass
class Budget:
    """Uncached generations left for one learned edit."""

    left: int
    spent: int = 0

    def take(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        self.spent += 1
        return True


# generate(input_text, phrase or None) -> (output, served_from_cache)
Generate = Callable[[str, str | None], tuple[str, bool]]


@dataclass
class Verifier:
    generate: Generate
    config: VerifyConfig = field(default_factory=VerifyConfig)
    _without: dict[str, str] = field(default_factory=dict)

    def _run(self, input_text: str, phrase: str | None, budget: Budget) -> str | None:
        key = input_text
        if phrase is None and key in self._without:
            return self._without[key]
        output, cached = self.generate(input_text, phrase)
        # A cache hit is free; a miss is paid from the budget after the fact (the generator
        # alone knows whether it was cached), so the budget can overrun by one call at most.
        if not cached and not budget.take():
            return None
        if phrase is None:
            self._without[key] = output
        return output

    def verify(
        self,
        phrase: str,
        replays: Sequence[Replay],
        budget: Budget,
        checker: Callable[[str], bool] | None = None,
    ) -> Verdict:
        chosen = list(replays)[: self.config.replays]
        if not chosen:
            return Verdict(PENDING, reason="no earlier similar edit to replay it on yet")
        if budget.left <= 0:
            return Verdict(PENDING, reason="waiting for its turn (verification budget spent)")
        with_d: list[int] = []
        without_d: list[int] = []
        with_pass: list[bool] = []
        without_pass: list[bool] = []
        for replay in chosen:
            base = self._run(replay.input_text, None, budget)
            if base is None:
                break
            out = self._run(replay.input_text, phrase, budget)
            if out is None:
                break
            with_d.append(word_distance(out, replay.target))
            without_d.append(word_distance(base, replay.target))
            if checker is not None:
                with_pass.append(checker(out))
                without_pass.append(checker(base))
        if not with_d:
            return Verdict(PENDING, reason="waiting for its turn (verification budget spent)")
        return judge(with_d, without_d, with_pass, without_pass, self.config.margin)


def judge(
    with_d: Sequence[int],
    without_d: Sequence[int],
    with_pass: Sequence[bool] = (),
    without_pass: Sequence[bool] = (),
    margin: float = 0.0,
) -> Verdict:
    """Verified only if outputs came closer to the user's text and no fewer pass the checker."""
    n = len(with_d)
    mean_with = sum(with_d) / n
    mean_without = sum(without_d) / n
    verdict = Verdict(UNVERIFIED, n, round(mean_with, 2), round(mean_without, 2))
    if with_pass:
        verdict.pass_with = sum(with_pass) / len(with_pass)
        verdict.pass_without = sum(without_pass) / len(without_pass)
    closer = mean_with < mean_without * (1.0 - margin)
    checks_ok = verdict.pass_with is None or verdict.pass_with >= (verdict.pass_without or 0.0)
    if closer and checks_ok:
        verdict.status = VERIFIED
        verdict.reason = (
            f"brought outputs closer to your edits on {n} earlier input(s): "
            f"{mean_with:.1f} words to change instead of {mean_without:.1f}"
        )
    elif not closer:
        verdict.reason = (
            f"did not help on {n} earlier input(s): {mean_with:.1f} words to change "
            f"with it, {mean_without:.1f} without"
        )
    else:
        verdict.reason = "outputs came closer but satisfied its check less often"
    return verdict
