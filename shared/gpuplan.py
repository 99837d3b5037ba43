"""A plan before a GPU run: what `make run PARAMS=gpu` would measure, and whether it fits.

`make run PARAMS=gpu PLAN=1` (runbook --plan) prints, without loading any model, each
configuration of the params file's `speed` section (experiment.model_configs: model x backend x
quantization) with the roofline model's predicted memory a GPU (weights + KV for the run's
context + runtime buffers, on the card's visible capacity) and seconds (warm-up + repetitions
of one call), and marks those predicted not to fit. The GPU is the one torch sees (its name,
through analysis.machine_label, must be in shared/hardware.yaml), or the one named.
"""
from __future__ import annotations

import pandas as pd

from . import analysis, catalog, experiment, fastenough, roofline


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
    name = analysis.machine_label(torch.cuda.get_device_name(0))
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
        raise catalog.LabError(f"unknown GPU {name!r} to plan for: known GPUs (shared/hardware.yaml) are "
                               f"{', '.join(known)}; e.g. make run PARAMS=gpu PLAN=1 GPU=2xT4")
    return hw.label


def plan(section: dict, hardware: str, model: fastenough.Model | None = None,
         budget_s: float = 1e9) -> pd.DataFrame:
    """One row per configuration of a params file's `speed` section on `hardware`: predicted
    memory a GPU, margin, seconds for warm-up + repetitions, and `fits`. RooflineError naming
    the hardware or model facts that are missing, before anything is loaded."""
    hw = roofline.hardware(hardware)
    m = model or fastenough.Model(hardware=(hw.label,))
    n_in, n_out = int(section.get("input_tokens", 500)), int(section.get("max_new_tokens", 128))
    calls = int(section.get("repetitions", 5)) + 1
    by_model = section.get("quantizations_by_model", {}) or {}
    rows = []
    for name in section["models"]:
        for config in experiment.model_configs([name], section["backends"],
                                               by_model.get(name, section.get("quantizations", ["none"]))):
            q = quantization_key(config, section.get("device", "cuda"))
            spec = catalog.get(name)
            p = m.predict(name, q, hw.key, n_in, n_out, budget_s)
            rows.append({"model": name, "backend": config["backend"], "quantization": q,
                         "config": f"{name} {config['backend']} {config['quantization']}",
                         "memory_per_gpu_gb": p.memory_per_gpu_gb, "visible_gb": p.memory_available_gb,
                         "margin_gb": p.memory_margin_gb, "s_per_call": p.s_per_sample * 1,
                         "s_total": p.s_per_sample * calls, "calibrated": p.calibrated,
                         "fits": p.fits_memory is not False, "source": spec.source})
    return pd.DataFrame(rows)


def describe(table: pd.DataFrame, hardware: str) -> str:
    """The plan as text: a table and a line per configuration that would not fit."""
    show = table.drop(columns=["source", "config"])
    lines = [f"plan on {hardware}: {len(table)} configurations, {int((~table['fits']).sum())} predicted not to fit "
             "(times exclude loading; `calibrated` False: a range's optimistic end)",
             analysis.markdown(show, floatfmt=".3g")]
    for _, r in table[~table["fits"]].iterrows():
        lines.append(f"SKIP {r['model']} {r['backend']} {r['quantization']}: {r['memory_per_gpu_gb']:.1f} GB a GPU "
                     f"> {r['visible_gb']:.1f} GB visible")
    return "\n".join(lines)


def unfit_configs(section: dict, hardware: str | None = None) -> tuple[str | None, list[str]]:
    """(the GPU planned for, the speed notebook's `skip_configs` strings "model backend
    quantization" predicted not to fit it); (None, []) where no GPU is visible and none is named."""
    label = hardware or visible_gpu()
    if label is None or section.get("device", "cpu") != "cuda":
        return label, []
    table = plan(section, label)
    return label, table.loc[~table["fits"], "config"].tolist()
