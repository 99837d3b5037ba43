"""Load a model by catalog name or path, through transformers, llama.cpp or vLLM, behind one interface.

    lm = load("smollm2-135m-instruct", backend="llama_cpp", n_threads=2)
    lm = load("mistral-7b-instruct-v0.2", quantization="4bit", device_map="auto")

Every argument is checked before any weights are read: an unknown name lists the catalog, a
quantization the backend cannot do says which can, a missing or corrupt file says what to fix.
"""
from __future__ import annotations

import functools
import sys

from shared.models import catalog, timing
from shared.errors import LabError, UnsupportedQuantizationError
from shared.models.model import LoadedModel, check_batch, stop_reason  # noqa: F401  (the interface, still loading.*)

BACKENDS = ("transformers", "llama_cpp", "vllm")
# What LoadedModel.generate_batch does with several prompts, per backend: transformers overrides
# it (one generate call, left padding), vLLM overrides timed_generate_batch (continuous batching);
# a backend not named here answers them one at a time (the interface's default loop).
BATCHES = {"transformers": "decodes them together (one generate call, left padding)",
           "vllm": "schedules them together (continuous batching)"}
HF_QUANTIZATIONS = ("none", "8bit", "4bit")  # bitsandbytes: LLM.int8 and nf4 with double quant
VLLM_QUANTIZATIONS = ("none", "awq", "gptq")  # checkpoints quantized that way on the hub
VLLM_MIN_CAPABILITY = (7, 0)  # vLLM's GPU requirement (docs: compute capability 7.0 or higher)



def check(spec: catalog.ModelSpec, backend: str, quantization: str) -> None:
    if backend not in BACKENDS:
        raise LabError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "transformers" and quantization not in HF_QUANTIZATIONS:
        raise UnsupportedQuantizationError(
            f"transformers cannot do quantization {quantization!r}; choose one of "
            f"{', '.join(HF_QUANTIZATIONS)} (bitsandbytes), or use backend='llama_cpp' with a GGUF entry")
    if backend == "vllm":
        if quantization not in VLLM_QUANTIZATIONS:
            raise UnsupportedQuantizationError(
                f"vLLM runs {', '.join(VLLM_QUANTIZATIONS)} here, not {quantization!r}: a hub checkpoint "
                "quantized with AWQ or GPTQ, or full-precision weights")
        if spec.format == "gguf" and quantization != "none":
            raise UnsupportedQuantizationError(
                f"{spec.name} is a GGUF file, which the vllm backend loads converted to full precision; "
                f"{quantization!r} needs a hub checkpoint quantized that way")
    if backend == "llama_cpp":
        if spec.format != "gguf":
            raise UnsupportedQuantizationError(
                f"{spec.name} is in transformers format; llama.cpp needs a GGUF file. Use a GGUF "
                "entry of the catalog (e.g. one ending in -q4_k_m) or backend='transformers'")
        if quantization not in ("none", spec.quantization):
            raise UnsupportedQuantizationError(
                f"llama.cpp runs the quantization stored in the GGUF file ({spec.quantization} for "
                f"{spec.name}); it cannot apply {quantization!r}. Pick the catalog entry with that "
                "quantization, or backend='transformers' for bitsandbytes 8bit/4bit")


DEVICES = ("auto", "cpu", "cuda")


def gpu_available(backend: str) -> tuple[bool, str]:
    """Whether `backend` can run on a GPU here, and what it sees (or why not), without loading a
    model: llama.cpp asks its build (llama_supports_gpu_offload: a GPU backend compiled in and a
    device found), transformers asks torch (torch.cuda.is_available)."""
    if backend == "llama_cpp":
        import llama_cpp
        if llama_cpp.llama_supports_gpu_offload():
            return True, "llama.cpp offloads to a GPU"
        return False, ("this llama-cpp-python build sees no GPU (build it with "
                       "LLAMA_CMAKE_ARGS=\"-DGGML_CUDA=on\" make setup on a machine with CUDA)")
    import torch
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if backend == "vllm":  # vLLM's CUDA kernels need compute capability 7.0 (Volta) or newer
            old = [f"{n} ({'.'.join(map(str, torch.cuda.get_device_capability(i)))})"
                   for i, n in enumerate(names) if torch.cuda.get_device_capability(i) < VLLM_MIN_CAPABILITY]
            if old:
                return False, (f"vLLM needs CUDA compute capability 7.0 or newer, and {', '.join(old)} is "
                               "older (Kaggle's P100 is 6.0): use backend llama_cpp built with CUDA there")
        return True, f"torch sees {len(names)} CUDA device(s): {', '.join(names)}"
    return False, f"torch {torch.__version__} sees no CUDA device"


