"""The web app benchmark runs end to end (fake model, headless chromium) and reports every
figure the README quotes: the reader's time is applied in the browser too, the first pair of a
new project is timed, and calls that failed on the time limit are counted."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from promptopt.ui import bench

pytestmark = pytest.mark.browser


def test_bench_reads_before_each_vote_in_the_browser_and_times_the_first_pair(
    tmp_path: Path,
) -> None:
    out = tmp_path / "bench.json"
    started = time.perf_counter()
    assert bench.main(["--votes", "2", "--loads", "1", "--read-s", "1", "--json", str(out)]) == 0
    # Two votes, each read for 1 s, in the browser and through the client: at least 4 s.
    assert time.perf_counter() - started >= 4
    results = json.loads(out.read_text(encoding="utf-8"))
    assert results["read_s"] == 1.0 and results["calls_failed_on_time_limit"] == 0
    for key in ("browser_vote_to_next_pair", "client_vote_to_next_pair"):
        assert results[key]["n"] == 2 and results[key]["median_ms"] > 0
    for key in ("browser_first_pair_from_compare", "browser_first_pair_from_sample"):
        assert results[key]["n"] == 1 and 0 < results[key]["median_ms"] < 60_000
    assert (
        results["browser_first_pair_from_sample"]["median_ms"]
        >= results["browser_first_pair_from_compare"]["median_ms"]
    )


def test_bench_first_pair_alone(tmp_path: Path) -> None:
    out = tmp_path / "first.json"
    assert bench.main(["--first-pair", "--repeat", "1", "--json", str(out)]) == 0
    results = json.loads(out.read_text(encoding="utf-8"))
    assert results["first_pair_from_compare"]["n"] == 1
    assert 0 < results["first_pair_from_compare"]["median_ms"] < 60_000
