"""Run the whole benchmark suite (``make bench``): serving, then training and drift scaling.

Usage: ``python -m bench.run_all [--quick] [--full] [--seconds 8] [--out-dir DIR]``.
``--quick`` is the smoke mode of the test suite (tiny model, one-second runs, no mlflow
server); ``--full`` adds the 1,000,000-ticket training and drift runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench import bench_scaling, bench_serving


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--full", action="store_true")
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--out-dir", type=Path)
    p.add_argument("--skip-scaling", action="store_true")
    a = p.parse_args(argv)
    serving_args = ["--seconds", str(1.0 if a.quick else a.seconds)]
    if a.quick:
        serving_args += ["--quick", "--no-mlflow"]
    if a.out_dir:
        serving_args += ["--out-dir", str(a.out_dir)]
    bench_serving.main(serving_args)
    if not a.skip_scaling:
        bench_scaling.run(full=a.full, quick=a.quick, out_dir=a.out_dir)


if __name__ == "__main__":
    main()
