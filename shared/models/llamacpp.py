"""The llama.cpp backend (llama-cpp-python): GGUF files as LM Studio runs them.

Decoding is a bare loop of one-token `eval` calls with greedy argmax on the last logits, within
1% of a bare eval loop (benchmarks/llama_decode.py); context options follow llama-bench
(LLAMA_BENCH_DEFAULTS), and prefill and decode measured 0.95-1.01x of native llama-bench on the
same GGUF and threads (benchmarks/llama_bench_compare.py). Every call starts from
an empty KV cache, so a repeated prompt is prefilled again, unless the caller asks to reuse the
prefix shared with the previous call (reuse_prefix=True, for few-shot preambles).
"""
from __future__ import annotations

import functools
import time
from typing import Sequence

import numpy as np

from shared import errors, machine
from shared.models import catalog, tokens
from shared.models.model import LoadedModel
from shared.models.timing import TimedOutput, clock


class LlamaCppModel(LoadedModel):
    backend = "llama_cpp"
    dtype = "gguf"

    def __init__(self, spec, llm, load_s, n_threads, n_threads_batch, n_gpu_layers, flash_attn):
        import llama_cpp
        self.spec, self.name, self.llm, self.load_s = spec, spec.name, llm, load_s
        self.quantization = spec.quantization
        self.runtime = f"llama.cpp {spec.quantization}"
        self.n_threads, self.n_threads_batch, self.n_gpu_layers = n_threads, n_threads_batch, n_gpu_layers
        self.flash_attn = flash_attn
        self.n_batch, self.n_ubatch = llm.context_params.n_batch, llm.context_params.n_ubatch
        self.device = "cpu" if n_gpu_layers == 0 else f"gpu ({n_gpu_layers} layers)"
        self.context_length = llm.n_ctx()
        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        self.n_vocab = llm.n_vocab()
        self._vocab = vocab
        self.add_bos = bool(llama_cpp.llama_vocab_get_add_bos(vocab))
        self.chat_template = llm.metadata.get("tokenizer.chat_template")
        eot = tokens.template_end_of_turn(self._render, self.control) if self.chat_template else None
        self.eos_ids = tokens.end_of_generation(tokens.llama_eog_ids(vocab), eot)  # as transformers
        self._eos_array = np.array(sorted(self.eos_ids), dtype=np.int64)

    @property
    def has_chat_template(self) -> bool:
        return bool(self.chat_template)

    @functools.cached_property
    def control(self) -> tokens.ControlTokens:
        """The control and user-defined tokens, which llama.cpp matches by text when special=True."""
        import llama_cpp
        kinds = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED
        return tokens.ControlTokens({
            llama_cpp.llama_vocab_get_text(self._vocab, t).decode("utf-8", errors="replace"): t
            for t in range(self.n_vocab) if llama_cpp.llama_vocab_get_attr(self._vocab, t) & kinds})

    def _render(self, messages, add_generation_prompt: bool) -> str:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        tok = self.llm._model
        bos = tok.token_get_text(self.llm.token_bos()) if self.llm.token_bos() >= 0 else ""
        eos = tok.token_get_text(self.llm.token_eos()) if self.llm.token_eos() >= 0 else ""
        return Jinja2ChatFormatter(self.chat_template, eos_token=eos, bos_token=bos,
                                   add_generation_prompt=add_generation_prompt)(messages=list(messages)).prompt

    def _literal(self, text: str) -> list[int]:
        """Token ids of `text` as text: control-token strings in it are not parsed, no BOS."""
        return self.llm.tokenize(text.encode(), add_bos=False, special=False)

    def _encode_raw(self, prompt: str) -> list[int]:
        return self.llm.tokenize(prompt.encode(), add_bos=self.add_bos, special=False)

    def decode(self, ids: Sequence[int]) -> str:
        """Text of `ids` without control tokens, and without a character cut in half at its end."""
        ids = [t for t in ids if t not in self.eos_ids]
        return tokens.whole_characters(self.llm.detokenize(ids).decode("utf-8", errors="replace"))

    def timed_generate(self, input_ids, max_new_tokens, force_length, batch_size,
                       reuse_prefix: bool = False) -> TimedOutput:
        """reuse_prefix: keep the KV state of the longest prefix shared with the tokens the
        previous call evaluated (a few-shot preamble), prefill only the rest; the output's
        reused_tokens says how many were kept. Default: an empty KV cache every call."""
        if batch_size != 1:
            raise errors.LabError("the llama_cpp backend times one sequence at a time (batch_size=1)")
        input_ids = tokens.check_ids(input_ids, self.n_vocab)  # llama.cpp fails on an empty batch
        llm = self.llm
        reused = 0
        if reuse_prefix:
            cached = llm.input_ids[:llm.n_tokens]
            limit = min(len(cached), len(input_ids) - 1)  # at least one token is evaluated
            while reused < limit and cached[reused] == input_ids[reused]:
                reused += 1
            llm.n_tokens = reused         # eval() drops the KV cells from here on
        else:
            llm.reset()                   # n_tokens = 0 ...
            llm._ctx.kv_cache_clear()     # ... and an empty KV cache: no prefix reuse
        banned = self._eos_array if force_length else None

        def next_token() -> int:
            # eval() keeps no logits unless logits_all; read the last row straight from llama.cpp
            logits = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(self.n_vocab,))
            if banned is not None:
                logits = logits.copy()
                logits[banned] = -np.inf  # a forced length never picks EOS (as min_new_tokens)
            return int(np.argmax(logits))

        t_start = clock()
        llm.eval(input_ids[reused:])
        token = next_token()
        t_first = clock()
        new = [token]
        while len(new) < max_new_tokens and (force_length or token not in self.eos_ids):
            llm.eval([token])
            token = next_token()
            new.append(token)
        t_end = clock()
        return TimedOutput(new_ids=new, t_start=t_start, t_first=t_first, t_end=t_end,
                           reused_tokens=reused)

    def close(self):
        self.llm.close()


