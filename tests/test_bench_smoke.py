"""Smoke run of the benchmark scripts so they do not rot (no timing is asserted)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/ is not installed

from bench import bench_scaling, bench_serving  # noqa: E402
from bench.loadgen import LoadResult  # noqa: E402


@pytest.mark.timeout(300)
def test_serving_bench_quick_writes_json(tmp_path: Path) -> None:
    """A tiny model, one-second runs, no mlflow server: the JSON has every section."""
    bench_serving.main(
        [
            "--quick",
            "--no-mlflow",
            "--seconds",
            "1",
            "--workdir",
            str(tmp_path / "work"),
            "--out-dir",
            str(tmp_path / "out"),
        ]
    )
    data = json.loads((tmp_path / "out" / "serving_quick.json").read_text())
    for key in (
        "machine",
        "load",
        "ratios",
        "batch",
        "reload",
        "cold_start",
        "checks",
        "targets",
    ):
        assert key in data, key
    assert {"ours_c64", "ours_c1", "noop_c64", "noop_c1"} <= set(data["load"])
    fields = set(LoadResult.__dataclass_fields__)
    for run in data["load"].values():
        assert fields <= set(run)
        assert run["requests"] > 0
        assert run["non_2xx"] == 0
    assert data["ratios"]["ours_over_mlflow_c64"] is None
    assert data["ratios"]["ours_over_noop_c64"] > 0
    assert data["reload"]["reload"]["status"] == 200
    assert data["reload"]["during"]["non_2xx"] == 0
    assert data["batch"]["floor"]["fast_path_used"] is True
    assert data["cold_start"]["median"] > 0
    assert data["machine"]["nproc"] >= 1


def test_scaling_plot_and_json_shape(tmp_path: Path) -> None:
    """The plot renders from the JSON shape that ``bench_scaling.run`` writes."""
    result = {
        "training": [
            {"rows": 1000, "seconds": 1.0, "peak_rss_mb": 300.0},
            {"rows": 10000, "seconds": 5.0, "peak_rss_mb": 500.0},
        ],
        "drift": [{"rows": 10000, "seconds": 2.0, "peak_rss_mb": 400.0}],
    }
    png = tmp_path / "scaling.png"
    bench_scaling.plot(result, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
