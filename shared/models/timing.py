"""Timed generation: one call, one GenerationRecord, the same fields for every backend.

Rules (llama-bench, optimum-benchmark): tokenization stays outside the timed region; prefill
(time to first token) and decode are reported apart; CUDA is synchronized before a clock is
read; warm-up calls are recorded but marked (phase="warmup") and left out of summaries; peak
memory is tracked per call (process RSS, CUDA allocated and reserved), next to the RSS before
and after the model was loaded, so the model's share can be told from the process total.
"""
from __future__ import annotations

import dataclasses
import resource
import time
from pathlib import Path
from typing import Sequence

from tqdm.auto import tqdm

from shared import machine
from shared.models import tokens
from shared.errors import LabError
from shared.machine import DATA



@dataclasses.dataclass
class GenerationRecord:
    model: str
    backend: str                 # transformers | llama_cpp
    runtime: str                 # what the seed's table calls the column: "llama.cpp Q4_1", "transformers 4bit"
    quantization: str            # none | 8bit | 4bit | the GGUF type for llama.cpp
    dtype: str
    device: str
    n_threads: int | None
    n_gpu_layers: int | None
    flash_attn: bool | None      # llama.cpp context options (None for transformers)
    n_batch: int | None          # llama.cpp logical batch: prompt tokens per decode call
    n_ubatch: int | None         # llama.cpp physical batch: tokens per compute graph
    batch_size: int
    input_tokens: int            # per sequence, counted by the model's tokenizer
    output_tokens: int           # new tokens per sequence, EOS included when it stopped there
    max_new_tokens: int
    force_length: bool           # True: EOS ignored, exactly max_new_tokens generated
    prefill_s: float             # call start to first new token (prompt processing + 1 step)
    decode_s: float              # first new token to last
    decode_tok_s: float          # (output_tokens - 1) / decode_s, per sequence
    total_s: float
    throughput_tok_s: float      # batch_size * output_tokens / total_s
    stop_reason: str             # eos | length
    eos_ids: list[int]           # the end-of-generation ids it stops on, sorted (shared.models.tokens); a forced length bans them
    peak_rss_mb: float           # process RSS high-water mark during the call
    rss_before_load_mb: float | None  # process RSS just before the model was loaded
    rss_after_load_mb: float | None   # and just after (llama.cpp: mmapped weights count once touched)
    model_rss_mb: float | None   # after - before: the loaded model's share of the process
    cuda_max_allocated_mb: float | None
    cuda_max_reserved_mb: float | None
    text: str
    phase: str = "timed"         # warmup | timed
    rep: int = 0
    reused_tokens: int = 0       # prompt tokens whose KV state was kept from the call before (reuse_prefix)
    options: dict = dataclasses.field(default_factory=dict)  # the backend's own options (LoadedModel.options), flat in the row

    def row(self, **extra) -> dict:
        """A flat result row: the record, the machine and versions, and any extra parameters."""
        fields = dataclasses.asdict(self)
        return {**fields, **fields.pop("options"), **machine.info(), **extra}


