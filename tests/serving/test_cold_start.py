"""Cold start of ``ticket-urgency serve``: what the imports pull in, the registry look-up that a
forked child does during start-up (:mod:`ticket_urgency.registry_prefetch`), and a real
``serve`` that uses it. Behaviour only; the timings are in the benchmarks."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
from serving_support import ADMIN, make_settings, promote, serve_env, start_serve

from ticket_urgency.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _python(code: str, env: dict[str, str] | None = None) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter; it prints one JSON object as its last line."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


LOADED = """
import json, sys
{imports}
names = {names!r}
print(json.dumps(sorted(n for n in names if n in sys.modules)))
"""


def _loaded_after(imports: str, names: tuple[str, ...]) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", LOADED.format(imports=imports, names=names)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=True,
    )
    loaded: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return loaded


def test_importing_the_app_loads_nothing_serving_does_not_need() -> None:
    # drift (nannyml), the pipelines (dagster), CSV validation (pandera) and MLflow's database
    # layer (SQLAlchemy, alembic: loaded by the registry look-up, not by importing the app)
    heavy = ("nannyml", "dagster", "pandera", "sqlalchemy", "alembic")
    assert _loaded_after("import serving.app", heavy) == []


def test_the_cli_imports_no_data_or_server_library() -> None:
    heavy = ("pandas", "numpy", "mlflow", "fastapi", "uvicorn", "sklearn", "pandera")
    assert _loaded_after("import ticket_urgency.cli", heavy) == []


def test_the_contract_still_validates_with_pandera_imported_lazily() -> None:
    from ticket_urgency.contract import DataContractError, parse_tickets

    ok = parse_tickets(b"title,description,source,customer_tier\nHi,there,web,Gold\n", "ok.csv")
    assert ok["ticket_id"].str.startswith("h-").all()
    with pytest.raises(DataContractError, match="column 'source' is empty"):
        parse_tickets(b"title,description,source,customer_tier\nHi,there,,Gold\n", "bad.csv")


PREFETCH = """
import gc, json, os
from ticket_urgency import registry_prefetch
from ticket_urgency.predictor import make_client, resolve_model, run_metrics
from ticket_urgency.settings import get_settings

settings = get_settings()
started = registry_prefetch.start(settings)
other = settings.model_copy(update={{"model_uri_override": "models:/ticket_urgency/2"}})
got = registry_prefetch.take(other if {other!r} else settings)
paused = not gc.isenabled()  # until the answered version is loaded
registry_prefetch.resume_gc()
try:
    os.waitpid(-1, os.WNOHANG)
    reaped = False
except ChildProcessError:
    reaped = True
client = make_client(settings)
ref = resolve_model(client, settings.model_uri)
print(json.dumps({{
    "started": started,
    "paused": paused,
    "gc": gc.isenabled(),
    "reaped": reaped,
    "again": registry_prefetch.take(settings) is not None,
    "got": None if got is None else {{
        "ref": got.ref.__dict__, "location": got.location, "metrics": dict(got.metrics)
    }},
    "expected": {{
        "ref": ref.__dict__,
        "location": client.get_model_version_download_uri(ref.name, ref.version),
        "metrics": run_metrics(client, ref.run_id),
    }},
}}))
"""


def test_the_forked_look_up_answers_what_the_registry_says(registry: Settings) -> None:
    out = _python(PREFETCH.format(other=False), serve_env(registry))
    assert out["started"] is True
    assert out["paused"] is True and out["gc"] is True  # paused until the model is loaded
    assert out["reaped"] is True  # the child is gone once its answer is read
    assert out["again"] is False  # the answer is used once, by the first reload
    expected = out["expected"]
    assert isinstance(expected, dict) and expected["ref"]["version"] == "1"
    assert expected["metrics"] == {"macro_f1": 0.5}
    assert out["got"] == expected


def test_an_answer_for_other_settings_is_not_used(registry: Settings) -> None:
    out = _python(PREFETCH.format(other=True), serve_env(registry))
    assert out["started"] is True and out["reaped"] is True
    assert out["got"] is None and out["paused"] is False  # resolved in-process, collector on


FAILED = """
import gc, json
from ticket_urgency import registry_prefetch
from ticket_urgency.settings import get_settings

settings = get_settings()
started = registry_prefetch.start(settings)
paused = not gc.isenabled()
got = registry_prefetch.take(settings)
print(json.dumps({"started": started, "paused": paused, "gc": gc.isenabled(), "got": got}))
"""


def test_a_failed_look_up_gives_no_answer(tmp_path: Path) -> None:
    # nothing registered: the child fails, the server resolves in-process and reports it
    out = _python(FAILED, serve_env(make_settings(tmp_path)))
    assert out == {"started": True, "paused": True, "gc": True, "got": None}


# ---------------------------------------------------------------------------------------------
# A real `ticket-urgency serve`
# ---------------------------------------------------------------------------------------------


def _start(settings: Settings, ready: int) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``serve`` (one worker) and wait until ``/ready`` answers ``ready``."""
    return start_serve(serve_env(settings), ready=ready)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_serve_starts_with_the_looked_up_version_and_reloads_later(
    registry: Settings, stop: list[subprocess.Popen[bytes]]
) -> None:
    proc, base = _start(registry, 200)
    stop.append(proc)
    info = httpx.get(f"{base}/model", timeout=10).json()
    assert info["version"] == 1 and info["metrics"] == {"macro_f1": 0.5}
    assert info["fast_path"] is True

    promote(registry, "2")  # the next reload talks to the registry from the server process
    r = httpx.post(f"{base}/reload-model", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60)
    assert r.status_code == 200 and r.json()["model_version"] == 2, r.text
    assert httpx.get(f"{base}/model", timeout=10).json()["version"] == 2


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_serve_starts_without_a_registered_model(
    tmp_path: Path, stop: list[subprocess.Popen[bytes]]
) -> None:
    proc, base = _start(make_settings(tmp_path), 503)
    stop.append(proc)
    assert httpx.get(f"{base}/health", timeout=10).status_code == 200
