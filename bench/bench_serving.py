"""Serving benchmark: our API against ``mlflow models serve`` and a no-op FastAPI app.

One run, side by side, with one worker each and the same registered model:

1. set up a throw-away project (storage + MLflow SQLite in a temp dir), generate tickets,
   train and promote a model (or reuse ``--workdir`` when it already has a Production model);
2. start ``mlflow models serve -m models:/<name>/Production --env-manager local -w 1``,
   ``ticket-urgency serve --workers 1`` and ``uvicorn bench.noop_app:app`` (a no-op endpoint
   with the same request model as ``/predict``);
3. drive ``/invocations`` (mlflow), ``/predict`` (ours) and the no-op ``/predict`` with the
   same ticket, at 64 connections and at 1 connection (wrk, else an asyncio client);
4. ``/predict/batch`` with 1,000 tickets against the in-process floor of the same model;
5. a reload under load (a new Production version, ``POST /reload-model`` mid-run);
6. cold start: process start to ``/ready`` 200.

Writes ``bench/results/serving.json`` and prints the figures and ratios.

Usage: ``python -m bench.bench_serving [--seconds 8] [--rows 20000] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import (
    BIN,
    free_port,
    http,
    project_env,
    start,
    stop,
    use_project,
    wait_http,
    write_json,
)
from bench.loadgen import LoadResult, run_load

TICKET = {
    "title": "Cannot log in after password reset",
    "description": (
        "Since this morning none of our agents can sign in; the login page returns an error "
        "after the password reset email. We have a customer demo in two hours."
    ),
    "source": "email",
    "customer_tier": "Gold",
}
ADMIN_TOKEN = "bench-admin-token"
TARGETS = {
    "ours_over_mlflow_min": 20.0,
    "ours_over_noop_min": 0.45,
    "p99_ms_at_64_max": 50.0,
    "p50_ms_at_1_max": 1.0,
    "batch_over_floor_max": 1.3,
    "reload_p99_over_steady_max": 2.0,
    "cold_start_s_max": 5.0,
}

QUICK_PARAMS = {"char_max_features": 20000, "word_max_features": 10000, "calibration_cv": 2}


def setup_project(workdir: Path, rows: int, *, search: bool, quick: bool) -> dict[str, Any]:
    """Generate, upload, train and promote a model in ``workdir`` (reused when present)."""
    from ticket_urgency.datasets import upload
    from ticket_urgency.generate import generate_dataset
    from ticket_urgency.registry import production_version, promote
    from ticket_urgency.storage import open_storage
    from ticket_urgency.training import SEARCH_GRID, train

    settings = use_project(workdir)
    existing = production_version(settings)
    if existing is not None:
        return {"reused": True, "version": str(existing.version), "train_seconds": None}
    reference, _ = generate_dataset(rows, 0, seed=7)
    upload(open_storage(settings.storage, settings), reference, None)
    started = time.perf_counter()
    result = train(
        settings,
        "reference",
        params=QUICK_PARAMS if quick else None,
        search_grid=SEARCH_GRID if search else None,
        compare_baseline=False,
    )
    train_seconds = time.perf_counter() - started
    promote(settings, version=result.version, force=True)
    return {
        "reused": False,
        "rows": rows,
        "version": result.version,
        "train_seconds": round(train_seconds, 2),
        "search": search,
        "params": result.params,
        "macro_f1": result.metrics.get("macro_f1"),
    }


def new_production_version(workdir: Path) -> str:
    """Register the Production model's artifact again as a new version and promote it."""
    from ticket_urgency.predictor import make_client
    from ticket_urgency.registry import production_version, promote

    settings = use_project(workdir)
    current = production_version(settings)
    assert current is not None and current.source is not None
    mv = make_client(settings).create_model_version(
        settings.model_name, source=current.source, run_id=current.run_id
    )
    promote(settings, version=mv.version, force=True)
    return str(mv.version)


def batch_tickets(n: int) -> list[dict[str, str]]:
    """``n`` realistic generated tickets (the four request fields)."""
    from ticket_urgency.generate import generate_dataset

    df, _ = generate_dataset(n, 0, seed=11)
    cols = ["title", "description", "source", "customer_tier"]
    return [{c: str(r[c]) for c in cols} for r in df[cols].to_dict("records")]


