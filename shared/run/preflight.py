"""Can this machine run the job? Checked for every configuration before the first one starts.

`make run PARAMS=gpu` on a CPU-only, offline machine used to start anyway: each of the 41 speed
configurations spent about 25 s in hub retries before failing, then the next notebooks did the
same. `problems(iteration, params)` goes over every notebook of the job and every
configuration it will load (model x backend x quantization, as the notebook builds them) and
lists, once each:

- a device the notebooks ask for that this machine lacks (device cuda without a CUDA device);
- models not on this machine (embedded package, assembled file, local path, local hub cache)
  when the hub cannot be reached (HF_HUB_OFFLINE, or no connection to HF_ENDPOINT within 3 s);
- models whose weights alone exceed the memory of the device they go to (parameters x bits per
  weight of shared/data/quantization.yaml, against MemAvailable or the GPU's total memory);
- a model name or a backend/quantization pair the catalog cannot load.

Nothing is loaded and nothing is downloaded; the only network use is one connection attempt.
"""
from __future__ import annotations

import dataclasses
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from shared.models import catalog, loading
from shared.run import experiment, notebooks
from shared.errors import LabError

MODEL_KEYS = ("models", "model", "generator")  # the parameters that name models to load
HUB_TIMEOUT_S = 3.0


@dataclasses.dataclass(frozen=True)
class Config:
    notebook: str
    model: str
    backend: str
    quantization: str
    device: str


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _known(model: str) -> bool:
    try:
        catalog.get(model)
    except LabError:
        return False
    return True


def as_lists(p: dict) -> dict:
    """The speed notebook's list parameters of `p` as lists (its as_lists cell, for a params
    section that gives one value)."""
    lists = ("models", "backends", "quantizations", "skip_configs", "batch_sizes", "batch_models", "batch_backends")
    maps = ("quantizations_by_model", "batch_sizes_by_backend", "batch_backends_by_model")
    return {**p, **{k: _as_list(p[k]) for k in lists if k in p},
            **{k: {m: _as_list(v) for m, v in (p[k] or {}).items()} for k in maps if k in p}}


def configs(iteration: Path, names: list[str], sections: dict) -> list[Config]:
    """Every (model, backend, quantization, device) the notebooks `names` will load, from each
    notebook's defaults overridden by its section of the parameter set."""
    out = []
    for name in names:
        p = {**notebooks.defaults(iteration / f"{name}.ipynb"), **(sections.get(name) or {})}
        if name == "speed":  # its configurations and batch configurations, as the notebook expands them
            p, device = as_lists(p), str(p.get("device", "cpu"))
            named = [*p.get("models", []), *p.get("batch_models", [])]
            unknown = [m for m in dict.fromkeys(named) if not _known(m)]  # listed by problems(), once
            out += [Config(name, m, "transformers", "none", device) for m in unknown]
            known = {k: [m for m in p.get(k, []) if m not in unknown] for k in ("models", "batch_models")}
            if known["batch_models"] or not p.get("batch_models"):  # [] means the models above
                out += [Config(name, c["model"], c["backend"], c["quantization"], device)
                        for c in experiment.batch_configs({**p, **known})]
            out += [Config(name, c["model"], c["backend"], c["quantization"], device)
                    for c in experiment.speed_configs({**p, **known})]
            continue
        key = next((k for k in MODEL_KEYS if p.get(k)), None)
        if key is None:  # a notebook that loads no model (roofline: facts only)
            continue
        backends = _as_list(p.get("backends", p.get("backend", "transformers")))
        quantizations = _as_list(p.get("quantizations", p.get("quantization", "none")))
        by_model = p.get("quantizations_by_model") or {}
        device = str(p.get("device", "cpu"))
        for model in _as_list(p[key]):
            for backend in backends:
                if backend == "llama_cpp":
                    try:
                        spec = catalog.get(model)
                    except LabError:
                        out.append(Config(name, model, backend, "none", device))
                        continue
                    if spec.format == "gguf":
                        out.append(Config(name, model, backend, spec.quantization, device))
                else:
                    for q in _as_list(by_model.get(model, quantizations)):
                        out.append(Config(name, model, backend, str(q), device))
    return out


