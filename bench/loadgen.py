"""HTTP load generation: wrk (with a Lua script for POST bodies) or an asyncio/httpx fallback.

Both return the same :class:`LoadResult`: requests per second, latency percentiles in
milliseconds, non-2xx responses and socket errors.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local bodies = {{}}
for line in io.lines("{body_path}") do bodies[#bodies + 1] = line end
wrk.body = bodies[1]
local i = 0
if #bodies > 1 then
  -- a different body per request, in turn
  request = function()
    i = i % #bodies + 1
    return wrk.format(nil, nil, nil, bodies[i])
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write("WRKJSON ")
  io.write(string.format(
    '{{"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,'
    .. '"max_us":%d,"mean_us":%f,"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, e.connect, e.read, e.write, e.timeout,
    e.status))
end
"""


@dataclass
class LoadResult:
    """What one load run measured."""

    tool: str
    url: str
    connections: int
    seconds: float
    requests: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: int

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return asdict(self)


def have_wrk() -> bool:
    """True when the ``wrk`` binary is on PATH."""
    return shutil.which("wrk") is not None


Body = bytes | list[bytes]
"""One request body, or several sent in turn (one per request)."""


def _bodies(body: Body) -> list[bytes]:
    bodies = [body] if isinstance(body, bytes) else list(body)
    if not bodies or any(b"\n" in b for b in bodies):
        raise ValueError("bodies must be non-empty single-line JSON documents")
    return bodies


def run_wrk(url: str, body: Body, connections: int, seconds: float) -> LoadResult:
    """Drive ``url`` with ``wrk -t1 -c<connections> -d<seconds>s`` POSTing ``body``."""
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        body_path = Path(tmp) / "body.jsonl"
        body_path.write_bytes(b"\n".join(_bodies(body)) + b"\n")
        script = Path(tmp) / "post.lua"
        script.write_text(_LUA.format(body_path=body_path))
        dur = max(1, round(seconds))
        proc = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{dur}s",
                "--timeout",
                "10s",
                "-s",
                str(script),
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    line = next(
        (ln for ln in proc.stdout.splitlines() if ln.startswith("WRKJSON ")),
        None,
    )
    if line is None:
        raise RuntimeError(f"wrk printed no summary: {proc.stdout}\n{proc.stderr}")
    s = json.loads(line.removeprefix("WRKJSON "))
    secs = s["duration_us"] / 1e6
    return LoadResult(
        tool="wrk",
        url=url,
        connections=connections,
        seconds=round(secs, 3),
        requests=s["requests"],
        rps=round(s["requests"] / secs, 1),
        p50_ms=s["p50_us"] / 1000,
        p90_ms=s["p90_us"] / 1000,
        p99_ms=s["p99_us"] / 1000,
        max_ms=s["max_us"] / 1000,
        non_2xx=s["status"],
        socket_errors=s["connect"] + s["read"] + s["write"] + s["timeout"],
    )


async def _httpx_load(url: str, body: Body, connections: int, seconds: float) -> LoadResult:
    import itertools

    import httpx

    turn = itertools.cycle(_bodies(body))

    latencies: list[float] = []
    non_2xx = 0
    errors = 0
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(limits=limits, timeout=10.0) as client:
        start = time.perf_counter()
        deadline = start + seconds

        async def worker() -> None:
            nonlocal non_2xx, errors
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                try:
                    r = await client.post(url, content=next(turn), headers=headers)
                except httpx.HTTPError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - t0)
                if not 200 <= r.status_code < 300:
                    non_2xx += 1

        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - start
    latencies.sort()

    def pct(q: float) -> float:
        if not latencies:
            return float("nan")
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 3)

    return LoadResult(
        tool="httpx",
        url=url,
        connections=connections,
        seconds=round(elapsed, 3),
        requests=len(latencies),
        rps=round(len(latencies) / elapsed, 1),
        p50_ms=pct(0.50),
        p90_ms=pct(0.90),
        p99_ms=pct(0.99),
        max_ms=pct(1.0),
        non_2xx=non_2xx,
        socket_errors=errors,
    )


def run_load(
    url: str, body: Body, connections: int, seconds: float, tool: str = "auto"
) -> LoadResult:
    """Drive ``url`` with wrk when present (or ``tool="wrk"``), else with an asyncio client.

    The asyncio client runs in this Python process, so it is much slower than wrk and its
    figures are a lower bound; the JSON records which tool measured them.
    """
    if tool == "wrk" or (tool == "auto" and have_wrk()):
        return run_wrk(url, body, connections, seconds)
    return asyncio.run(_httpx_load(url, body, connections, seconds))
