"""A plan before a GPU run: what `make run PARAMS=gpu` would measure, and whether it fits.

`make run PARAMS=gpu PLAN=1` (runbook --plan) prints, without loading any model, each
configuration of the params file's `speed` section (experiment.model_configs: model x backend x
quantization) with the roofline model's predicted memory a GPU (weights + KV for the run's
context + runtime buffers, on the card's visible capacity) and seconds (warm-up + repetitions
of one call), and marks those predicted not to fit; then the batch configurations of the same
section (batch_plan) and the models the other notebooks load (other_notebooks, memory only).
The GPU is the one torch sees (its name, through machine.machine_label, must be in
shared/data/hardware.yaml), or the one named.
"""
from __future__ import annotations

import pandas as pd

from shared import errors, machine
from shared.models import catalog
from shared.report import tables
from shared.run import experiment
from shared.speed import predictor, roofline


def _need(section: dict, key: str):
    """section[key]; LabError naming the key where a caller passed a bare params section (the
    notebook's defaults live in its parameters cell: shared.run.notebooks.defaults)."""
    if key not in section:
        raise errors.LabError(f"the speed parameters lack {key!r}: plan with the notebook's parameters "
                               "(notebooks.defaults of speed.ipynb) with the params section over them")
    return section[key]


def quantization_key(config: dict, device: str = "cuda") -> str:
    """The roofline quantization of a speed configuration: llama.cpp's GGUF type; transformers
    none -> fp16 on a GPU (fp32 on a CPU), 8bit / 4bit -> bitsandbytes."""
    if config["backend"] == "llama_cpp":
        return str(config["quantization"])
    q = str(config["quantization"])
    return {"8bit": "bnb-8bit", "4bit": "bnb-4bit"}.get(q, "fp16" if device == "cuda" else "fp32")


