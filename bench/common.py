"""Helpers shared by the benchmark scripts: temp project set-up, server processes, JSON."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
BIN = Path(sys.executable).parent

QUIET_ENV = {
    "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
    "GIT_PYTHON_REFRESH": "quiet",
    "NML_DISABLE_USAGE_LOGGING": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


def project_env(workdir: Path, **extra: str) -> dict[str, str]:
    """Environment of a throw-away project in ``workdir`` (storage + MLflow SQLite)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TICKET_URGENCY_", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"))
    }
    env.update(QUIET_ENV)
    # mlflow models serve runs `uvicorn` from PATH: put this interpreter's bin first.
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["TICKET_URGENCY_STORAGE"] = str(workdir / "data")
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir / 'mlflow.db'}"
    env.update(extra)
    return env


def use_project(workdir: Path) -> Any:
    """Point this process's settings at the project in ``workdir`` and return them."""
    from ticket_urgency.settings import get_settings

    for k, v in project_env(workdir).items():
        os.environ[k] = v
    get_settings.cache_clear()
    return get_settings()


def machine() -> dict[str, Any]:
    """The machine the figures come from."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gb": mem_gb,
        "python": platform.python_version(),
        "load_average": list(os.getloadavg()),
    }


def free_port() -> int:
    """An unused TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def http(
    url: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> tuple[int, bytes]:
    """One HTTP request with the standard library; returns (status, body)."""
    req = urllib.request.Request(url, data=body, headers=dict(headers or {}))
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> float:
    """Poll ``url`` until it answers 200; return the seconds waited.

    Raises:
        RuntimeError: When the process dies or the timeout passes.
    """
    start = time.perf_counter()
    while True:
        try:
            status, _ = http(url, timeout=2.0)
            if status == 200:
                return time.perf_counter() - start
        except OSError:
            pass
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {proc.returncode}")
        if time.perf_counter() - start > timeout:
            raise RuntimeError(f"{url} not ready after {timeout:.0f}s")
        time.sleep(0.02)


def start(cmd: list[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start a server process in its own session, output to ``log``."""
    fh = log.open("wb")
    return subprocess.Popen(
        cmd, env=dict(env), stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process started by :func:`start` (and its process group)."""
    import signal

    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def write_json(name: str, data: Mapping[str, Any], out_dir: Path | None = None) -> Path:
    """Write ``data`` (plus a timestamp and the machine) to ``<out_dir>/<name>.json``."""
    out_dir = out_dir or RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    payload = {"generated_at": datetime.now(UTC).isoformat(), "machine": machine(), **data}
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path
