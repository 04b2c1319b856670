"""Measure the validator's on-task threshold: ``python -m promptopt.compare.validate_measure``.

On-task: every paraphrase the source marked ``correct`` in the shared prompt pools, scored against
its pool's first (default) prompt. Off-task: the default prompts of the other pools, and junk a
weak model wrote in a real session (reformatting talk, unrelated instructions). Prints the share
of each side that a range of thresholds keeps, so the constant in ``validate.py`` can be checked.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

from promptopt.embeddings import create_embedder

POOLS = Path("/work/shared/data/prompt-pools")
_SLOT = re.compile(r"\{[^{}]+\}")
JUNK = [
    "The current news article is reformatted to 8 words and its placeholder is removed.",
    "Write a poem about the sea and the sky at night.",
    "Translate the following sentence into French.",
    "You are a helpful assistant. Answer the user's questions politely.",
    "List three prime numbers greater than one hundred.",
    "Explain how photosynthesis works in plants.",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit.",
    "I am a language model and I cannot browse the internet.",
    "Sure! Here is the rewritten text with all the changes applied.",
    "Describe your favourite holiday destination in detail.",
]


def _plain(template: str) -> str:
    return _SLOT.sub(" ", template).strip()


def measure(pools: Path, embedder_name: str = "default") -> dict[str, object]:
    embedder = create_embedder(embedder_name)
    tasks = []
    for path in sorted(pools.glob("*.json")):
        prompts = json.loads(path.read_text(encoding="utf-8"))["prompts"]
        base = _plain(prompts[0]["template"])
        same = [_plain(p["template"]) for p in prompts[1:] if p.get("correct", True)]
        tasks.append((path.stem, base, same))
    on: list[float] = []
    off: list[float] = []
    junk: list[float] = []
    junk_vectors = embedder.encode(JUNK)
    for name, base, same in tasks:
        vectors = embedder.encode([base, *same])
        on.extend((vectors[1:] @ vectors[0]).tolist())
        others = [b for n, b, _ in tasks if n != name]
        other_vectors = embedder.encode(others)
        off.extend((other_vectors @ vectors[0]).tolist())
        junk.extend((junk_vectors @ vectors[0]).tolist())
    on_a, off_a, junk_a = np.array(on), np.array(off), np.array(junk)
    rows = []
    for t in np.arange(0.2, 0.61, 0.05):
        rows.append(
            {
                "threshold": round(float(t), 2),
                "on_task_kept": round(float((on_a >= t).mean()), 3),
                "other_task_refused": round(float((off_a < t).mean()), 3),
                "junk_refused": round(float((junk_a < t).mean()), 3),
            }
        )
    return {"on_task": len(on), "other_task": len(off), "junk": len(junk), "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pools", type=Path, default=POOLS)
    parser.add_argument("--embedder", default="default")
    args = parser.parse_args()
    result = measure(args.pools, args.embedder)
    print(
        f"pairs: on-task {result['on_task']}, other task {result['other_task']}, "
        f"junk {result['junk']}"
    )
    print(f"{'threshold':>9} {'on-task kept':>12} {'other task refused':>18} {'junk refused':>12}")
    for row in result["rows"]:  # type: ignore[attr-defined]
        print(
            f"{row['threshold']:>9} {row['on_task_kept']:>12} {row['other_task_refused']:>18} "
            f"{row['junk_refused']:>12}"
        )


if __name__ == "__main__":
    main()
