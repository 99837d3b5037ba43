"""The main job: execute an iteration's notebooks with papermill, then refresh its report.

    python -m shared run iterations/01_biggest_model --params cpu
    python -m shared run iterations/01_biggest_model --params gpu --only speed
    python -m shared run iterations/01_biggest_model iterations/02_fine_tuning   # `make run`

Parameters come from iterations/NN/params/<name>.yaml: `notebooks` gives the order, and each
notebook's section is passed to its papermill `parameters` cell. Executed notebooks, with
their outputs, are kept in iterations/NN/executed/<params>/.

A notebook that fails (an exception in a cell, a dead kernel) does not stop the ones after it:
its executed copy keeps the traceback, the report is still refreshed from the rows that exist,
a summary lists every notebook with ok/failed, its seconds and the reason of a failure, and
the command exits with status 1. A SIGTERM or SIGHUP (or Ctrl-C) ends the job with the
notebook's kernel and the configuration it runs (shared.run.lifetime): nothing keeps measuring.
The job ends with a reproduction table: the headline metrics this run measured against the
rows that were there before it (in a fresh clone, the committed rows) of the same machine label,
flagged where outside their spread (shared.report.reproduction; rows of another checkout are not
skipped, see results.done_configs). A notebook whose .ipynb is not in sync with its .py stops
the job before anything runs (shared.run.notebooks: "run make sync"), and so does a machine that
cannot run it (shared.run.preflight: no CUDA device, models neither here nor downloadable, memory).
The kernels run with TQDM_DISABLE=1: a progress bar saved in an executed notebook is either a
widget nobody can see outside the lab or lines of stderr; each table's summary line stays.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import yaml

from shared.report import report, reproduction
from shared.run import lifetime, notebooks, preflight
from shared.errors import LabError
from shared.machine import REPO, shown


@dataclasses.dataclass
class Step:
    """How one step of the main job ended: a notebook, or "report" for the refresh."""
    name: str
    status: str          # ok | failed
    seconds: float
    reason: str = ""     # for a failure: exception name and message, one line
    output: Path | None = None  # the executed notebook


def load_params(iteration: Path, name: str) -> dict:
    """The parameter set `name` (params/<name>.yaml): a mapping with `notebooks` (the order) and
    one mapping of parameters per notebook. A notebook's section written as
    `{same_as: OTHER, key: value, ...}` is OTHER's section of that notebook with those keys
    changed, so what two sets share (the roofline's GPUs, candidates and quantizations) is typed
    once. SystemExit, naming the file and section, for an unknown set, a file that is not such a
    mapping, a section that is not a mapping, a `same_as` that is not one set's name, a set
    without that section, or a cycle."""
    config = _read_params(iteration, name)
    return {**config, **{section: _section(iteration, name, section, ()) for section in config if section != "notebooks"}}


def _read_params(iteration: Path, name: str) -> dict:
    path = iteration / "params" / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in (iteration / "params").glob("*.yaml"))
        raise SystemExit(f"no parameter set {name!r} for {iteration}: choose one of {known}")
    config = yaml.safe_load(path.read_text())
    if not isinstance(config, dict):
        raise SystemExit(f"params/{name}.yaml must be a mapping (notebooks: [...], then a section per notebook), "
                         f"got {type(config).__name__}")
    return config


def _section(iteration: Path, name: str, section: str, seen: tuple) -> dict:
    """Set `name`'s section `section`, its same_as resolved (`seen`: the sets already on the way)."""
    value = _read_params(iteration, name).get(section)
    where = f"params/{name}.yaml, section {section!r}"
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SystemExit(f"{where} must be a mapping of parameters (key: value), got {type(value).__name__} {value!r}")
    if "same_as" not in value:
        return value
    other = value["same_as"]
    if not isinstance(other, str) or not other:
        raise SystemExit(f"{where}: same_as must name one parameter set (e.g. same_as: cpu), got {other!r}")
    if other in (*seen, name):
        raise SystemExit(f"{where}: same_as {other!r} refers back to itself ({' -> '.join([*seen, name, other])})")
    known = sorted(p.stem for p in (iteration / "params").glob("*.yaml"))
    if other not in known:
        raise SystemExit(f"{where}: same_as {other!r} is not a parameter set: choose one of {known}")
    if section not in _read_params(iteration, other):
        raise SystemExit(f"{where}: same_as {other!r}, but params/{other}.yaml has no {section!r} section")
    base = _section(iteration, other, section, (*seen, name))
    return {**base, **{k: v for k, v in value.items() if k != "same_as"}}


@dataclasses.dataclass
class Job:
    """One iteration's part of the main job, checked and ready: its notebooks in order and the
    parameters each gets."""
    iteration: Path
    params: str
    names: list[str]
    config: dict


def prepare(iteration: str | Path, params: str = "cpu", only: list[str] | None = None,
            overrides: dict | None = None, include_unfit: bool = False) -> Job:
    """Every check of an iteration's job, before any compute: the params set, the notebooks named,
    their sync with the .py, their parameters and this machine's pre-flight (SystemExit naming
    what to fix). On a CUDA run the speed configurations predicted not to fit the visible GPU are
    skipped unless `include_unfit`."""
    iteration = Path(iteration).resolve()
    config = load_params(iteration, params)
    names = only or config["notebooks"]
    if "speed" in names and not include_unfit:
        config = skip_unfit(iteration, config)
    unknown = [n for n in names if not (iteration / f"{n}.ipynb").exists()
               and not (iteration / f"{n}.py").exists()]
    if unknown:
        raise SystemExit(f"no notebook {unknown} in {iteration}; have {config['notebooks']}")
    check_notebooks(iteration, names)
    check_parameters(iteration, names, config, params, overrides)
    preflight_check(iteration, names, config, params)
    return Job(iteration, params, names, config)


def execute(job: Job, overrides: dict | None = None) -> list[Step]:
    """Execute a prepared job's notebooks in order, each whatever happened to the ones before,
    then refresh the report; one Step per notebook and one for the report."""
    iteration = job.iteration
    headlines = report.headlines(iteration)
    before = reproduction.snapshot(headlines)
    steps = run_notebooks(iteration, job.names, job.params, job.config, overrides)
    start = time.perf_counter()
    try:
        changed = report.render(iteration)
    except Exception as e:
        steps.append(Step("report", "failed", time.perf_counter() - start, reason(e)))
    else:
        steps.append(Step("report", "ok", time.perf_counter() - start))
        print(f"report {shown(report.report_path(iteration))}: refreshed {', '.join(changed) or 'nothing'}")
    print(summary(steps), flush=True)
    print(reproduced(headlines, before), flush=True)
    return steps


def run(iteration: str | Path, params: str = "cpu", only: list[str] | None = None,
        overrides: dict | None = None, include_unfit: bool = False) -> list[Step]:
    """One iteration's job: `prepare` (every check), then `execute`."""
    return execute(prepare(iteration, params, only, overrides, include_unfit), overrides)


def run_all(iterations: list[str | Path], params: str = "cpu", only: list[str] | None = None,
            overrides: dict | None = None, include_unfit: bool = False) -> list[Step]:
    """Several iterations' jobs, in the order given: every one is prepared (checked) before the
    first notebook runs, so a typo in the last iteration's params costs no compute. `only` names
    notebooks of any of them (each iteration runs those it has; a name none has is an error).
    Steps are named "<iteration folder>/<notebook>" when there is more than one iteration."""
    if len(iterations) == 1:
        return run(iterations[0], params, only, overrides, include_unfit)
    jobs = []
    for it in iterations:
        mine = None
        if only:
            have = set(load_params(Path(it).resolve(), params)["notebooks"])
            mine = [n for n in only if n in have]
            if not mine:
                continue
        jobs.append(prepare(it, params, mine, overrides, include_unfit))
    if only:
        missing = sorted(set(only) - {n for j in jobs for n in j.names})
        if missing:
            raise SystemExit(f"no notebook {missing} in {', '.join(str(i) for i in iterations)} "
                             f"(params {params!r})")
    steps = []
    for job in jobs:
        steps += [dataclasses.replace(s, name=f"{job.iteration.name}/{s.name}")
                  for s in execute(job, overrides)]
    if len(jobs) > 1:
        print(summary(steps), flush=True)
    return steps


def reproduced(headlines: list, before: dict) -> str:
    """The closing table: this run's headline metrics against the earlier rows of this machine
    label (shared.report.reproduction); a failure to make it is said, not raised."""
    try:
        return reproduction.markdown(reproduction.compare(headlines, before))
    except Exception as e:
        return f"reproduction table failed: {reason(e)}"


def run_notebooks(iteration: Path, names: list[str], params: str, config: dict,
                  overrides: dict | None) -> list[Step]:
    """Execute each notebook into executed/<params>/, whatever happened to the ones before.
    Their kernels get TQDM_DISABLE=1 unless the caller set it (see the module's docstring)."""
    saved = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = saved or "1"
    try:
        steps = []
        for name in names:
            out = iteration / "executed" / params / f"{name}.ipynb"
            out.parent.mkdir(parents=True, exist_ok=True)
            print(f"== {name} ({params}) -> {shown(out)}", flush=True)
            start = time.perf_counter()
            try:
                notebooks.execute(iteration / f"{name}.ipynb", out, cwd=REPO, progress_bar=False,
                                  log_output=True, parameters={**config.get(name, {}), **(overrides or {})})
            except Exception as e:  # a failed cell or a dead kernel: recorded, the next notebook runs
                steps.append(Step(name, "failed", time.perf_counter() - start, reason(e), out))
                print(f"== {name} FAILED after {steps[-1].seconds:.0f} s: {steps[-1].reason} "
                      f"(traceback in {shown(out)})", flush=True)
            else:
                steps.append(Step(name, "ok", time.perf_counter() - start, output=out))
                print(f"== {name} done in {steps[-1].seconds:.0f} s", flush=True)
    finally:
        if saved is None:
            del os.environ["TQDM_DISABLE"]
    return steps


def check_notebooks(iteration: Path, names: list[str]) -> None:
    """Stop before anything runs when a notebook of the job is not in sync with its .py
    (shared.run.notebooks says why the job stops instead of syncing)."""
    try:
        notebooks.check([iteration / f"{name}.ipynb" for name in names])
    except LabError as e:
        raise SystemExit(str(e)) from None


def check_parameters(iteration: Path, names: list[str], config: dict, params: str,
                     overrides: dict | None = None) -> None:
    """Stop before anything runs when a notebook's section of params/<params>.yaml (or an
    override) names a parameter the notebook does not have: papermill would only warn and the
    notebook would measure its default. One message per notebook, naming its parameters."""
    problems = []
    for name in names:
        try:
            notebooks.check_parameters(iteration / f"{name}.ipynb", config.get(name) or {},
                                       f"params/{params}.yaml, section {name!r}")
            notebooks.check_parameters(iteration / f"{name}.ipynb", overrides or {}, "the command line")
        except LabError as e:
            problems.append(str(e))
    if problems:
        raise SystemExit("\n".join(problems))


def preflight_check(iteration: Path, names: list[str], config: dict, params: str) -> None:
    """Stop before the first configuration when this machine cannot run the job: one message
    listing what is missing for every configuration of every notebook (shared.run.preflight)."""
    try:
        preflight.check(iteration, names, config, params)
    except LabError as e:
        raise SystemExit(str(e)) from None


def reason(error: BaseException) -> str:
    """One line: the exception's name and message (for a failed cell, the cell's exception)."""
    name, message = type(error).__name__, str(error)
    if hasattr(error, "ename"):  # papermill.PapermillExecutionError: the error raised in the cell
        name, message = error.ename, error.evalue
    message = " ".join(message.split())
    return f"{name}: {message}"[:300] if message else name


def summary(steps: list[Step]) -> str:
    """A table of the steps: name, ok/failed, seconds, reason."""
    width = max(len(s.name) for s in steps)
    lines = [f"  {s.name:<{width}}  {s.status:<6}  {s.seconds:7.1f} s  {s.reason}".rstrip() for s in steps]
    failed = [s.name for s in steps if s.status == "failed"]
    head = f"summary: {len(steps) - len(failed)} ok, {len(failed)} failed" + (f" ({', '.join(failed)})" if failed else "")
    return "\n".join([head, *lines])


def stopped(stop: "lifetime.Stopped") -> None:
    """A SIGTERM or SIGHUP ended the job: end the kernel (whose SIGTERM handler kills the running
    configuration's child, which would die with the kernel anyway), then end as the signal would."""
    print(f"main job {stop}: ending the notebook's kernel and its configuration", flush=True)
    lifetime.end_children()
    lifetime.resend(stop)


def speed_parameters(iteration: Path, config: dict) -> dict:
    """The speed notebook's parameters on this job: its parameters cell's defaults with the
    params section over them (the defaults live in the notebook only)."""
    return {**notebooks.defaults(iteration / "speed.ipynb"), **(config.get("speed") or {})}


def skip_unfit(iteration: Path, config: dict) -> dict:
    """The params with the speed configurations predicted not to fit this GPU added to the speed
    notebook's `skip_configs` (shared/run/gpuplan.py; nothing changes without a visible GPU)."""
    from shared.run import gpuplan
    try:
        label, unfit = gpuplan.unfit_configs(speed_parameters(iteration, config))
    except LabError as e:  # a GPU or model the roofline has no facts for: nothing predicted, nothing skipped
        print(f"== no memory plan for this GPU, every configuration runs: {e}", flush=True)
        return config
    if not unfit:
        return config
    for c in unfit:
        print(f"== skip on {label} (predicted not to fit; --include-unfit to run it): {c}", flush=True)
    speed = {**config["speed"], "skip_configs": [*config["speed"].get("skip_configs", []), *unfit]}
    return {**config, "speed": speed}


def print_plan(iteration: str | Path, params: str, gpu: str | None = None) -> int:
    """`--plan`: print the speed and batch configurations of the params file with predicted memory
    and time on this GPU (or `gpu`), marking those that would not fit, and the other notebooks'
    models with their memory; nothing is loaded or run."""
    from shared.run import gpuplan
    iteration = Path(iteration).resolve()
    if not (iteration / "speed.ipynb").exists():
        print(f"{shown(iteration)}: no speed notebook, no speed configurations to plan")
        return 0
    config = load_params(iteration, params)   # an unknown set stops here, before the GPU is asked for
    check_parameters(iteration, config.get("notebooks", []), config, params)  # and a typo in it
    label = gpu or gpuplan.visible_gpu()
    if label is None:
        raise SystemExit("no CUDA GPU visible: name the one to plan for, e.g. make run PARAMS=gpu PLAN=1 GPU=2xT4 (runbook --plan --gpu 2xT4)")
    try:
        label = gpuplan.gpu_label(label)   # a typo stops here, before any model
    except LabError as e:
        raise SystemExit(str(e)) from None
    speed = speed_parameters(iteration, config)
    if speed.get("device", "cpu") != "cuda":
        raise SystemExit(f"parameter set {params!r} runs its speed configurations on {speed.get('device', 'cpu')!r}, "
                         f"not a GPU: nothing to plan (plan a GPU run: make run PARAMS=gpu PLAN=1 GPU={label})")
    from shared.speed import predictor
    model = predictor.Predictor(hardware=(label,))  # calibrated once for the three tables
    print(gpuplan.describe(gpuplan.plan(speed, label, model), label))
    batches = gpuplan.describe_batches(gpuplan.batch_plan(speed, label, model), label)
    if batches:
        print("\n" + batches)
    others = gpuplan.describe_others(gpuplan.other_notebooks(iteration, config, label, model), label)
    if others:
        print("\n" + others)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the job; exit status 1 when any notebook (or the report refresh) failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("iterations", nargs="+", metavar="iteration",
                        help="iteration folders, run in this order (all checked before any runs)")
    parser.add_argument("--params", default="cpu", help="parameter set in <iteration>/params/")
    parser.add_argument("--only", nargs="*", help="run only these notebooks")
    parser.add_argument("--redo", action="store_true",
                        help="measure again what this machine already measured (papermill -p redo True)")
    parser.add_argument("--plan", action="store_true",
                        help="print the speed configurations with predicted memory and time; run nothing")
    parser.add_argument("--gpu", help="with --plan: the GPU to plan for (hardware.yaml label), else the visible one")
    parser.add_argument("--include-unfit", action="store_true",
                        help="run speed configurations predicted not to fit the visible GPU too")
    args = parser.parse_args(argv)
    if args.gpu and not args.plan:
        parser.error(f"--gpu {args.gpu} names the GPU to plan for: add --plan (make run PARAMS=gpu PLAN=1 GPU={args.gpu}); "
                     "a run uses the GPU it finds")
    if args.plan:
        return max(print_plan(it, args.params, args.gpu) for it in args.iterations)
    start = time.perf_counter()
    with lifetime.signals_raise():
        try:
            steps = run_all(args.iterations, args.params, args.only,
                            {"redo": True} if args.redo else None, include_unfit=args.include_unfit)
        except lifetime.Stopped as stop:
            stopped(stop)
        except KeyboardInterrupt:
            lifetime.end_children()
            raise
    print(f"main job finished in {(time.perf_counter() - start) / 60:.1f} min")
    return 1 if any(s.status == "failed" for s in steps) else 0


if __name__ == "__main__":
    sys.exit(main())