def _proc_status_mb(field: str) -> float | None:
    """A memory field of /proc/self/status ("VmRSS", "VmHWM") in MiB; None without /proc."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def rss_mb() -> float | None:
    """The process's resident set size now, in MiB (Linux /proc; None elsewhere). It counts the
    pages of a memory-mapped file only once they have been touched."""
    return _proc_status_mb("VmRSS")


class PeakMemory:
    """Peak memory of the enclosed block: RSS high-water mark, and CUDA stats when on a GPU.

    On Linux the RSS high-water mark is reset through /proc/self/clear_refs, so each call gets
    its own peak; elsewhere it falls back to the process-lifetime peak (ru_maxrss).
    """

    def __init__(self, cuda: bool = False):
        self.cuda = cuda
        self.rss_mb = 0.0
        self.cuda_allocated_mb = self.cuda_reserved_mb = None

    @staticmethod
    def _hwm_mb() -> float:
        hwm = _proc_status_mb("VmHWM")
        return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def __enter__(self):
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass
        if self.cuda:
            import torch
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        return self

    def __exit__(self, *exc):
        self.rss_mb = self._hwm_mb()
        if self.cuda:
            import torch
            torch.cuda.synchronize()
            self.cuda_allocated_mb = torch.cuda.max_memory_allocated() / 2**20
            self.cuda_reserved_mb = torch.cuda.max_memory_reserved() / 2**20
        return False


def generate(lm, prompt: str | None = None, messages: Sequence[dict] | None = None,
             input_ids: Sequence[int] | None = None, max_new_tokens: int = 64,
             force_length: bool = False, batch_size: int = 1,
             phase: str = "timed", rep: int = 0, reuse_prefix: bool = False) -> GenerationRecord:
    """Generate greedily from a prompt (raw text), chat messages or token ids and time it.

    Stops at EOS unless `force_length`, which generates exactly `max_new_tokens` (speed runs).
    `lm` is what shared.models.loading.load returns. reuse_prefix (llama.cpp only): keep the KV state of
    the prefix shared with the previous call; prefill_s then covers only the rest.
    """
    if reuse_prefix and lm.backend != "llama_cpp":
        raise LabError(f"reuse_prefix is implemented for the llama_cpp backend only, not {lm.backend}")
    tokens.check_input(prompt, messages, input_ids)  # an empty input is refused before any compute
    if max_new_tokens < 1:
        raise LabError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    if input_ids is None:
        input_ids = lm.encode(prompt=prompt, messages=messages)  # outside the timed region
    input_ids = tokens.check_ids(input_ids, getattr(lm, "n_vocab", None))
    lm.check_context(len(input_ids), max_new_tokens)
    with PeakMemory(cuda=lm.on_cuda) as mem:
        out = lm.timed_generate(input_ids, max_new_tokens, force_length, batch_size,
                                **({"reuse_prefix": True} if reuse_prefix else {}))
    n_out = len(out.new_ids)
    stopped = not force_length and n_out > 0 and out.new_ids[-1] in lm.eos_ids
    decode_s = out.t_end - out.t_first
    total_s = out.t_end - out.t_start
    return GenerationRecord(
        model=lm.name, backend=lm.backend, runtime=lm.runtime, quantization=lm.quantization,
        dtype=lm.dtype, device=lm.device, n_threads=lm.n_threads, n_gpu_layers=lm.n_gpu_layers,
        flash_attn=lm.flash_attn, n_batch=lm.n_batch, n_ubatch=lm.n_ubatch,
        batch_size=batch_size, input_tokens=len(input_ids), output_tokens=n_out,
        max_new_tokens=max_new_tokens, force_length=force_length,
        prefill_s=out.t_first - out.t_start, decode_s=decode_s,
        decode_tok_s=(n_out - 1) / decode_s if n_out > 1 and decode_s > 0 else float("nan"),
        total_s=total_s, throughput_tok_s=batch_size * n_out / total_s,
        stop_reason="eos" if stopped else "length", eos_ids=sorted(lm.eos_ids),
        peak_rss_mb=mem.rss_mb, rss_before_load_mb=lm.rss_before_load_mb,
        rss_after_load_mb=lm.rss_after_load_mb, model_rss_mb=lm.model_rss_mb,
        cuda_max_allocated_mb=mem.cuda_allocated_mb,
        cuda_max_reserved_mb=mem.cuda_reserved_mb, text=lm.decode(out.new_ids),
        phase=phase, rep=rep, reused_tokens=out.reused_tokens, options=lm.options())


def benchmark(lm, prompt: str | None = None, messages: Sequence[dict] | None = None,
              input_ids: Sequence[int] | None = None, max_new_tokens: int = 64,
              force_length: bool = True, batch_size: int = 1, repetitions: int = 3, warmup: int = 1,
              progress: bool = False) -> list[GenerationRecord]:
    """`warmup` untimed-for-summary calls, then `repetitions` timed calls, every one recorded."""
    records = []
    steps = [("warmup", i) for i in range(warmup)] + [("timed", i) for i in range(repetitions)]
    for phase, rep in tqdm(steps, desc=f"{lm.name} {lm.runtime}", disable=not progress, leave=False):
        records.append(generate(lm, prompt=prompt, messages=messages, input_ids=input_ids,
                                max_new_tokens=max_new_tokens,
                                force_length=force_length, batch_size=batch_size, phase=phase, rep=rep))
    return records


def filler_ids(lm, n_tokens: int, text: str | None = None) -> list[int]:
    """Exactly `n_tokens` prompt tokens of real prose (the lab's own validation texts by
    default), for speed runs at a controlled input length."""
    if text is None:
        import yaml
        sources = yaml.safe_load((DATA / "validation_sources.yaml").read_text())
        text = "\n\n".join(t["text"] for t in sources["texts"])
    ids = lm.encode(prompt=text)
    while len(ids) < n_tokens:
        ids = ids + ids
    return ids[:n_tokens]


@dataclasses.dataclass
class BatchRecord:
    """One timed batch: `batch_size` different prompts handed to the backend at once (vllm runs
    them together; the other backends one after another), wall time from hand-over to the last
    token of the last request."""
    model: str
    backend: str                 # transformers | llama_cpp | vllm
    runtime: str
    quantization: str
    dtype: str
    device: str
    n_threads: int | None
    batch_size: int              # prompts in the batch
    input_tokens: int            # per prompt (all prompts of a batch have this length)
    output_tokens: int           # new tokens over the whole batch, EOS included where it stopped
    max_new_tokens: int
    force_length: bool           # True: EOS banned, every prompt gets exactly max_new_tokens
    wall_s: float                # batch start to its last token
    samples_s: float             # batch_size / wall_s
    output_tok_s: float          # output_tokens / wall_s
    ttft_median_s: float | None  # median over the requests of batch start -> its first token
    ttft_max_s: float | None     # (one at a time, the requests before count; None where unknown)
    n_length: int                # requests that ended at max_new_tokens (the others at EOS)
    peak_rss_mb: float
    load_s: float                # the model's load (vllm: engine start-up, compile and KV set-up)
    phase: str = "timed"         # warmup | timed
    rep: int = 0
    text: str = ""               # the first request's answer
    options: dict = dataclasses.field(default_factory=dict)  # LoadedModel.options, flat in the row

    def row(self, **extra) -> dict:
        fields = dataclasses.asdict(self)
        return {**fields, **fields.pop("options"), **machine.info(), **extra}


def generate_batch(lm, batch_ids: Sequence[Sequence[int]], max_new_tokens: int = 64,
                   force_length: bool = False, phase: str = "timed", rep: int = 0) -> BatchRecord:
    """Time one batch of token-id prompts on `lm` (greedy). Every prompt is checked (ids, the
    context) before any compute; LabError / ContextTooLongError say which one is wrong."""
    if max_new_tokens < 1:
        raise LabError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    if isinstance(batch_ids, (str, bytes)) or not len(batch_ids):
        raise LabError("batch_ids must be a non-empty list of token-id lists (one per prompt)")
    batch_ids = [tokens.check_ids(ids, getattr(lm, "n_vocab", None)) for ids in batch_ids]
    for i, ids in enumerate(batch_ids):
        lm.check_context(len(ids), max_new_tokens, f"prompt {i} of the batch")
    with PeakMemory(cuda=lm.on_cuda) as mem:
        out = lm.timed_generate_batch(batch_ids, max_new_tokens, force_length)
    wall = out.t_end - out.t_start
    n_out = sum(len(ids) for ids in out.new_ids)
    ttft = sorted(t for t in (out.ttft_s or []) if t is not None)
    lengths = {len(ids) for ids in batch_ids}
    return BatchRecord(
        model=lm.name, backend=lm.backend, runtime=lm.runtime, quantization=lm.quantization,
        dtype=lm.dtype, device=lm.device, n_threads=lm.n_threads, batch_size=len(batch_ids),
        input_tokens=max(lengths), output_tokens=n_out, max_new_tokens=max_new_tokens,
        force_length=force_length, wall_s=wall, samples_s=len(batch_ids) / wall,
        output_tok_s=n_out / wall,
        ttft_median_s=ttft[len(ttft) // 2] if ttft else None, ttft_max_s=ttft[-1] if ttft else None,
        n_length=sum(force_length or not (ids and ids[-1] in lm.eos_ids) for ids in out.new_ids),
        peak_rss_mb=mem.rss_mb, load_s=lm.load_s, phase=phase, rep=rep,
        text=lm.decode(out.new_ids[0]), options=lm.options())


def benchmark_batch(lm, n_input_tokens: int, batch_size: int, max_new_tokens: int = 64,
                    force_length: bool = True, repetitions: int = 2, warmup: int = 1,
                    text: str | None = None) -> list[BatchRecord]:
    """`warmup` + `repetitions` timed batches of `batch_size` different prompts of exactly
    `n_input_tokens` each (filler_batch); every call gets prompts no call before it had, so an
    engine's prefix cache (vLLM keeps one by default) cannot serve a repeated prompt."""
    records = []
    steps = [("warmup", i) for i in range(warmup)] + [("timed", i) for i in range(repetitions)]
    prompts = filler_batch(lm, n_input_tokens, batch_size * len(steps), text)
    for k, (phase, rep) in enumerate(steps):
        records.append(generate_batch(lm, prompts[k * batch_size:(k + 1) * batch_size],
                                      max_new_tokens, force_length, phase=phase, rep=rep))
    return records