# llama-bench's defaults (tools/llama-bench/llama-bench.cpp, cmd_params_defaults): flash attention
# on where the backend supports it ("auto"; llama-cpp-python can only say on or off, and the CPU
# and CUDA backends support it), logical batch 2048, physical batch (ubatch) 512. llama-cpp-python's
# own defaults (flash attention off, batch 512) prefilled slower (benchmarks/llama_bench_compare.py).
LLAMA_BENCH_DEFAULTS = {"flash_attn": True, "n_batch": 2048, "n_ubatch": 512}


def load(spec: catalog.ModelSpec, n_threads: int | None = None, n_threads_batch: int | None = None,
         n_gpu_layers: int = 0, n_ctx: int | None = None, flash_attn: bool | None = None,
         n_batch: int | None = None, n_ubatch: int | None = None) -> LlamaCppModel:
    """Load a GGUF file; unset options take llama-bench's defaults (LLAMA_BENCH_DEFAULTS),
    n_threads defaults to the CPUs this process may use (machine.usable_cpus: its affinity,
    not os.cpu_count()) and n_threads_batch to n_threads."""
    from llama_cpp import Llama
    path = catalog.resolve(spec)
    n_threads = n_threads or machine.usable_cpus()
    n_threads_batch = n_threads_batch or n_threads
    flash_attn = LLAMA_BENCH_DEFAULTS["flash_attn"] if flash_attn is None else flash_attn
    t0 = time.perf_counter()
    llm = Llama(model_path=str(path), n_ctx=n_ctx or min(spec.context_length or 4096, 4096),
                n_threads=n_threads, n_threads_batch=n_threads_batch, n_gpu_layers=n_gpu_layers,
                flash_attn=flash_attn, n_batch=n_batch or LLAMA_BENCH_DEFAULTS["n_batch"],
                n_ubatch=n_ubatch or LLAMA_BENCH_DEFAULTS["n_ubatch"], verbose=False)
    return LlamaCppModel(spec, llm, time.perf_counter() - t0, n_threads, n_threads_batch,
                         n_gpu_layers, flash_attn)
