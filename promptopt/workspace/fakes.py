"""A deterministic stand-in model for tests, benchmarks and demos of the app without any LLM.

Its replies depend on the request (not on call order), so two prompts give visibly different
outputs on the same input and a request always gets the same reply. It is registered through
the same factory as real backends (``create_client(fake=...)``) and every call is logged.
"""

from __future__ import annotations

import hashlib
import re

from promptopt.llm import FakeLLM
from promptopt.llm.base import LLMRequest

STYLES = [
    "In short:",
    "Key points:",
    "Summary:",
    "Briefly,",
    "Main idea:",
    "Here is the gist:",
]
TEMPLATES = [
    "Summarize the text below in three short bullet points.\n\n{input}",
    "Explain the following to a ten-year-old in two sentences:\n{input}",
    "Write a one-line headline, then a short paragraph, for this text:\n{input}",
    "List the key facts (who, what, when, where) from this text:\n{input}",
    "Rewrite the text below formally and concisely.\n\n{input}",
    "Give a neutral, factual summary of at most 50 words:\n{input}",
]
PREFERENCES = [
    "short sentences, plain words",
    "bullet points, no filler",
    "friendly tone, one paragraph",
    "formal register, complete sentences",
]


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha1(text.encode("utf-8")).digest()[:4], "little")


def reply(request: LLMRequest) -> str:
    """Answer by what the request asks for: a preference phrase, prompt proposals, or an output."""
    messages = request.messages
    last = messages[-1]["content"] if messages else ""
    everything = "\n".join(m["content"] for m in messages)
    lowered = everything.lower()
    h = _digest(everything)
    if "prompt template" in lowered and "{input}" in everything:
        # A proposal request: one new template, different for each seed the engine sends.
        seeded = _digest(f"{everything}:{request.params.seed}")
        return TEMPLATES[seeded % len(TEMPLATES)]
    if "preference" in lowered and ("revised" in lowered or "edit" in lowered):
        return PREFERENCES[h % len(PREFERENCES)]
    if "condense" in lowered or "summarize these preferences" in lowered:
        return PREFERENCES[h % len(PREFERENCES)]
    words = re.findall(r"\S+", last)
    length = 12 + h % 18
    # Words from the later part of the message: the input, not the instruction before it.
    lo = len(words) // 3
    start = lo + h % max(1, len(words) - length - lo) if len(words) > length + lo else 0
    return f"{STYLES[h % len(STYLES)]} " + " ".join(words[start : start + length])


def demo_fake_llm(delay_s: float = 0.0) -> FakeLLM:
    return FakeLLM(default=reply, delay_s=delay_s)
