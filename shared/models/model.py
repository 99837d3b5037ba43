"""LoadedModel: the interface every backend implements (hf, llamacpp, vllm_engine).

It lives apart from `loading` (the dispatcher that imports the backends), so that a backend
imports only this module and no import circle runs through `loading`.

    ids = lm.encode(messages=[{"role": "user", "content": "Hi"}])
    [(new_ids, "eos" | "length"), ...] = lm.generate_batch([ids, ids2], max_new_tokens=32)
"""
from __future__ import annotations

from typing import Sequence

from shared import errors
from shared.models import catalog, tokens
from shared.models.timing import BatchTimedOutput, clock


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
    n_vocab: int | None = None
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
        rss_before_load_mb (tables.with_model_memory) is therefore the share to compare.
        """
        if self.rss_before_load_mb is None or self.rss_after_load_mb is None:
            return None
        return self.rss_after_load_mb - self.rss_before_load_mb

    @property
    def has_chat_template(self) -> bool:
        """Whether encode(messages=...) works; base models take a raw prompt only."""
        raise NotImplementedError

    def encode(self, prompt: str | None = None, messages: Sequence[dict] | None = None) -> list[int]:
        """Token ids of a raw prompt (with BOS where the model asks for one: `_encode_raw`) or of a
        chat rendered by its template (`_render`). Prompt and message contents are literal text:
        a control-token string inside them is text, never a control token (shared.models.tokens).
        LabError for messages= on a model without a chat template, or neither prompt nor messages."""
        if messages is not None:
            if not self.has_chat_template:
                raise errors.LabError(f"{self.name} has no chat template (a base model); pass prompt= (raw text)")
            return tokens.encode_chat(tokens.chat_pieces(self._render, messages), self.control, self._literal)
        if not isinstance(prompt, str):
            raise errors.LabError(f"encode needs prompt= (text) or messages= (chat), got {prompt!r:.60}")
        return self._encode_raw(prompt)

    def check_context(self, n_input: int, max_new_tokens: int, what: str = "prompt",
                      advice: str = "shorten the input or max_new_tokens") -> None:
        """ContextTooLongError, before any compute, when `n_input` tokens of `what` + `max_new_tokens`
        new ones exceed the model's context (context_length, tokens); nothing when it is unknown."""
        if self.context_length and n_input + max_new_tokens > self.context_length:
            raise errors.ContextTooLongError(
                f"{self.name}: {what} of {n_input} tokens + {max_new_tokens} new tokens exceeds the "
                f"context of {self.context_length} tokens; {advice}")

    def _literal(self, text: str) -> list[int]:
        """Token ids of `text` as text: control-token strings in it are not parsed, no BOS."""
        raise NotImplementedError

    def _encode_raw(self, prompt: str) -> list[int]:
        """Token ids of a raw prompt, with BOS where the model asks for one."""
        raise NotImplementedError

    def decode(self, ids: Sequence[int]) -> str:
        raise NotImplementedError

    def timed_generate(self, input_ids: list[int], max_new_tokens: int, force_length: bool,
                       batch_size: int):
        raise NotImplementedError

    def timed_generate_batch(self, batch_ids: list[list[int]], max_new_tokens: int,
                             force_length: bool) -> BatchTimedOutput:
        """Greedy generation for every prompt of `batch_ids` (checked token-id lists), timed as
        one job that receives all of them at once. This default runs them one at a time through
        timed_generate; a backend that batches (vllm) overrides it. The time to first token of
        request i counts from the job's start, so one at a time it includes the requests before."""
        t_start = clock()
        new, ttft = [], []
        for ids in batch_ids:
            out = self.timed_generate(ids, max_new_tokens, force_length, 1)
            new.append(out.new_ids)
            ttft.append(out.t_first - t_start)
        return BatchTimedOutput(new_ids=new, t_start=t_start, t_end=clock(), ttft_s=ttft)

    def generate_batch(self, batch_ids: list[list[int]], max_new_tokens: int) -> list[tuple[list[int], str]]:
        """Greedy answers to several prompts: (new token ids, stop_reason) per prompt, in input order.

        batch_ids: one list of prompt token ids per prompt (lengths may differ). Each answer
        stops at the model's stop set (eos_ids, shared.models.tokens; the stop token is kept, as
        timed_generate keeps it) or after max_new_tokens; stop_reason is "eos" or "length".
        This default runs timed_generate_batch (one by one unless the backend batches: vllm);
        transformers overrides it (left padding, one generate call). Raises LabError for an
        empty list, an empty prompt or max_new_tokens < 1, before any compute.
        """
        batch_ids = check_batch(batch_ids, max_new_tokens, self.n_vocab)
        out = self.timed_generate_batch(batch_ids, max_new_tokens, False)
        return [(new, stop_reason(new, self.eos_ids)) for new in out.new_ids]

    def options(self) -> dict:
        """Backend options recorded in every result row besides the common fields (flat, named
        with the backend's prefix, e.g. vllm_max_model_len); none for the first two backends."""
        return {}

    def close(self) -> None:
        """Free the weights now (benchmarks load one model after another)."""


def check_batch(batch_ids, max_new_tokens: int, n_vocab: int | None = None) -> list[list[int]]:
    """The prompts of generate_batch as lists of ints; LabError when the batch or a prompt is
    empty or malformed, or max_new_tokens < 1."""
    if isinstance(batch_ids, (str, bytes)) or not isinstance(batch_ids, Sequence) or not batch_ids:
        raise errors.LabError(f"batch_ids must be a non-empty list of token-id lists, got {batch_ids!r:.80}")
    if max_new_tokens < 1:
        raise errors.LabError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    return [tokens.check_ids(ids, n_vocab) for ids in batch_ids]


def stop_reason(new_ids: Sequence[int], eos_ids) -> str:
    """"eos" when an answer ends on a stop token, else "length" (it ran to max_new_tokens)."""
    return "eos" if new_ids and new_ids[-1] in eos_ids else "length"