def visible_gpu() -> str | None:
    """The label of the GPU torch sees ("2xT4" for two T4s), or None without CUDA."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    n = torch.cuda.device_count()
    name = machine.machine_label(torch.cuda.get_device_name(0))
    return f"{n}x{name}" if n > 1 else name


def gpu_label(name: str) -> str:
    """The hardware.yaml label of the GPU `name` names (a label such as "T4" or "2xT4", a key such
    as "tesla-t4", or torch's device name). LabError listing every known GPU label otherwise,
    before anything is computed or loaded."""
    known = [h.label for h in roofline.hardware_table().values()]
    try:
        hw = roofline.hardware(str(name))
    except roofline.RooflineError:
        hw = None
    if hw is None or hw.kind != "gpu":
        raise errors.LabError(f"unknown GPU {name!r} to plan for: known GPUs (shared/data/hardware.yaml) are "
                               f"{', '.join(known)}; e.g. make run PARAMS=gpu PLAN=1 GPU=2xT4")
    return hw.label


def plan(section: dict, hardware: str, model: predictor.Predictor | None = None,
         budget_s: float = 1e9) -> pd.DataFrame:
    """One row per configuration of a params file's `speed` section on `hardware`: predicted
    memory a GPU, margin, seconds for warm-up + repetitions, and `fits`. RooflineError naming
    the hardware or model facts that are missing, before anything is loaded."""
    hw = roofline.hardware(hardware)
    m = model or predictor.Predictor(hardware=(hw.label,))
    n_in, n_out = int(_need(section, "input_tokens")), int(_need(section, "max_new_tokens"))
    calls = int(_need(section, "repetitions")) + 1
    rows = []
    for config in experiment.speed_configs({**section, "skip_configs": []}):  # as the notebook expands them
        name = config["model"]
        q = quantization_key(config, section.get("device", "cuda"))
        spec = catalog.get(name)
        p = m.predict(name, q, hw.key, n_in, n_out, budget_s)
        rows.append({"model": name, "backend": config["backend"], "quantization": q,
                     "config": f"{name} {config['backend']} {config['quantization']}",
                     "memory_per_gpu_gb": p.memory_per_gpu_gb, "visible_gb": p.memory_available_gb,
                     "margin_gb": p.memory_margin_gb, "s_per_call": p.s_per_sample * 1,
                     "s_total": p.s_per_sample * calls, "load_s": p.load_s, "calibrated": p.calibrated,
                     "fits": p.fits_memory is not False, "source": spec.source})
    return pd.DataFrame(rows)


# vLLM's CUDA kernels are built for compute capability 7.0 and newer (its setup.py
# NVIDIA_SUPPORTED_ARCHS starts at "7.0": vllm-project/vllm issue #963, "Support for compute
# capability <7.0"): no vLLM configuration runs on a Pascal card (P100 sm_60, P4 sm_61).
VLLM_UNSUPPORTED_GENERATIONS = ("pascal",)


def batch_plan(section: dict, hardware: str, model: predictor.Predictor | None = None,
               budget_s: float = 1e9) -> pd.DataFrame:
    """One row per batch configuration of a params file's `speed` section (its batch_* keys, as
    the speed notebook builds them) and batch size on `hardware`: memory a GPU with the KV cache of
    the whole batch (input_tokens + batch_max_new_tokens a sequence; for vLLM, which pages its KV
    cache, one sequence's), seconds a batch, `fits`.
    A checkpoint whose quantization the roofline has no facts for gets no memory and fits None
    (run, not skipped: nothing says it would not fit); vLLM on a card it has no kernels for fits
    False. `skip` is the speed notebook's skip_configs string of the row."""
    if not section.get("batch_sizes"):
        return pd.DataFrame()
    hw = roofline.hardware(hardware)
    m = model or predictor.Predictor(hardware=(hw.label,))
    n_in, n_out = int(_need(section, "input_tokens")), int(_need(section, "batch_max_new_tokens"))
    rows = []
    for config in experiment.batch_configs({**section, "skip_configs": []}):  # as the notebook does
        name, backend = config["model"], config["backend"]
        spec = catalog.get(name)
        q = str(spec.quantization) if spec.quantization not in ("none", None) else "fp16"
        for b in [int(x) for x in config["batch_sizes"].split()]:
            row = {"model": name, "backend": backend, "quantization": q, "batch_size": b,
                   "skip": f"batch {name} {backend} {config['quantization']} {b}",
                   "memory_per_gpu_gb": None, "visible_gb": hw.usable_memory_gb, "margin_gb": None,
                   "s_per_batch": None, "fits": None, "note": ""}
            if backend == "vllm" and hw.generation in VLLM_UNSUPPORTED_GENERATIONS:
                row.update(fits=False, note=f"vLLM has no kernels for {hw.generation} (compute capability < 7.0)")
            try:
                p = m.predict(name, q, hw.key, n_in, n_out, budget_s, b)
            except roofline.RooflineError as e:
                row["note"] = row["note"] or f"no memory facts for {q}: {str(e).split(':')[0]}"
            else:
                # vLLM pages its KV cache: what must fit is the weights and one sequence's KV
                # (a batch that holds more runs in turns); llama.cpp allocates n_ctx x slots at load
                need = m.predict(name, q, hw.key, n_in, n_out, budget_s, 1) if backend == "vllm" else p
                row.update(memory_per_gpu_gb=need.memory_per_gpu_gb, margin_gb=need.memory_margin_gb,
                           s_per_batch=p.s_per_sample * b)
                if row["fits"] is None:
                    row["fits"] = need.fits_memory is not False
                if backend == "vllm":
                    row["note"] = row["note"] or (f"memory: weights + one sequence's KV (vLLM pages the rest); "
                                                  f"time: {p.family} constants, no vLLM row calibrates it")
            rows.append(row)
    return pd.DataFrame(rows)


def other_notebooks(iteration, config: dict, hardware: str, model: predictor.Predictor | None = None) -> pd.DataFrame:
    """The models the params file's other notebooks (eos, make_validation_set, prompt_engineering,
    length_scaling: every section but speed's) load on the GPU, with predicted memory a GPU
    (weights + KV + runtime buffers for the notebook's largest call, whose input and output
    tokens and batch size the row gives) and whether they
    fit: the speed plan does not cover them, and a 7B fp16 generator that cannot fit one T4 would
    otherwise be found out mid-run. Memory only (these notebooks' times depend on their data)."""
    from shared.run import preflight

    names = [n for n in config.get("notebooks", []) if n != "speed"]
    hw = roofline.hardware(hardware)
    m = model or predictor.Predictor(hardware=(hw.label,))
    rows = []
    for c in preflight.configs(iteration, names, config):
        if c.device != "cuda":
            continue
        section = config.get(c.notebook) or {}
        # the notebook's calls: length_scaling sweeps the input at a fixed output, the output at a
        # fixed input, and the batch at both fixed; the others make calls of one size
        n_in = int(section.get("fixed_input_tokens", section.get("input_tokens", 600)))
        n_out = int(section.get("fixed_output_tokens", section.get("max_new_tokens", 64)))
        calls = {(int(i), n_out, 1) for i in section.get("input_lengths") or []}
        calls |= {(n_in, int(o), 1) for o in section.get("output_lengths") or []}
        calls |= {(n_in, n_out, int(b)) for b in section.get("batch_sizes") or [1]}
        q = quantization_key({"backend": c.backend, "quantization": c.quantization})
        row = {"notebook": c.notebook, "model": c.model, "backend": c.backend, "quantization": q}
        try:
            p, (i, o, b) = max(((m.predict(c.model, q, hw.key, i, o, 1e9, batch_size=b), (i, o, b))
                                for i, o, b in calls), key=lambda pc: pc[0].memory_per_gpu_gb)
            row.update(input_tokens=i, output_tokens=o, batch_size=b, memory_per_gpu_gb=p.memory_per_gpu_gb,
                       visible_gb=p.memory_available_gb, margin_gb=p.memory_margin_gb,
                       fits=p.fits_memory is not False, note="")
        except roofline.RooflineError as e:
            row.update(fits=True, note=f"no memory facts: {e}")
        rows.append(row)
    return pd.DataFrame(rows).drop_duplicates(subset=["notebook", "model", "backend", "quantization"])


def _too_big(r) -> str:
    """A plan row's reason not to fit: "18.3 GB a GPU > 15.7 GB visible"."""
    return f"{r['memory_per_gpu_gb']:.1f} GB a GPU > {r['visible_gb']:.1f} GB visible"


def describe_others(table: pd.DataFrame, hardware: str) -> str:
    """The other notebooks' plan as text: a table and a WARN line per model that would not fit
    (the run does not skip those: a notebook needs its model; change the params file)."""
    if table.empty:
        return ""
    lines = [f"other notebooks on {hardware}: {len(table)} model loads, {int((~table['fits']).sum())} predicted "
             "not to fit (memory only; these are not skipped: change the params file)",
             tables.markdown(table, floatfmt=".3g")]
    for _, r in table[~table["fits"]].iterrows():
        lines.append(f"WARN {r['notebook']}: {r['model']} {r['backend']} {r['quantization']}: {_too_big(r)}")
    return "\n".join(lines)


def describe(table: pd.DataFrame, hardware: str) -> str:
    """The plan as text: a table and a line per configuration that would not fit."""
    show = table.drop(columns=["source", "config"])
    lines = [f"plan on {hardware}: {len(table)} configurations, {int((~table['fits']).sum())} predicted not to fit "
             "(s_total excludes loading; load_s: the model's files read once at the machine's public read rate, "
             "empty where none is recorded; `calibrated` False: a range's optimistic end)",
             tables.markdown(show, floatfmt=".3g")]
    for _, r in table[~table["fits"]].iterrows():
        lines.append(f"SKIP {r['model']} {r['backend']} {r['quantization']}: {_too_big(r)}")
    return "\n".join(lines)


def describe_batches(table: pd.DataFrame, hardware: str) -> str:
    """The batch plan as text: a table and a SKIP line per batch that would not fit or not run."""
    if table.empty:
        return ""
    unfit = table[table["fits"].eq(False)]
    lines = [f"batches on {hardware}: {len(table)} configurations x batch sizes, {len(unfit)} predicted not to "
             "fit or not to run (memory: KV for the whole batch, vLLM one sequence's; fits empty: no facts to judge, it runs)",
             tables.markdown(table.drop(columns="skip"), floatfmt=".3g")]
    for _, r in unfit.iterrows():
        why = r["note"] if r["memory_per_gpu_gb"] is None or pd.isna(r["memory_per_gpu_gb"]) or r["note"].startswith("vLLM has") \
            else _too_big(r)
        lines.append(f"SKIP batch {r['model']} {r['backend']} {r['quantization']} x{r['batch_size']}: {why}")
    return "\n".join(lines)


def unfit_configs(section: dict, hardware: str | None = None) -> tuple[str | None, list[str]]:
    """(the GPU planned for, the speed notebook's `skip_configs` strings predicted not to fit it:
    "model backend quantization" of a configuration, "batch model backend quantization size" of
    one batch size); (None, []) where no GPU is visible and none is named."""
    label = hardware or visible_gpu()
    if label is None or section.get("device", "cpu") != "cuda":
        return label, []
    model = predictor.Predictor(hardware=(roofline.hardware(label).label,))  # built once for both
    table = plan(section, label, model)
    batches = batch_plan(section, label, model)
    skip = batches.loc[batches["fits"].eq(False), "skip"].tolist() if not batches.empty else []
    return label, table.loc[~table["fits"], "config"].tolist() + skip