def hub_reachable() -> str | None:
    """None when the hub can be reached, else why not (one attempt, HUB_TIMEOUT_S)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return "HF_HUB_OFFLINE is set"
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=HUB_TIMEOUT_S).close()
    except OSError as e:
        return f"no connection to {url.hostname}:{port} ({type(e).__name__}: {e.strerror or e})"
    return None


def on_machine(spec: catalog.ModelSpec) -> bool:
    """Whether the weights of `spec` are here without a download."""
    source = spec.source
    if "embedded_parts" in source:
        if (catalog.cache_dir() / "gguf" / source["file"]).exists():
            return True
        return all(_installed(package) for package, _ in catalog.embedded_parts(source))
    if "embedded" in source:
        return _installed(source["embedded"])
    if "path" in source:
        return Path(source["path"]).expanduser().exists()
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(source["hub"], source.get("file", "config.json"))
    return isinstance(found, str)


def _installed(package: str) -> bool:
    try:
        catalog._package_dir(package)
    except catalog.ModelFileError:
        return False
    return True


def weights_gb(spec: catalog.ModelSpec, backend: str, quantization: str, device: str) -> float | None:
    """The weights' size in GB (1e9 bytes) as loaded: parameters x bits per weight (quantization.yaml)."""
    from shared.speed import roofline

    params_b = spec.params_b or (spec.architecture or {}).get("params_total_b")
    if not params_b:
        return None
    if backend == "llama_cpp":
        key = spec.quantization
    else:
        key = {"8bit": "bnb-8bit", "4bit": "bnb-4bit"}.get(quantization, "fp16" if device == "cuda" else "fp32")
    try:
        bpw = roofline.quantization(key).bpw
    except Exception:
        return None
    return params_b * bpw / 8


def available_gb(device: str) -> float | None:
    """Memory the weights can go to: MemAvailable for the CPU, the largest GPU's total memory
    for CUDA (a device_map spreads a model, so the sum of all GPUs when there are several)."""
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            return None
        return sum(torch.cuda.get_device_properties(i).total_memory
                   for i in range(torch.cuda.device_count())) / 1e9
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024 / 1e9
    except OSError:
        pass
    return None


def cuda_missing() -> str | None:
    """None when torch sees a CUDA device, else what torch says."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if torch.cuda.is_available():
        return None
    return f"torch {torch.__version__} sees no CUDA device"


def problems(iteration: Path, names: list[str], sections: dict) -> list[str]:
    """What stops the job on this machine, one line per kind (empty: it can run)."""
    todo = configs(iteration, names, sections)
    lines = []
    cuda = [c for c in todo if c.device == "cuda"]
    if cuda and (why := cuda_missing()):
        notebooks = sorted({c.notebook for c in cuda}, key=names.index)
        lines.append(f"no CUDA device ({why}): {len(cuda)} configurations of {', '.join(notebooks)} "
                     "ask for device cuda")
    bad, absent, too_big, seen = [], {}, [], set()
    for c in todo:
        if (c.model, c.backend, c.quantization, c.device) in seen:
            continue
        seen.add((c.model, c.backend, c.quantization, c.device))
        try:
            spec = catalog.get(c.model)
        except LabError as e:
            bad.append(f"{c.notebook}: {e}")
            continue
        try:
            loading.check(spec, c.backend, c.quantization)
            loading.device_options(c.backend, c.device)
        except LabError as e:
            bad.append(f"{c.notebook}: {c.model} {c.backend} {c.quantization}: {e}")
            continue
        if spec.name not in absent and not on_machine(spec):
            absent[spec.name] = spec.source.get("hub", spec.source)
        need, have = weights_gb(spec, c.backend, c.quantization, c.device), available_gb(c.device)
        if need and have and need > have:
            too_big.append(f"{c.model} {c.backend} {c.quantization} ({need:.1f} GB of weights)")
    if absent and (why := hub_reachable()):
        lines.append(f"not on this machine (package, cache, path or local hub cache) and the hub "
                     f"cannot be reached ({why}): {len(absent)} models: "
                     + ", ".join(f"{name} ({hub})" for name, hub in absent.items()))
    if too_big:
        lines.append(f"weights larger than the memory available here: {'; '.join(too_big)}")
    lines += dict.fromkeys(bad)  # an unknown model once, not once per backend
    return lines


def check(iteration: Path, names: list[str], sections: dict, params: str) -> None:
    """LabError with every problem, before the first configuration starts."""
    found = problems(iteration, names, sections)
    if found:
        raise LabError(f"pre-flight for --params {params}: this machine cannot run the job, nothing "
                       f"was run:\n  - " + "\n  - ".join(found))
