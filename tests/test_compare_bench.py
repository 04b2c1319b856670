"""The ``promptopt bench compare`` contract on a tiny pool (fake embedder, so no model loads)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from promptopt.cli import main

TINY = Path(__file__).parent / "data" / "compare" / "tiny-pool.json"


def _run(tmp_path: Path, *extra: str, method: str = "default", rounds: int = 12) -> dict:
    out = tmp_path / f"{method}.json"
    argv = ["bench", "compare", "--rounds", str(rounds), "--seed", "3", "--user-scale", "10"]
    argv += ["--method", method, "--out", str(out), "--embedder", "fake", *extra]
    assert main(argv) == 0
    return json.loads(out.read_text())


@pytest.mark.parametrize("method", ["random", "default", "apohf"])
def test_bench_contract(tmp_path: Path, method: str) -> None:
    rounds = 4 if method == "apohf" else 12  # apohf trains 1,000 steps a round, faithfully
    result = _run(tmp_path, "--pool", str(TINY), "--model", "model-x", method=method, rounds=rounds)
    assert set(result) == {"pool", "model", "method", "seed", "user_scale", "best_per_round"}
    assert result["method"] == method and result["model"] == "model-x"
    assert result["seed"] == 3 and result["user_scale"] == 10.0
    ids = {p["id"] for p in json.loads(TINY.read_text())["prompts"]}
    assert len(result["best_per_round"]) == rounds and set(result["best_per_round"]) <= ids


def test_bench_is_deterministic_and_default_finds_the_best(tmp_path: Path) -> None:
    first = _run(tmp_path, "--pool", str(TINY), "--model", "model-y", rounds=40)
    again = _run(tmp_path, "--pool", str(TINY), "--model", "model-y", rounds=40)
    assert first == again
    assert first["best_per_round"][-1] == "1"  # model-y's most accurate prompt


def test_single_accuracy_pools_need_no_model(tmp_path: Path) -> None:
    data = json.loads(TINY.read_text())
    for p in data["prompts"]:
        p["accuracy"] = p.pop("accs")["model-x"]
    pool = tmp_path / "single.json"
    pool.write_text(json.dumps(data))
    result = _run(tmp_path, "--pool", str(pool))
    assert result["model"] is None and len(result["best_per_round"]) == 12


def test_per_model_pools_need_a_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "compare", "--pool", str(TINY), "--out", str(tmp_path / "x.json")]
    assert main([*argv, "--embedder", "fake"]) == 1
    assert "--model" in capsys.readouterr().err


def test_summary_table_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pools = tmp_path / "pools"
    pools.mkdir()
    (pools / "tiny.json").write_text(TINY.read_text())
    argv = ["bench", "compare", "--summary", "--pools", str(pools), "--models", "model-x,model-y"]
    argv += ["--seeds", "0", "--methods", "random,default,apohf", "--rounds", "4"]
    argv += ["--embedder", "fake", "--apohf-limit", "1", "--out", str(tmp_path / "s.json")]
    argv += ["--plot", str(tmp_path / "q.png")]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "| default | 10 | 2 |" in text and "apohf subset (1 instances)" in text
    assert (tmp_path / "q.png").stat().st_size > 1000
    saved = json.loads((tmp_path / "s.json").read_text())
    assert len(saved["runs"]) == 2 * (2 + 2 + 1)  # M in {10, 1} x (random, default, apohf)
