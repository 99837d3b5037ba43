"""Load a model by catalog name or path, through transformers or llama.cpp, behind one interface.

    lm = load("smollm2-135m-instruct", backend="llama_cpp", n_threads=2)
    lm = load("mistral-7b-instruct-v0.2", quantization="4bit", device_map="auto")

Every argument is checked before any weights are read: an unknown name lists the catalog, a
quantization the backend cannot do says which can, a missing or corrupt file says what to fix.
"""
from __future__ import annotations

from typing import Sequence

from . import catalog
from .catalog import LabError

BACKENDS = ("transformers", "llama_cpp")
HF_QUANTIZATIONS = ("none", "8bit", "4bit")  # bitsandbytes: LLM.int8 and nf4 with double quant


class UnsupportedQuantizationError(LabError):
    pass


class LoadedModel:
    """A loaded model with what the timing code needs; subclassed per backend."""
    name: str
    backend: str
    runtime: str
    quantization: str
    dtype: str
    device: str
    n_threads: int | None = None
    n_gpu_layers: int | None = None
    flash_attn: bool | None = None   # llama.cpp context options; None where they do not apply
    n_batch: int | None = None
    n_ubatch: int | None = None
    context_length: int | None
    eos_ids: set[int]
    load_s: float
    from_cache: bool = False
    on_cuda: bool = False
    spec: catalog.ModelSpec

    @property
    def has_chat_template(self) -> bool:
        """Whether encode(messages=...) works; base models take a raw prompt only."""
        raise NotImplementedError

    def encode(self, prompt: str | None = None, messages: Sequence[dict] | None = None) -> list[int]:
        raise NotImplementedError

    def decode(self, ids: Sequence[int]) -> str:
        raise NotImplementedError

    def timed_generate(self, input_ids: list[int], max_new_tokens: int, force_length: bool,
                       batch_size: int):
        raise NotImplementedError

    def close(self) -> None:
        """Free the weights now (benchmarks load one model after another)."""


def check(spec: catalog.ModelSpec, backend: str, quantization: str) -> None:
    if backend not in BACKENDS:
        raise LabError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "transformers" and quantization not in HF_QUANTIZATIONS:
        raise UnsupportedQuantizationError(
            f"transformers cannot do quantization {quantization!r}; choose one of "
            f"{', '.join(HF_QUANTIZATIONS)} (bitsandbytes), or use backend='llama_cpp' with a GGUF entry")
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


def device_options(backend: str, device: str = "cpu", n_threads: int | None = None,
                   dtype: str | None = None) -> dict:
    """The backend's options that put the whole model on `device` ("cpu" or "cuda")."""
    if device not in ("cpu", "cuda"):
        raise LabError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if backend == "llama_cpp":
        return {"n_threads": n_threads, "n_gpu_layers": -1 if device == "cuda" else 0}
    return {"n_threads": n_threads, "dtype": dtype or None,
            "device_map": "auto" if device == "cuda" else "cpu"}


def load(model: str, backend: str = "transformers", quantization: str = "none", **options) -> LoadedModel:
    """Load `model` (catalog name or local path). Options go to the backend:

    transformers: dtype ("float32", "float16", "bfloat16"; default float16 on CUDA, float32 on
    CPU), device_map ("auto", "cpu", "cuda:0" or an explicit {module: device} map), n_threads.
    llama_cpp: n_threads, n_threads_batch, n_gpu_layers (-1 = all), n_ctx, flash_attn, n_batch,
    n_ubatch (unset: llama-bench's defaults, see llamacpp.LLAMA_BENCH_DEFAULTS).
    """
    spec = catalog.get(model)
    check(spec, backend, quantization)
    if backend == "transformers":
        from . import hf
        return hf.load(spec, quantization=quantization, **options)
    from . import llamacpp
    return llamacpp.load(spec, **options)
