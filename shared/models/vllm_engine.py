"""The vLLM backend: batches of prompts through vLLM's engine (continuous batching, paged KV).

    lm = loading.load("qwen2.5-coder-1.5b-instruct", "vllm", n_threads=2)
    [(new_ids, "eos" | "length"), ...] = lm.generate_batch([ids1, ids2, ...], max_new_tokens=32)

vLLM (0.32) does not read GGUF files: a catalog GGUF entry is converted once into a transformers
folder by shared.models.hf.convert_gguf (the same cached folder the transformers backend loads, fp32
safetensors) and vLLM casts it to `dtype` (default_dtype: float16 on CUDA, float32 on a CPU
without bf16 instructions, as the AVX2 EPYC; bfloat16 where it has them, as the Xeon). Hugging Face ids and folders load as they are.

The token rules are the lab's (shared.models.tokens), on the model's transformers tokenizer
(hf.TokenizerRules): the lab tokenizes and hands vLLM token ids, so prompts are literal text
and the ids equal the other backends'; the stop set is the same (from the GGUF vocabulary where
the model came from one) and goes to vLLM as stop_token_ids; a forced length bans it with
min_tokens, as transformers' min_new_tokens does; greedy is temperature 0, and vLLM's own
defaults from generation_config.json are not read (generation_config="vllm"); decoding is the
lab's (whole characters).

vLLM is installed in its own environment (`make setup VLLM=1`: .venv-vllm, see shared.models.envs), so
this module is imported only there. On a CPU, vLLM's own defaults are changed where this
machine needs it, each overridable by its environment variable or option:
- VLLM_CPU_OMP_THREADS_BIND: all `n_threads` cores ("0-1" here); by default vLLM leaves one
  core to the rest of the process, which halved throughput on 2 cores (issue #16's trial).
- VLLM_CPU_KVCACHE_SPACE: `kv_cache_gib` (default 1 GiB: 18k tokens of Qwen2.5-1.5B's KV in
  fp32, 28 layers x 2 (K, V) x 2 KV heads x 128 x 4 bytes = 56 KiB a token; a batch of 32
  prompts of 300 tokens + 64 new needs 11.6k).
- VLLM_ENABLE_V1_MULTIPROCESSING=0: the engine runs in this process (no second process
  spinning on 2 cores; a crash stays within the lab's isolated child).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from shared import machine
from shared.models import catalog, tokens
from shared.models.hf import TokenizerRules, transformers_folder
from shared.models.model import LoadedModel
from shared.models.timing import BatchTimedOutput, TimedOutput, clock

DEFAULT_KV_CACHE_GIB = 1
DEFAULT_MAX_MODEL_LEN = 4096  # as llama.cpp's n_ctx default in shared/models/llamacpp.py


def _cuda() -> bool:
    import torch
    return torch.cuda.is_available()


def cpu_bf16() -> bool:
    """Whether this CPU computes in bfloat16 natively (AVX512-BF16 or AMX-BF16 in its flags)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return "avx512_bf16" in flags or "amx_bf16" in flags


def default_dtype(cuda: bool) -> str:
    """float16 on CUDA (Kaggle's T4 and P100 have no bfloat16); on a CPU bfloat16 where it has
    bf16 instructions, else float32: without them vLLM 0.32's CPU backend falls back from
    oneDNN to a plain torch bf16 matmul ("Failed to create oneDNN linear"), and measured here
    (AMD EPYC, AVX2 only, 2 cores) SmolLM2-135M took 38 s for 8 prompts of 300 tokens + 16 new
    in bfloat16 against 5.5 s in float32."""
    return "float16" if cuda else ("bfloat16" if cpu_bf16() else "float32")


