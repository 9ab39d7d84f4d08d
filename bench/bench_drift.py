"""Benchmark drift monitoring at scale: 1,000,000 new vs 100,000 reference tickets.

Generates data with :mod:`ticket_urgency.generate` (drift ``all`` in the new batch), stores it
in a temp local storage, trains and promotes nothing (pass ``--with-model`` to register a
small model so the model-aware part runs too), then times :func:`ticket_urgency.drift.run_drift`
end to end (loading the CSVs included) and reports peak memory (max RSS of this process).
Writes ``bench/results/drift.json``.

Usage::

    .venv/bin/python bench/bench_drift.py [--reference 100000] [--new 1000000] [--with-model]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ticket_urgency.contract import to_csv_bytes
from ticket_urgency.datasets import NEW_KEY, REFERENCE_KEY, snapshot
from ticket_urgency.drift import run_drift
from ticket_urgency.generate import generate_dataset
from ticket_urgency.settings import Settings
from ticket_urgency.storage import LocalStorage


def _register_small_model(settings: Settings, storage: LocalStorage, reference: object) -> None:
    import mlflow
    import mlflow.sklearn
    import pandas as pd
    from mlflow import MlflowClient
    from sklearn.compose import make_column_transformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    assert isinstance(reference, pd.DataFrame)
    train = reference.iloc[: int(len(reference) * 0.8)].head(20_000)
    pipe = make_pipeline(
        make_column_transformer(
            (TfidfVectorizer(max_features=5000), "title"),
            (TfidfVectorizer(max_features=5000), "description"),
            (OneHotEncoder(handle_unknown="ignore"), ["source", "customer_tier"]),
        ),
        LogisticRegression(max_iter=300),
    )
    pipe.fit(train, train["label_urgency"])
    _, uri = snapshot(storage, reference)
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    with mlflow.start_run():
        mlflow.sklearn.log_model(
            pipe,
            name="model",
            registered_model_name=settings.model_name,
            serialization_format="cloudpickle",
            pip_requirements=["scikit-learn"],  # skip slow requirement inference
        )
    client = MlflowClient(settings.mlflow_tracking_uri)
    client.set_model_version_tag(settings.model_name, "1", "data_snapshot_uri", uri)
    client.transition_model_version_stage(settings.model_name, "1", "Production")


def _settings(tmp: Path) -> Settings:
    return Settings(storage=str(tmp / "store"), mlflow_tracking_uri=f"sqlite:///{tmp}/m.db")


def _run_only(tmp: Path) -> None:
    """Child process: run drift on the stored data and print timings as JSON."""
    import ticket_urgency.drift as drift_module

    drift_module._nannyml()  # import NannyML (about 4 s) before the clock starts
    t0 = time.perf_counter()

    def progress(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:6.1f}s] {msg}", file=sys.stderr, flush=True)

    report = run_drift(_settings(tmp), LocalStorage(tmp / "store"), progress=progress)
    total = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "seconds_total": round(total, 2),
                "timings": report.timings,
                "drift_detected": report.drift_detected,
                "alerted_features": report.alerted_features,
                "text_sample_rows": report.rows["new_text_sample"],
                "model_sample_rows": report.model.get("sample_rows"),
                "model_status": report.model.get("status"),
            }
        )
    )


def main() -> None:
    """Run the benchmark and write bench/results/drift.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reference", type=int, default=100_000)
    parser.add_argument("--new", type=int, default=1_000_000)
    parser.add_argument("--drift", default="all")
    parser.add_argument("--with-model", action="store_true")
    parser.add_argument("--run-only", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "drift.json"))
    args = parser.parse_args()
    if args.run_only:
        _run_only(Path(args.run_only))
        return

    tmp = Path(tempfile.mkdtemp(prefix="bench_drift_"))
    settings = _settings(tmp)
    storage = LocalStorage(tmp / "store")
    t = time.perf_counter()
    reference, new = generate_dataset(args.reference, args.new, drift=args.drift, seed=0)
    gen_s = time.perf_counter() - t
    storage.write_bytes(REFERENCE_KEY, to_csv_bytes(reference))
    storage.write_bytes(NEW_KEY, to_csv_bytes(new))
    if args.with_model:
        _register_small_model(settings, storage, reference)
    del new, reference
    # Drift runs in a fresh child process so that its peak memory excludes data generation.
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--run-only", str(tmp)],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    wall = time.perf_counter() - t0
    child = json.loads(proc.stdout)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    total = child["seconds_total"]
    with open("/proc/loadavg") as fh:
        load = fh.read().split()[:3]
    result = {
        "reference_rows": args.reference,
        "new_rows": args.new,
        "drift": args.drift,
        "with_model": args.with_model,
        "seconds_total": round(total, 2),
        "seconds_by_step": child["timings"],
        "seconds_child_process_wall": round(wall, 2),
        "seconds_generate_data": round(gen_s, 2),
        "peak_rss_mb": round(peak, 1),
        "drift_detected": child["drift_detected"],
        "alerted_features": child["alerted_features"],
        "text_sample_rows": child["text_sample_rows"],
        "model_sample_rows": child["model_sample_rows"],
        "model_status": child["model_status"],
        "cpus": len(__import__("os").sched_getaffinity(0)),
        "load_average_at_end": load,
        "python": platform.python_version(),
        "note": "seconds_total = run_drift in a fresh process, CSV loading included "
        "(python and library import excluded); peak_rss_mb = max RSS of that process",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
