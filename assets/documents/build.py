"""Rebuild the two synthetic document sets of the Edit benchmark (seeded, deterministic).

    python assets/documents/build.py

Writes product-reviews.jsonl and how-to-guides.jsonl next to this file. Every sentence comes from
the templates below, written for this project (see README.md here for the license).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent

PRODUCTS = [
    ("wireless headphones", ["battery life", "noise cancelling", "ear cushions", "app"]),
    ("blender", ["motor", "jug", "noise", "cleaning"]),
    ("hiking backpack", ["hip belt", "zippers", "rain cover", "pockets"]),
    ("pair of running shoes", ["cushioning", "grip", "fit", "laces"]),
    ("desk lamp", ["brightness", "colour temperature", "arm", "switch"]),
    ("coffee grinder", ["burrs", "grind settings", "hopper", "static"]),
    ("e-reader", ["screen", "battery life", "page buttons", "store"]),
    ("two-person tent", ["poles", "rain fly", "floor", "setup"]),
    ("robot vacuum", ["suction", "mapping", "bin", "app"]),
    ("mechanical keyboard", ["switches", "keycaps", "cable", "software"]),
    ("electric kettle", ["heating speed", "lid", "temperature presets", "handle"]),
    ("office chair", ["lumbar support", "armrests", "casters", "fabric"]),
]
PRAISE = [
    "The {a} {is} excellent!",
    "I love the {a}, it works better than I expected!",
    "The {a} {feels} solid and well made.",
    "Honestly the {a} surprised me in a good way!",
    "The {a} {is} the best part of it.",
]
COMPLAINTS = [
    "My only complaint is the {a}, which {feels} cheap.",
    "The {a} stopped working properly after two weeks!",
    "I wish the {a} were better, {it} a real letdown.",
    "The {a} {is} fiddly and annoying to use!",
]
OPENERS = [
    "I bought this {p} for my daily routine and have used it for {n} weeks.",
    "We ordered the {p} after reading a lot of reviews, and I have had it for {n} weeks.",
    "My partner gave me this {p} as a gift {n} weeks ago.",
    "I replaced my old {p} with this one about {n} weeks ago.",
]
CLOSERS = [
    "For the price I would buy it again!",
    "I would recommend it to friends, with some reservations.",
    "Overall I am returning it and looking for something else.",
    "It does the job, but I expected more for the money.",
    "Five stars from me, no question!",
]

TASKS = [
    ("repot a houseplant", ["choose a pot one size larger", "water the plant the day before",
     "loosen the root ball gently", "add fresh potting mix", "press the soil down lightly",
     "water thoroughly and let it drain"]),
    ("fix a flat bicycle tyre", ["remove the wheel from the frame", "lever the tyre off the rim",
     "find the hole by pumping up the tube", "patch the hole or fit a new tube",
     "check the tyre for glass or thorns", "refit the tyre and pump it to pressure"]),
    ("brew pour-over coffee", ["heat water to just below boiling", "rinse the paper filter",
     "grind the beans medium-fine", "pour a little water to let the coffee bloom",
     "pour the rest slowly in circles", "wait for the bed to drain"]),
    ("bake a simple loaf of bread", ["mix flour, water, salt and yeast",
     "knead the dough for ten minutes", "let it rise until doubled", "shape it into a loaf",
     "let it rise a second time", "bake it in a hot oven for about forty minutes"]),
    ("season a cast iron pan", ["wash the pan and dry it completely",
     "rub a thin layer of oil over every surface", "wipe off as much oil as possible",
     "bake the pan upside down for an hour", "let it cool in the oven",
     "repeat the process two or three times"]),
    ("set up a home wifi router", ["place the router in a central spot",
     "connect it to the modem with a cable", "open the admin page in a browser",
     "change the default admin password", "choose a network name and a strong passphrase",
     "update the firmware"]),
    ("paint a small room", ["move the furniture away from the walls",
     "cover the floor with drop cloths", "tape the trim and sockets", "apply a coat of primer",
     "roll on two thin coats of paint", "remove the tape before the paint fully dries"]),
    ("make a weekly budget", ["list every source of income", "write down fixed costs",
     "track spending for a week", "group expenses into categories",
     "set a limit for each category", "review the numbers every Sunday"]),
    ("clean a laptop keyboard", ["shut the laptop down and unplug it",
     "turn it upside down and tap out crumbs", "blow compressed air between the keys",
     "wipe the keys with a slightly damp cloth", "use a cotton swab for the edges",
     "let it dry before switching it on"]),
    ("plant tomato seedlings", ["wait until the nights are warm",
     "dig holes deeper than the pots", "bury the stems up to the first leaves",
     "add a stake next to each plant", "water at the base, not the leaves",
     "mulch around the plants"]),
]
STEP_VERBS = ["First we", "Then we", "Next we", "After that we", "Now we", "Finally we"]
INTROS = [
    "In this guide we explain how to {t}.",
    "Here is how we {t} at home, step by step.",
    "Many people ask us how to {t}, so we wrote down our method.",
]
TIPS = [
    "Our tip: take your time and do not rush the last step.",
    "We found that good tools make this much easier.",
    "If something goes wrong, we simply start again from the beginning.",
]


def _agree(noun: str) -> dict[str, str]:
    plural = noun.endswith("s") and not noun.endswith("ss")
    if plural:
        return {"is": "are", "feels": "feel", "it": "they are"}
    return {"is": "is", "feels": "feels", "it": "it is"}


def review(rng: random.Random) -> str:
    product, aspects = rng.choice(PRODUCTS)
    good, bad = rng.sample(aspects, 2)
    parts = [
        rng.choice(OPENERS).format(p=product, n=rng.randint(2, 12)),
        rng.choice(PRAISE).format(a=good, **_agree(good)),
        rng.choice(COMPLAINTS).format(a=bad, **_agree(bad)),
        rng.choice(CLOSERS),
    ]
    if rng.random() < 0.5:
        third = rng.choice([a for a in aspects if a not in (good, bad)])
        parts.insert(2, f"The {third} {_agree(third)['is']} fine, nothing special.")
    return " ".join(parts)


def guide(rng: random.Random) -> str:
    task, steps = rng.choice(TASKS)
    n = rng.randint(4, len(steps))
    chosen = steps[:n]
    sentences = [rng.choice(INTROS).format(t=task)]
    for i, step in enumerate(chosen):
        verb = STEP_VERBS[0] if i == 0 else STEP_VERBS[-1] if i == n - 1 else STEP_VERBS[i]
        sentences.append(f"{verb} {step}.")
    if rng.random() < 0.7:
        sentences.append(rng.choice(TIPS))
    return " ".join(sentences)


def write(name: str, make: object, count: int, seed: int) -> None:
    rng = random.Random(seed)
    seen: set[str] = set()
    rows: list[dict[str, str]] = []
    while len(rows) < count:
        text = make(rng)  # type: ignore[operator]
        if text not in seen:
            seen.add(text)
            rows.append({"id": str(len(rows)), "text": text})
    with (HERE / name).open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    write("product-reviews.jsonl", review, 120, seed=1)
    write("how-to-guides.jsonl", guide, 120, seed=2)