def filler_batch(lm, n_tokens: int, n_prompts: int, text: str | None = None,
                 stride: int = 37) -> list[list[int]]:
    """`n_prompts` different prompts of exactly `n_tokens` tokens of real prose: the stream of
    filler_ids read from a different place for each (offset i * stride tokens, stride 37, so no
    two share their first tokens), each with the model's BOS where it adds one."""
    if n_tokens < 2 or n_prompts < 1:
        raise LabError(f"filler_batch needs n_tokens >= 2 and n_prompts >= 1, got {n_tokens}, {n_prompts}")
    a, b = lm.encode(prompt="a"), lm.encode(prompt="b")
    bos = a[:1] if a[:1] == b[:1] else []  # a token every encoded prompt starts with
    need = n_tokens + stride * n_prompts
    stream = filler_ids(lm, need + len(bos), text)[len(bos):]
    body = n_tokens - len(bos)
    return [bos + stream[i * stride:i * stride + body] for i in range(n_prompts)]


@dataclasses.dataclass
class BatchTimedOutput:
    """What a backend's timed_generate_batch returns: new ids per prompt (input order) and clocks."""
    new_ids: list[list[int]]
    t_start: float
    t_end: float
    ttft_s: list[float | None] | None = None  # per request: batch start -> its first token


@dataclasses.dataclass
class TimedOutput:
    """What a backend's timed_generate returns: new token ids (first sequence) and clocks."""
    new_ids: list[int]
    t_start: float
    t_first: float
    t_end: float
    reused_tokens: int = 0       # prompt tokens not prefilled again (llama.cpp reuse_prefix)


def clock() -> float:
    return time.perf_counter()