def resolve_device(backend: str, device: str = "auto") -> tuple[str, str]:
    """("cpu" or "cuda", a note) for a requested device of DEVICES, before any model loads.

    auto: CUDA when the backend sees a GPU (gpu_available), else the CPU, and the note says so.
    cuda without a GPU is a LabError saying what is missing.
    """
    if device not in DEVICES:
        raise LabError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "cpu":
        return "cpu", "device cpu"
    if backend not in BACKENDS:
        raise LabError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    ok, seen = gpu_available(backend)
    if device == "cuda" and not ok:
        raise LabError(f"device cuda asked for, but {seen}; use device cpu (or auto)")
    if ok:
        return "cuda", f"device {device}: {seen}"
    return "cpu", f"device auto: no GPU ({seen}); running on the CPU"


def device_options(backend: str, device: str = "cpu", n_threads: int | None = None,
                   dtype: str | None = None) -> dict:
    """The backend's options that put the whole model on `device` ("cpu" or "cuda").

    llama.cpp: n_gpu_layers -1 (every layer) on CUDA, 0 on the CPU. transformers: device_map
    "auto" on CUDA, which accelerate spreads evenly over every visible GPU (its default
    "balanced" map; the seed split Gemma over Kaggle's 2xT4 by hand), "cpu" on the CPU; dtype
    None takes hf.load's default (float16 on CUDA, float32 on the CPU).
    """
    if device not in ("cpu", "cuda"):
        raise LabError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if backend == "llama_cpp":
        return {"n_threads": n_threads, "n_gpu_layers": -1 if device == "cuda" else 0}
    if backend == "vllm":  # on CUDA every visible GPU, as device_map="auto" for transformers
        opts = {"n_threads": n_threads, "dtype": dtype or None, "device": device}
        if device == "cuda":
            import torch
            opts["tensor_parallel_size"] = max(1, torch.cuda.device_count())
        return opts
    return {"n_threads": n_threads, "dtype": dtype or None,
            "device_map": "auto" if device == "cuda" else "cpu"}


def load(model: str, backend: str = "transformers", quantization: str = "none", **options) -> LoadedModel:
    """Load `model` (catalog name or local path). Options go to the backend:

    transformers: dtype ("float32", "float16", "bfloat16"; default float16 on CUDA, float32 on
    CPU), device_map ("auto", "cpu", "cuda:0" or an explicit {module: device} map), n_threads.
    llama_cpp: n_threads, n_threads_batch, n_gpu_layers (-1 = all), n_ctx, flash_attn, n_batch,
    n_ubatch (unset: llama-bench's defaults, see llamacpp.LLAMA_BENCH_DEFAULTS).
    vllm: n_threads, dtype, max_model_len, tensor_parallel_size, gpu_memory_utilization,
    kv_cache_gib, enforce_eager, enable_prefix_caching, device (see vllm_engine.load); only in a
    Python with vLLM (shared.models.envs: .venv-vllm), LabError saying so elsewhere.
    """
    spec = catalog.get(model)
    check(spec, backend, quantization)
    # the backend's libraries (torch and transformers, or llama_cpp) are imported before the
    # first RSS reading: they are not the model
    if backend == "transformers":
        from shared.models import hf
        load_backend = functools.partial(hf.load, quantization=quantization)
    elif backend == "vllm":
        from shared.models import envs
        if not envs.importable("vllm"):
            raise LabError(f"vLLM is not importable in {sys.executable}: it lives in its own environment "
                           f"({envs.vllm_python()}, `make setup VLLM=1`). experiment.run and "
                           "`python -m shared submit --backend vllm` start it there themselves; "
                           "elsewhere run your script with that Python")
        import vllm  # noqa: F401
        from shared.models import vllm_engine
        load_backend = functools.partial(vllm_engine.load, quantization=quantization)
    else:
        import llama_cpp  # noqa: F401
        from shared.models import llamacpp
        load_backend = llamacpp.load
    before = timing.rss_mb()
    lm = load_backend(spec, **options)
    lm.rss_before_load_mb, lm.rss_after_load_mb = before, timing.rss_mb()
    return lm
