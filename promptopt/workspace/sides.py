"""The two sides of the Compare screen and the engine's two prompts, mapped in one place.

Sides are randomised per duel (``duel.left`` says which prompt, "a" or "b", is on the left);
verdicts and outputs name prompts, so every crossing between the two goes through here.
"""

from __future__ import annotations

from typing import TypeVar

from promptopt.compare.service import Duel
from promptopt.storage import ValidationError
from promptopt.storage.models import Prompt

T = TypeVar("T")

# What the screen's two sides are called, and how a press maps to the engine's verdict about
# duel.prompt_a / duel.prompt_b (sides are randomised, verdicts name prompts).
SCREEN_VERDICTS = ("left", "right", "tie", "both_bad", "skip")


def engine_verdict(screen: str, left: str) -> str:
    """Map what the user pressed ("left"/"right"/...) to the engine's verdict ("a"/"b"/...)."""
    if screen not in SCREEN_VERDICTS:
        raise ValidationError(f"Unknown vote {screen!r}; use one of {', '.join(SCREEN_VERDICTS)}.")
    right = "b" if left == "a" else "a"
    return {"left": left, "right": right}.get(screen, screen)


def screen_prompts(duel: Duel) -> tuple[Prompt, Prompt]:
    """(the prompt on the left, the prompt on the right)."""
    return to_prompts(duel, duel.prompt_a, duel.prompt_b)  # the swap is its own inverse


def to_prompts(duel: Duel, left: T, right: T) -> tuple[T, T]:
    """What was on the (left, right) of the screen, as (for prompt a, for prompt b)."""
    return (left, right) if duel.left == "a" else (right, left)
