"""`promptopt bench edit`: the simulated-user harness, its CLI contract and the overhead probe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from promptopt.cli import main
from promptopt.edit.bench import DEFAULT_DOCS, BenchConfig, load_docs, run_benchmark, schedule
from promptopt.edit.overhead import measure_overhead
from promptopt.edit.simulate import FakeAgent, RuleUser, load_user
from promptopt.embeddings import FakeEmbedder
from promptopt.llm import FakeLLM, create_client

ASSET_DOCS = [p for p in DEFAULT_DOCS if "assets" in str(p)]


def _docs(tmp_path: Path) -> list[Path]:
    """Two kinds of small documents written for the test (no shared data needed)."""
    kinds = {
        "news": "The council met on day {i}. It voted on roads! "
        "The mayor spoke about the city budget. Residents protested.",
        "memo": "We bake bread at {i} o'clock. We knead the dough. "
        "We let it rise and then we bake it in the oven.",
    }
    paths = []
    for kind, text in kinds.items():
        path = tmp_path / f"{kind}.jsonl"
        rows = (json.dumps({"id": i, "text": text.format(i=i)}) for i in range(8))
        path.write_text("\n".join(rows), encoding="utf-8")
        paths.append(path)
    return paths


def _user(tmp_path: Path) -> Path:
    path = tmp_path / "user.json"
    path.write_text(
        json.dumps(
            {
                "kinds": {
                    "news": {
                        "preference": "bullet points, no exclamation marks",
                        "rules": [{"rule": "bullets"}, {"rule": "no_exclamation"}],
                    },
                    "memo": {
                        "preference": "address the reader as you, numbered steps",
                        "rules": [{"rule": "second_person"}, {"rule": "numbered"}],
                    },
                }
            }
        ),
        encoding="utf-8",
    )
    return path


def test_schedule_is_seeded_and_mixes_kinds(tmp_path: Path) -> None:
    docs = load_docs(_docs(tmp_path))
    import random

    a = schedule(docs, 20, random.Random(1))
    b = schedule(docs, 20, random.Random(1))
    assert [d.text for d in a] == [d.text for d in b]
    assert {d.kind for d in a} == {"news", "memo"}


def test_cipher_learns_from_rule_user_with_fake_agent(tmp_path: Path, store: object) -> None:
    prefs = load_user(_user(tmp_path))
    docs = load_docs(_docs(tmp_path))
    client = create_client(store, fake=FakeLLM(default=FakeAgent(prefs)))  # type: ignore[arg-type]
    cfg = BenchConfig(
        agent="fake",
        rounds=16,
        seed=3,
        threshold=0.3,
        methods=("no-learning", "oracle", "icl-edit", "cipher-1", "cipher-3"),
    )
    result = run_benchmark(
        store,  # type: ignore[arg-type]
        client,
        FakeEmbedder(),
        docs,
        RuleUser(prefs),
        prefs,
        cfg,  # type: ignore[arg-type]
    )
    methods = result["methods"]
    base = methods["no-learning"]["cumulative_edit_distance"]
    assert methods["oracle"]["cumulative_edit_distance"] == 0 and base > 0
    assert result["oracle_gain"] == base
    for name in ("cipher-1", "cipher-3", "icl-edit"):
        data = methods[name]
        assert len(data["edit_distance_per_round"]) == 16
        # Learning: later rounds cost nothing once each kind's preference is known.
        assert data["cumulative_edit_distance"] < base / 2
        assert data["edit_distance_per_round"][-4:] == [0, 0, 0, 0]
        assert data["oracle_gain_recovered"] > 0.5
    assert methods["cipher-3"]["preference_accuracy"] > 0.6
    assert methods["no-learning"]["preference_accuracy"] is None
    assert methods["icl-edit"]["tokens"] > methods["no-learning"]["tokens"]
    for data in methods.values():  # the per-kind totals add up to the total
        per_kind = data["cumulative_edit_distance_per_kind"]
        assert set(per_kind) <= set(result["kinds"])
        assert sum(per_kind.values()) == data["cumulative_edit_distance"]


def test_cli_contract_writes_json_and_plot(tmp_path: Path) -> None:
    out = tmp_path / "res" / "edit.json"
    docs = _docs(tmp_path)
    code = main(
        [
            "bench",
            "edit",
            "--docs",
            str(docs[0]),
            "--docs",
            str(docs[1]),
            "--user",
            "rule",
            "--user-config",
            str(_user(tmp_path)),
            "--agent",
            "fake",
            "--embedder",
            "fake",
            "--rounds",
            "6",
            "--seed",
            "2",
            "--methods",
            "no-learning,oracle,cipher-1",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    result = json.loads(out.read_text())
    assert set(result) >= {"agent", "user", "seed", "methods"}
    assert result["agent"] == "fake" and result["user"] == "rule" and result["seed"] == 2
    for data in result["methods"].values():
        assert set(data) >= {"edit_distance_per_round", "tokens", "preference_accuracy"}
    assert out.with_suffix(".png").stat().st_size > 1000


def test_default_user_covers_shipped_documents() -> None:
    docs = load_docs(ASSET_DOCS)
    assert {d.kind for d in docs} == {"product-reviews", "how-to-guides"}
    prefs = load_user()
    assert {"cnndm-235", "product-reviews", "how-to-guides"} <= set(prefs)


def test_overhead_probe_reports_percentiles() -> None:
    rows = measure_overhead(FakeEmbedder(), ["a text about roads", "bake bread"], [20], 5)
    (row,) = rows
    assert row["memory_items"] == 20 and row["queries"] == 5
    assert 0 < row["round_p50_ms"] <= row["round_p95_ms"]


@pytest.mark.slow
def test_short_real_run_with_offline_model(tmp_path: Path) -> None:
    out = tmp_path / "real.json"
    docs = _docs(tmp_path)
    code = main(
        [
            "bench",
            "edit",
            "--docs",
            str(docs[0]),
            "--docs",
            str(docs[1]),
            "--user-config",
            str(_user(tmp_path)),
            "--agent",
            "local/smollm2",
            "--rounds",
            "2",
            "--max-tokens",
            "24",
            "--methods",
            "no-learning,cipher-1",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    result = json.loads(out.read_text())
    cipher = result["methods"]["cipher-1"]
    assert len(cipher["edit_distance_per_round"]) == 2
    assert cipher["tokens"] > 0
