"""Scaling of training and drift with the number of tickets: time and peak memory.

Training: for each size, tickets are generated and stored in a temp project, then
:func:`ticket_urgency.training.train` (default model parameters, no hyperparameter search,
no baseline) runs in a fresh child process, so its peak RSS is the training's alone.
Drift: ``bench/bench_drift.py`` (owned by the drift work) runs with ``--new N --reference N/10``.

Writes ``bench/results/scaling.json`` and ``bench/results/scaling.png``.

Usage: ``python -m bench.bench_scaling [--full] [--quick]`` (``--full`` adds 1M tickets).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import RESULTS, ROOT, project_env, use_project, write_json


def _train_child(workdir: Path, params: dict[str, Any]) -> None:
    from ticket_urgency.training import train

    settings = use_project(workdir)
    t0 = time.perf_counter()
    result = train(settings, "reference", params=params, search_grid=None, compare_baseline=False)
    seconds = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        "RESULT "
        + json.dumps(
            {
                "seconds": round(seconds, 2),
                "peak_rss_mb": round(peak_mb, 1),
                "macro_f1": result.metrics.get("macro_f1"),
            }
        )
    )


def time_training(rows: int, params: dict[str, Any]) -> dict[str, Any]:
    """Generate ``rows`` tickets, store them, and time training in a fresh process."""
    from ticket_urgency.datasets import upload
    from ticket_urgency.generate import generate_dataset
    from ticket_urgency.storage import open_storage

    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        workdir = Path(tmp)
        settings = use_project(workdir)
        reference, _ = generate_dataset(rows, 0, seed=3)
        upload(open_storage(settings.storage, settings), reference, None)
        del reference
        proc = subprocess.run(
            [sys.executable, "-m", "bench.bench_scaling", "--train-child", str(workdir)]
            + ["--params", json.dumps(params)],
            env=project_env(workdir),
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"training {rows} rows failed:\n{proc.stderr[-3000:]}")
        line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
        return {"rows": rows, **json.loads(line.removeprefix("RESULT "))}


def time_drift(new_rows: int, out_dir: Path) -> dict[str, Any]:
    """Run ``bench/bench_drift.py`` on ``new_rows`` new vs ``new_rows // 10`` reference rows."""
    out = out_dir / f"drift_{new_rows}.json"
    ref_rows = max(new_rows // 10, 1000)
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as tmp:
        proc = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "bench_drift.py")]
            + ["--reference", str(ref_rows), "--new", str(new_rows), "--out", str(out)],
            env=project_env(Path(tmp)),
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"drift on {new_rows} rows failed:\n{proc.stderr[-3000:]}")
    data = json.loads(out.read_text())
    out.unlink()
    return {
        "rows": new_rows,
        "reference_rows": ref_rows,
        "seconds": data["seconds_total"],
        "peak_rss_mb": data["peak_rss_mb"],
        "drift_detected": data.get("drift_detected"),
    }


def plot(result: dict[str, Any], path: Path) -> None:
    """Seconds and peak memory against tickets, log-log, training and drift."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("training", "training"), ("drift", "drift (new rows)")):
        pts = result[key]
        if not pts:
            continue
        xs = [p["rows"] for p in pts]
        ax1.plot(xs, [p["seconds"] for p in pts], marker="o", label=label)
        ax2.plot(xs, [p["peak_rss_mb"] for p in pts], marker="o", label=label)
    for ax, title, unit in ((ax1, "time", "seconds"), (ax2, "peak memory", "MB (max RSS)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("tickets")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(*, full: bool, quick: bool, out_dir: Path | None = None) -> dict[str, Any]:
    """Time training and drift at each size; write JSON and the plot."""
    out_dir = out_dir or RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    if quick:
        train_sizes, drift_sizes = [1000, 2000], [5000]
        params: dict[str, Any] = {
            "char_max_features": 20000,
            "word_max_features": 10000,
            "calibration_cv": 2,
        }
    else:
        train_sizes = [10_000, 100_000] + ([1_000_000] if full else [])
        drift_sizes = [100_000] + ([1_000_000] if full else [])
        params = {}
    result: dict[str, Any] = {"full": full, "quick": quick, "params": params}
    name = "scaling_quick" if quick else "scaling"
    result["training"] = []
    for n in train_sizes:
        r = time_training(n, params)
        print(f"train {n:>9,} rows: {r['seconds']:8.1f} s  peak {r['peak_rss_mb']:8.0f} MB")
        result["training"].append(r)
        write_json(name, result, out_dir)  # partial results survive an interrupted run
    result["drift"] = []
    for n in drift_sizes:
        r = time_drift(n, out_dir)
        print(f"drift {n:>9,} rows: {r['seconds']:8.1f} s  peak {r['peak_rss_mb']:8.0f} MB")
        result["drift"].append(r)
        write_json(name, result, out_dir)
    png = out_dir / f"{name}.png"
    plot(result, png)
    result["plot"] = png.name
    path = write_json(name, result, out_dir)
    print(f"wrote {path} and {png}")
    return result


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--full", action="store_true", help="also 1,000,000 tickets")
    p.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    p.add_argument("--out-dir", type=Path)
    p.add_argument("--train-child", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--params", default="{}", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.train_child:
        _train_child(a.train_child, json.loads(a.params))
        return None
    return run(full=a.full, quick=a.quick, out_dir=a.out_dir)


if __name__ == "__main__":
    main()