def in_process_floor(workdir: Path, tickets: list[dict[str, str]], repeats: int) -> dict[str, Any]:
    """Median seconds of one in-process ``predict_proba`` of the batch, pipeline and fast path."""
    from ticket_urgency.predictor import load_served_model, rows_to_columns

    model = load_served_model(use_project(workdir))
    columns = rows_to_columns(tickets)

    def timed(fn: Any) -> float:
        fn(columns)  # warm
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn(columns)
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    return {
        "rows": len(tickets),
        "pipeline_ms": round(timed(model.pipeline_proba) * 1000, 3),
        "fast_path_ms": round(timed(model.predict_proba) * 1000, 3),
        "fast_path_used": model.fast is not None,
    }


def _load_during_reload(
    url: str, body: bytes, seconds: float, reload_url: str, tool: str
) -> tuple[LoadResult, dict[str, Any]]:
    info: dict[str, Any] = {}

    def fire() -> None:
        time.sleep(seconds / 4)
        t0 = time.perf_counter()
        status, reply = http(
            reload_url, b"", {"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=120.0
        )
        info["seconds"] = round(time.perf_counter() - t0, 3)
        info["status"] = status
        info["reply"] = json.loads(reply or b"null")

    thread = threading.Thread(target=fire)
    thread.start()
    result = run_load(url, body, 64, seconds, tool)
    thread.join()
    return result, info


def cold_start(workdir: Path, repeats: int) -> list[float]:
    """Seconds from ``ticket-urgency serve`` process start to ``/ready`` 200, per start."""
    out = []
    for _ in range(repeats):
        port = free_port()
        t0 = time.perf_counter()
        proc = start(
            [str(BIN / "ticket-urgency"), "serve", "--workers", "1", "--port", str(port)],
            project_env(workdir),
            workdir / "cold.log",
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/ready", 300, proc)
            out.append(round(time.perf_counter() - t0, 3))
        finally:
            stop(proc)
    return out


def ratio(a: float, b: float) -> float | None:
    """``a / b`` rounded, None when ``b`` is zero."""
    return round(a / b, 3) if b else None


def run(
    workdir: Path,
    *,
    rows: int,
    seconds: float,
    quick: bool,
    search: bool,
    tool: str,
    with_mlflow: bool,
    out_dir: Path | None,
) -> dict[str, Any]:
    """Run the whole serving benchmark and write ``serving.json``; return the results."""
    setup = setup_project(workdir, rows, search=search, quick=quick)
    env = project_env(workdir, TICKET_URGENCY_ADMIN_TOKEN=ADMIN_TOKEN)
    ports = {"mlflow": free_port(), "ours": free_port(), "noop": free_port()}
    procs = {}
    startup: dict[str, float] = {}
    try:
        t0 = time.perf_counter()
        procs["ours"] = start(
            [str(BIN / "ticket-urgency"), "serve", "--workers", "1"]
            + ["--port", str(ports["ours"]), "--log-level", "warning"],
            env,
            workdir / "ours.log",
        )
        startup["ours"] = round(
            _started(f"http://127.0.0.1:{ports['ours']}/ready", procs["ours"], t0), 3
        )
        t0 = time.perf_counter()
        procs["noop"] = start(
            [str(BIN / "python"), "-m", "uvicorn", "bench.noop_app:app"]
            + ["--port", str(ports["noop"]), "--log-level", "warning", "--no-access-log"],
            env,
            workdir / "noop.log",
        )
        startup["noop"] = round(
            _started(f"http://127.0.0.1:{ports['noop']}/ready", procs["noop"], t0), 3
        )
        if with_mlflow:
            t0 = time.perf_counter()
            procs["mlflow"] = start(
                [str(BIN / "mlflow"), "models", "serve", "-m", "models:/ticket_urgency/Production"]
                + ["--env-manager", "local", "-w", "1", "-p", str(ports["mlflow"])],
                env,
                workdir / "mlflow.log",
            )
            startup["mlflow"] = round(
                _started(f"http://127.0.0.1:{ports['mlflow']}/ping", procs["mlflow"], t0), 3
            )

        one = json.dumps(TICKET).encode()
        urls = {
            "mlflow": (
                f"http://127.0.0.1:{ports['mlflow']}/invocations",
                json.dumps({"dataframe_records": [TICKET]}).encode(),
            ),
            "ours": (f"http://127.0.0.1:{ports['ours']}/predict", one),
            "noop": (f"http://127.0.0.1:{ports['noop']}/predict", one),
        }
        for name, (url, body) in urls.items():
            if name in procs:
                status, reply = http(url, body)
                if status != 200:
                    raise RuntimeError(f"{name} answered {status}: {reply[:300]!r}")
                run_load(url, body, 8, min(1.0, seconds), tool)  # warm-up
        load: dict[str, dict[str, Any]] = {}
        for conns in (64, 1):
            for name, (url, body) in urls.items():
                if name in procs:
                    r = run_load(url, body, conns, seconds, tool)
                    load[f"{name}_c{conns}"] = r.to_dict()
                    print(
                        f"{name:>6} c={conns:<3} {r.rps:>9.1f} req/s  p50 {r.p50_ms:7.2f} ms  "
                        f"p99 {r.p99_ms:7.2f} ms  non-2xx {r.non_2xx}  errors {r.socket_errors}",
                        flush=True,
                    )
        # a different ticket per request (the runs above repeat one ticket, as the issue's
        # check does): per-word caches and branch predictors get no free ride
        n_batch = 100 if quick else 1000
        tickets = batch_tickets(n_batch)
        varied = [json.dumps(t).encode() for t in tickets]
        for name in ("ours", "noop"):
            url = urls[name][0]
            r = run_load(url, varied, 64, seconds, tool)
            load[f"{name}_varied_c64"] = r.to_dict()
            print(
                f"{name:>6} c=64  {r.rps:>9.1f} req/s  p50 {r.p50_ms:7.2f} ms  "
                f"p99 {r.p99_ms:7.2f} ms  non-2xx {r.non_2xx}  errors {r.socket_errors}"
                f"  ({len(varied)} different tickets in turn)",
                flush=True,
            )
        # /predict/batch with 1,000 tickets vs the in-process floor
        batch_body = json.dumps({"tickets": tickets}).encode()
        batch_url = f"http://127.0.0.1:{ports['ours']}/predict/batch"
        status, reply = http(batch_url, batch_body)
        if status != 200 or len(json.loads(reply)["predictions"]) != n_batch:
            raise RuntimeError(f"/predict/batch answered {status}: {reply[:300]!r}")
        batch_http = run_load(batch_url, batch_body, 1, seconds, tool)
        floor = in_process_floor(workdir, tickets, 5 if quick else 20)
        batch = {
            "http": batch_http.to_dict(),
            "floor": floor,
            "http_p50_over_pipeline_floor": ratio(batch_http.p50_ms, floor["pipeline_ms"]),
            "http_p50_over_fast_path_floor": ratio(batch_http.p50_ms, floor["fast_path_ms"]),
        }
        print(
            f" batch {n_batch} tickets: HTTP p50 {batch_http.p50_ms:.1f} ms; in-process "
            f"pipeline {floor['pipeline_ms']:.1f} ms, fast path {floor['fast_path_ms']:.1f} ms",
            flush=True,
        )
        # reload under load
        for name in ("mlflow", "noop"):
            if name in procs:
                stop(procs.pop(name))
        url, body = urls["ours"]
        steady = run_load(url, body, 64, seconds, tool)
        new_version = new_production_version(workdir)
        during, info = _load_during_reload(
            url, body, seconds, f"http://127.0.0.1:{ports['ours']}/reload-model", tool
        )
        reload = {
            "steady": steady.to_dict(),
            "during": during.to_dict(),
            "reload": info,
            "new_version": new_version,
            "p99_during_over_steady": ratio(during.p99_ms, steady.p99_ms),
        }
        print(
            f"reload: {info.get('status')} in {info.get('seconds')} s; p99 steady "
            f"{steady.p99_ms:.1f} ms, during {during.p99_ms:.1f} ms; non-2xx {during.non_2xx}",
            flush=True,
        )
    finally:
        for proc in procs.values():
            stop(proc)
    starts = [startup["ours"], *cold_start(workdir, 0 if quick else 2)]
    ours64, ours1 = load["ours_c64"], load["ours_c1"]
    ratios = {
        "ours_over_mlflow_c64": ratio(ours64["rps"], load["mlflow_c64"]["rps"])
        if "mlflow_c64" in load
        else None,
        "ours_over_noop_c64": ratio(ours64["rps"], load["noop_c64"]["rps"]),
        "ours_over_mlflow_c1": ratio(ours1["rps"], load["mlflow_c1"]["rps"])
        if "mlflow_c1" in load
        else None,
        "ours_over_noop_c1": ratio(ours1["rps"], load["noop_c1"]["rps"]),
        "ours_over_noop_varied_c64": ratio(
            load["ours_varied_c64"]["rps"], load["noop_varied_c64"]["rps"]
        ),
        "ours_over_mlflow_varied_c64": ratio(
            load["ours_varied_c64"]["rps"], load["mlflow_c64"]["rps"]
        )
        if "mlflow_c64" in load
        else None,
    }
    result = {
        "setup": setup,
        "seconds": seconds,
        "quick": quick,
        "ticket": TICKET,
        "startup_seconds": startup,
        "load": load,
        "ratios": ratios,
        "batch": batch,
        "reload": reload,
        "cold_start": {"seconds": starts, "median": statistics.median(starts)},
        "targets": TARGETS,
    }
    result["checks"] = checks(result)
    path = write_json("serving_quick" if quick else "serving", result, out_dir)
    print(json.dumps({"ratios": ratios, "checks": result["checks"]}, indent=2))
    print(f"wrote {path}")
    return result


def _started(url: str, proc: Any, t0: float) -> float:
    wait_http(url, 600, proc)
    return time.perf_counter() - t0


def checks(r: dict[str, Any]) -> dict[str, bool | None]:
    """Each target of the issue: True (met), False (missed) or None (not measured)."""
    ratios, load = r["ratios"], r["load"]
    ours64 = load["ours_c64"]
    vs_mlflow = ratios["ours_over_mlflow_c64"]
    return {
        "ours_over_mlflow": None
        if vs_mlflow is None
        else vs_mlflow >= TARGETS["ours_over_mlflow_min"],
        "ours_over_noop": ratios["ours_over_noop_c64"] >= TARGETS["ours_over_noop_min"],
        "p99_at_64": ours64["p99_ms"] <= TARGETS["p99_ms_at_64_max"],
        "no_errors_at_64": ours64["non_2xx"] == 0 and ours64["socket_errors"] == 0,
        "p50_at_1": load["ours_c1"]["p50_ms"] <= TARGETS["p50_ms_at_1_max"],
        "batch_vs_floor": (r["batch"]["http_p50_over_pipeline_floor"] or 99)
        <= TARGETS["batch_over_floor_max"],
        "reload_no_errors": r["reload"]["during"]["non_2xx"] == 0
        and r["reload"]["during"]["socket_errors"] == 0
        and r["reload"]["reload"].get("status") == 200,
        "reload_p99": (r["reload"]["p99_during_over_steady"] or 99)
        <= TARGETS["reload_p99_over_steady_max"],
        "cold_start": r["cold_start"]["median"] <= TARGETS["cold_start_s_max"],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rows", type=int, default=20_000, help="generated tickets to train on")
    p.add_argument("--seconds", type=float, default=8.0, help="duration of each load run")
    p.add_argument("--workdir", type=Path, help="reuse/keep this project dir (default: temp)")
    p.add_argument("--quick", action="store_true", help="tiny model and runs (smoke test)")
    p.add_argument("--search", action="store_true", help="train with the hyperparameter search")
    p.add_argument("--tool", choices=["auto", "wrk", "httpx"], default="auto")
    p.add_argument("--no-mlflow", action="store_true", help="skip mlflow models serve")
    p.add_argument("--out-dir", type=Path, help="where to write the JSON (bench/results)")
    a = p.parse_args(argv)
    rows = min(a.rows, 2000) if a.quick else a.rows
    kwargs: dict[str, Any] = dict(
        rows=rows,
        seconds=a.seconds,
        quick=a.quick,
        search=a.search,
        tool=a.tool,
        with_mlflow=not a.no_mlflow,
        out_dir=a.out_dir,
    )
    if a.workdir:
        a.workdir.mkdir(parents=True, exist_ok=True)
        return run(a.workdir, **kwargs)
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        return run(Path(tmp), **kwargs)


if __name__ == "__main__":
    main()
