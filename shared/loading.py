"""Load a model by catalog name or path, through transformers or llama.cpp, behind one interface.

    lm = load("smollm2-135m-instruct", backend="llama_cpp", n_threads=2)
    lm = load("mistral-7b-instruct-v0.2", quantization="4bit", device_map="auto")

Every argument is checked before any weights are read: an unknown name lists the catalog, a
quantization the backend cannot do says which can, a missing or corrupt file says what to fix.
"""
from __future__ import annotations

import functools
from typing import Sequence

from . import catalog, timing
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
    rss_before_load_mb: float | None = None  # process RSS (MiB) just before and after load()
    rss_after_load_mb: float | None = None

    @property
    def model_rss_mb(self) -> float | None:
        """The RSS that loading added, in MiB: the model's share of the process after load().

        Both backends map their weight files (mmap), and a mapped page enters the RSS only when
        it is first read (it counts as RssFile, shared with the OS page cache, not a private
        copy). llama.cpp maps the GGUF with MAP_POPULATE (use_mmap and prefetch, its defaults),
        so the whole file counts right after loading, plus the anonymous memory of the weights
        its CPU backend repacks for faster kernels, the KV cache for n_ctx and compute buffers:
        measured here, Qwen2.5-Coder-1.5B Q4_K_M (1117 MB file) 1825 MB = 1087 file + ~740
        anonymous. transformers keeps fp32 safetensors weights as views of the mapped file,
        read at the first forward pass: SmolLM2-135M fp32 (540 MB of weights) 203 MB after
        loading, 711 MB at the peak of its first generation. The rows' peak_rss_mb minus
        rss_before_load_mb (analysis.with_model_memory) is therefore the share to compare.
        """
        if self.rss_before_load_mb is None or self.rss_after_load_mb is None:
            return None
        return self.rss_after_load_mb - self.rss_before_load_mb

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
    # the backend's libraries (torch and transformers, or llama_cpp) are imported before the
    # first RSS reading: they are not the model
    if backend == "transformers":
        from . import hf
        load_backend = functools.partial(hf.load, quantization=quantization)
    else:
        import llama_cpp  # noqa: F401
        from . import llamacpp
        load_backend = llamacpp.load
    before = timing.rss_mb()
    lm = load_backend(spec, **options)
    lm.rss_before_load_mb, lm.rss_after_load_mb = before, timing.rss_mb()
    return lm
