"""Load a model by catalog name or path, through transformers or llama.cpp, behind one interface.

    lm = load("smollm2-135m-instruct", backend="llama_cpp", n_threads=2)
    lm = load("mistral-7b-instruct-v0.2", quantization="4bit", device_map="auto")

Every argument is checked before any weights are read: an unknown name lists the catalog, a
quantization the backend cannot do says which can, a missing or corrupt file says what to fix.
"""
from __future__ import annotations

import functools
from typing import Sequence

from . import catalog, timing, tokens
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

    def generate_batch(self, batch_ids: list[list[int]], max_new_tokens: int) -> list[tuple[list[int], str]]:
        """Greedy answers to several prompts: (new token ids, stop_reason) per prompt, in input order.

        batch_ids: one list of prompt token ids per prompt (lengths may differ). Each answer
        stops at the model's stop set (eos_ids, shared.tokens; the stop token is kept, as
        timed_generate keeps it) or after max_new_tokens; stop_reason is "eos" or "length".
        This default runs the prompts one by one through the backend's greedy path
        (timed_generate); a backend that can decode several sequences at once overrides it
        (transformers: left padding, one generate call). Raises LabError for an empty list, an
        empty prompt or max_new_tokens < 1, before any compute.
        """
        batch_ids = check_batch(batch_ids, max_new_tokens, getattr(self, "n_vocab", None))
        out = []
        for ids in batch_ids:
            new = self.timed_generate(ids, max_new_tokens, False, 1).new_ids
            out.append((new, stop_reason(new, self.eos_ids)))
        return out

    def close(self) -> None:
        """Free the weights now (benchmarks load one model after another)."""


def check_batch(batch_ids, max_new_tokens: int, n_vocab: int | None = None) -> list[list[int]]:
    """The prompts of generate_batch as lists of ints; LabError when the batch or a prompt is
    empty or malformed, or max_new_tokens < 1."""
    if isinstance(batch_ids, (str, bytes)) or not isinstance(batch_ids, Sequence) or not batch_ids:
        raise LabError(f"batch_ids must be a non-empty list of token-id lists, got {batch_ids!r:.80}")
    if max_new_tokens < 1:
        raise LabError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    return [tokens.check_ids(ids, n_vocab) for ids in batch_ids]


def stop_reason(new_ids: Sequence[int], eos_ids) -> str:
    """"eos" when an answer ends on a stop token, else "length" (it ran to max_new_tokens)."""
    return "eos" if new_ids and new_ids[-1] in eos_ids else "length"


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
