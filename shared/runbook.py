"""The main job: execute an iteration's notebooks with papermill, then refresh its report.

    python -m shared.runbook iterations/01_biggest_model --params cpu
    python -m shared.runbook iterations/01_biggest_model --params gpu --only speed

Parameters come from iterations/NN/params/<name>.yaml: `notebooks` gives the order, and each
notebook's section is passed to its papermill `parameters` cell. Executed notebooks, with
their outputs, are kept in iterations/NN/executed/<params>/.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import papermill
import yaml

from . import report
from .machine import REPO


def load_params(iteration: Path, name: str) -> dict:
    path = iteration / "params" / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in (iteration / "params").glob("*.yaml"))
        raise SystemExit(f"no parameter set {name!r} for {iteration}: choose one of {known}")
    return yaml.safe_load(path.read_text())


def run(iteration: str | Path, params: str = "cpu", only: list[str] | None = None,
        overrides: dict | None = None) -> list[Path]:
    """Execute the notebooks in order; returns the executed notebook paths."""
    iteration = Path(iteration).resolve()
    config = load_params(iteration, params)
    names = only or config["notebooks"]
    unknown = [n for n in names if not (iteration / f"{n}.ipynb").exists()]
    if unknown:
        raise SystemExit(f"no notebook {unknown} in {iteration}; have {config['notebooks']}")
    outputs = []
    for name in names:
        out = iteration / "executed" / params / f"{name}.ipynb"
        out.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        print(f"== {name} ({params}) -> {out.relative_to(REPO)}", flush=True)
        papermill.execute_notebook(iteration / f"{name}.ipynb", out, cwd=REPO, progress_bar=False,
                                   log_output=True,
                                   parameters={**config.get(name, {}), **(overrides or {})})
        print(f"== {name} done in {time.perf_counter() - start:.0f} s", flush=True)
        outputs.append(out)
    changed = report.render(iteration)
    print(f"report {report.report_path(iteration).relative_to(REPO)}: refreshed {changed or 'nothing'}")
    return outputs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("iteration")
    parser.add_argument("--params", default="cpu", help="parameter set in <iteration>/params/")
    parser.add_argument("--only", nargs="*", help="run only these notebooks")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    run(args.iteration, args.params, args.only)
    print(f"main job finished in {(time.perf_counter() - start) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