class VLLMModel(TokenizerRules, LoadedModel):
    backend = "vllm"

    def __init__(self, spec, llm, tokenizer, load_s, from_cache, gguf_path, settings: dict):
        import vllm
        self.spec, self.name, self.llm, self.load_s, self.from_cache = spec, spec.name, llm, load_s, from_cache
        self.quantization = settings["quantization"] or "none"
        self.dtype = settings["dtype"]
        self.on_cuda = settings["device"] == "cuda"
        self.device = settings["device"] if not self.on_cuda else f"cuda x{settings['tensor_parallel_size']}"
        self.n_threads = settings["n_threads"] if not self.on_cuda else None
        short = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}.get(self.dtype, self.dtype)
        self.runtime = f"vLLM {short}" if self.quantization == "none" else f"vLLM {self.quantization}"
        config = llm.llm_engine.model_config
        self.context_length = config.max_model_len
        self._settings = {**settings, "vllm_version": vllm.__version__}
        generation_config = None
        try:
            from transformers import GenerationConfig
            generation_config = GenerationConfig.from_pretrained(settings["source"])
        except Exception:  # a model without generation_config.json: the tokenizer's eos only
            pass
        self._init_tokens(tokenizer, config.get_vocab_size(), gguf_path, generation_config)

    def options(self) -> dict:
        s = self._settings
        return {"vllm_version": s["vllm_version"], "vllm_tensor_parallel_size": s["tensor_parallel_size"],
                "vllm_max_model_len": self.context_length, "vllm_enforce_eager": s["enforce_eager"],
                "vllm_gpu_memory_utilization": s["gpu_memory_utilization"] if self.on_cuda else None,
                "vllm_kv_cache_gib": s["kv_cache_gib"] if not self.on_cuda else None,
                "vllm_cpu_omp_threads_bind": os.environ.get("VLLM_CPU_OMP_THREADS_BIND") if not self.on_cuda else None,
                "vllm_enable_prefix_caching": s["enable_prefix_caching"], "vllm_quantization": s["quantization"]}

    def _sampling(self, max_new_tokens: int, force_length: bool):
        from vllm import SamplingParams
        # min_tokens masks the stop set (stop_token_ids and the model's EOS) until max_new_tokens
        return SamplingParams(temperature=0.0, max_tokens=max_new_tokens,
                              min_tokens=max_new_tokens if force_length else 0,
                              stop_token_ids=sorted(self.eos_ids), detokenize=False)

    def timed_generate_batch(self, batch_ids, max_new_tokens, force_length) -> BatchTimedOutput:
        """All prompts handed to vLLM at once; new ids in input order, each ending with the stop
        token when it stopped on one. Time to first token per request from vLLM's own metrics
        (its first-token and arrival times) where it keeps them, else None."""
        from vllm.inputs import TokensPrompt
        prompts = [TokensPrompt(prompt_token_ids=list(ids)) for ids in batch_ids]
        params = self._sampling(max_new_tokens, force_length)
        t_start = clock()
        wall0 = time.time()
        outs = self.llm.generate(prompts, params, use_tqdm=False)
        t_end = clock()
        new, ttft = [], []
        for out in outs:
            seq = out.outputs[0]
            ids = list(seq.token_ids)
            if seq.finish_reason == "stop" and ids and ids[-1] not in self.eos_ids:
                # vLLM stopped on a token it left out of the output; the lab keeps it
                stop = seq.stop_reason if isinstance(seq.stop_reason, int) else None
                if stop is not None:
                    ids.append(stop)
            new.append(ids)
            ttft.append(_first_token_s(out, wall0))
        return BatchTimedOutput(new_ids=new, t_start=t_start, t_end=t_end, ttft_s=ttft)

    def timed_generate(self, input_ids, max_new_tokens, force_length, batch_size) -> TimedOutput:
        """One prompt (`batch_size` copies of it in one vLLM batch); its prefill end is its first
        token as vLLM's metrics time it (else the call's end)."""
        input_ids = tokens.check_ids(input_ids, self.n_vocab)
        out = self.timed_generate_batch([input_ids] * batch_size, max_new_tokens, force_length)
        first = out.ttft_s[0]
        t_first = out.t_start + first if first is not None else out.t_end
        return TimedOutput(new_ids=out.new_ids[0], t_start=out.t_start, t_first=t_first, t_end=out.t_end)

    def close(self):
        engine = getattr(self.llm, "llm_engine", None)
        core = getattr(engine, "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()
        del self.llm
        import gc
        gc.collect()


def _first_token_s(out, wall0: float) -> float | None:
    """Seconds from `wall0` (time.time() when the batch was handed over) to the request's first
    token: its arrival (a wall-clock time) plus vLLM's first_token_latency (vllm/v1/metrics/
    stats.py, RequestStateStats: arrival to the engine step that produced the first token).
    None when vLLM kept no metrics (disable_log_stats)."""
    metrics = getattr(out, "metrics", None)
    latency = getattr(metrics, "first_token_latency", None)
    arrival = getattr(metrics, "arrival_time", None)
    if not latency or not arrival:
        return None
    return (arrival - wall0) + latency


def _env_default(name: str, value) -> None:
    if value is not None and name not in os.environ:
        os.environ[name] = str(value)


def load(spec: catalog.ModelSpec, n_threads: int | None = None, dtype: str | None = None,
         max_model_len: int | None = None, tensor_parallel_size: int = 1,
         gpu_memory_utilization: float = 0.9, kv_cache_gib: float | None = None,
         enforce_eager: bool = True, enable_prefix_caching: bool = True,
         quantization: str | None = None, device: str | None = None, seed: int = 0) -> VLLMModel:
    """Start a vLLM engine for `spec`. Options (recorded in every row, see VLLMModel.options):

    dtype: "float32", "bfloat16", "float16" (default: default_dtype).
    max_model_len: context in tokens (default: the model's, at most 4096).
    tensor_parallel_size: GPUs to split each layer over (2 on Kaggle's 2xT4).
    gpu_memory_utilization: share of each GPU's memory vLLM may take (weights + KV), CUDA only.
    kv_cache_gib: the CPU's KV space in GiB (VLLM_CPU_KVCACHE_SPACE; default 1).
    enforce_eager: no torch.compile / CUDA graphs (True: start-up 40 s instead of 100 s here,
        and the compiled cache did not reload in issue #16's trial).
    enable_prefix_caching: keep KV blocks of shared prompt prefixes (few-shot preambles).
    quantization: a hub checkpoint's method ("awq", "gptq"), None for full-precision weights.
    device: "cpu" or "cuda" (default: cuda where torch sees one).
    n_threads: CPU cores the engine binds (default all).
    """
    cuda = _cuda() if device is None else device == "cuda"
    if quantization in (None, "none") and spec.quantization in ("awq", "gptq"):
        quantization = spec.quantization  # a catalog entry quantized on the hub (models.yaml)
    device = "cuda" if cuda else "cpu"
    n_threads = n_threads or machine.usable_cpus()  # the CPUs this process may use
    dtype = dtype or default_dtype(cuda)
    if not cuda:
        _env_default("VLLM_CPU_OMP_THREADS_BIND", f"0-{n_threads - 1}" if n_threads > 1 else "0")
        _env_default("VLLM_CPU_KVCACHE_SPACE", kv_cache_gib or DEFAULT_KV_CACHE_GIB)
    _env_default("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    t0 = time.perf_counter()  # a first load includes the GGUF conversion
    source, from_cache, gguf_path = transformers_folder(spec)
    from transformers import AutoTokenizer
    from vllm import LLM
    max_len = max_model_len or min(spec.context_length or DEFAULT_MAX_MODEL_LEN, DEFAULT_MAX_MODEL_LEN)
    kwargs = dict(model=str(source), tokenizer=str(source), dtype=dtype, max_model_len=max_len,
                  tensor_parallel_size=tensor_parallel_size, enforce_eager=enforce_eager,
                  enable_prefix_caching=enable_prefix_caching, seed=seed,
                  generation_config="vllm", disable_log_stats=False)
    if cuda:
        kwargs["gpu_memory_utilization"] = gpu_memory_utilization
    if quantization not in (None, "none"):
        kwargs["quantization"] = quantization
    llm = LLM(**kwargs)
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    settings = {"quantization": None if quantization in (None, "none") else quantization,
                "dtype": dtype, "device": device, "n_threads": n_threads,
                "tensor_parallel_size": tensor_parallel_size, "enforce_eager": enforce_eager,
                "gpu_memory_utilization": gpu_memory_utilization,
                "kv_cache_gib": float(os.environ.get("VLLM_CPU_KVCACHE_SPACE", DEFAULT_KV_CACHE_GIB)),
                "enable_prefix_caching": enable_prefix_caching, "source": str(source)}
    return VLLMModel(spec, llm, tokenizer, time.perf_counter() - t0, from_cache, gguf_path, settings)
