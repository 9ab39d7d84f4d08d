"""The notebooks in ``notebooks/`` run top to bottom on small generated data.

A module-scoped fixture fills a temp storage and MLflow database through the library
(generate, upload, train v1 on the reference, promote, upload new data, drift, train v2 on
combined, promote), then each notebook is executed with nbclient in a kernel whose environment
points at that storage (the notebooks read it through ``get_settings()``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ["01_explore_tickets.ipynb", "02_drift_analysis.ipynb", "03_model_comparison.ipynb"]
SMALL = {
    "char_ngram_max": 3,
    "char_max_features": 5000,
    "word_max_features": 5000,
    "calibration_cv": 2,
}


@pytest.fixture(scope="module")
def notebook_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Storage + MLflow with two versions, two promotion decisions and one drift report."""
    from ticket_urgency.datasets import upload
    from ticket_urgency.drift import run_drift
    from ticket_urgency.generate import generate_dataset
    from ticket_urgency.registry import promote
    from ticket_urgency.settings import get_settings
    from ticket_urgency.storage import open_storage
    from ticket_urgency.training import train

    root = tmp_path_factory.mktemp("notebooks")
    env = {
        "TICKET_URGENCY_STORAGE": str(root / "store"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "TICKET_URGENCY_DRIFT_MIN_ROWS": "100",
    }
    saved = dict(os.environ)  # MLflow exports some variables itself (set_registry_uri, ...)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        get_settings.cache_clear()
        settings = get_settings()
        storage = open_storage(settings.storage, settings)
        reference, new = generate_dataset(1200, 600, drift="all", seed=1)
        upload(storage, reference, None)
        first = train(settings, "reference", SMALL, search_grid=None, compare_baseline=False)
        assert promote(settings, version=first.version).promoted
        upload(storage, None, new)
        assert run_drift(settings, storage).drift_detected
        second = train(settings, "combined", SMALL, search_grid=None, compare_baseline=False)
        promote(settings, version=second.version)
    os.environ.clear()
    os.environ.update(saved)
    get_settings.cache_clear()
    return {**env, "cwd": str(root)}


def _execute(name: str, notebook_env: dict[str, str]) -> Any:
    import nbformat
    from nbclient import NotebookClient

    env = {k: v for k, v in notebook_env.items() if k != "cwd"}
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        nb,
        timeout=180,
        kernel_name="python3",
        resources={"metadata": {"path": notebook_env["cwd"]}},
    )
    saved = dict(os.environ)
    os.environ.update(env)  # the kernel subprocess inherits this environment
    os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
    try:
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return nb


def _outputs(nb: Any) -> str:
    """All text outputs of the executed notebook, for assertions."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            data = out.get("data", {})
            parts.append(data.get("text/plain", ""))
            parts.append(data.get("text/markdown", ""))
    return "\n".join(parts)


def _images(nb: Any) -> int:
    return sum(
        "image/png" in out.get("data", {}) for cell in nb.cells for out in cell.get("outputs", [])
    )


def test_committed_notebooks_have_no_outputs() -> None:
    import nbformat

    for name in NAMES:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, name


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs(name: str, notebook_env: dict[str, str]) -> None:
    start = time.monotonic()
    nb = _execute(name, notebook_env)
    elapsed = time.monotonic() - start
    text = _outputs(nb)
    assert notebook_env["TICKET_URGENCY_STORAGE"] in text  # it used the configured storage
    assert _images(nb) >= 1
    if name.startswith("01"):
        assert "label_urgency" in text and "description_chars" in text
    elif name.startswith("02"):
        assert "**Verdict: DRIFT**" in text
        assert "customer_tier" in text
    else:
        assert "macro_f1" in text
        assert "promoted" in text
        assert "In Production now: **v2**" in text or "In Production now: **v1**" in text
    assert elapsed < 120, f"{name} took {elapsed:.0f}s"
