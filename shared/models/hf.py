"""The transformers backend: load (GGUF converted once and cached), quantize, generate timed.

transformers dequantizes a GGUF file to full precision on every load, which takes about 40 s
for SmolLM2-135M and 90 s for Gemma 3 270M on 2 cores. We convert once and keep safetensors in
the cache (PRL_CACHE), keyed by the file's sha256, so later loads read the cache.
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Sequence

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig
from transformers.generation.streamers import BaseStreamer

from shared import machine
from shared.models import catalog, tokens
from shared.models.model import LoadedModel, check_batch, stop_reason
from shared.models.timing import TimedOutput, clock


def gguf_cache_folder(spec: catalog.ModelSpec, gguf_path: Path) -> Path:
    key = spec.sha256 or catalog.sha256_file(gguf_path)
    return catalog.cache_dir() / "hf" / f"{spec.name}-{key[:12]}"


def convert_gguf(spec: catalog.ModelSpec, gguf_path: Path) -> tuple[Path, bool]:
    """The cached transformers folder for a GGUF file, converting it first if needed.

    Returns (folder, converted_now). The folder is written under a temporary name and renamed,
    so an interrupted conversion never leaves a half-written cache entry (nor its temporary
    folder, on any exception), and two processes converting the same file at once convert it
    once: the second waits for the first and reuses its folder (catalog.building).
    """
    target = gguf_cache_folder(spec, gguf_path)
    if (target / "config.json").exists():
        return target, False
    with catalog.building(target) as tmp:
        if (target / "config.json").exists():  # converted by another process while this one waited
            return target, False
        if target.exists():  # a folder without config.json is not a finished conversion
            shutil.rmtree(target)
        model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name,
                                                     dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        # the model is marked as GGUF-quantized and save_pretrained refuses it; the weights are
        # plain dequantized tensors by now, so the marker can go
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)
    return target, True


def quantization_config(quantization: str, compute_dtype: torch.dtype) -> BitsAndBytesConfig | None:
    if quantization == "8bit":
        # bitsandbytes logs "inputs will be cast to float16" on every 8-bit matmul of a float32 model
        logging.getLogger("bitsandbytes.autograd._functions").setLevel(logging.ERROR)
        return BitsAndBytesConfig(load_in_8bit=True)
    if quantization == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                  bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=compute_dtype)
    return None


class _FirstTokenClock(BaseStreamer):
    """Notes when generate() emits its first new token: the end of prefill."""

    def __init__(self, sync):
        self.sync, self.calls, self.t_first = sync, 0, None

    def put(self, value):
        self.calls += 1
        if self.calls == 2:  # call 1 is the prompt, call 2 the first new token
            self.sync()
            self.t_first = clock()

    def end(self):
        pass


class TokenizerRules:
    """The rules of shared.models.tokens on a transformers tokenizer (stop set, control tokens, literal
    prompt text, chat template, whole characters): HFModel's, and the vllm backend's, which
    tokenizes with the same tokenizer and hands vLLM token ids."""
    name: str
    tokenizer: object

    def _init_tokens(self, tokenizer, n_vocab: int, gguf_path: Path | None, generation_config=None) -> None:
        """Set tokenizer, n_vocab, control and eos_ids. The stop set comes from the GGUF file's
        vocabulary when the model was converted from one (as llama.cpp sees it), else from the
        tokenizer and generation config (shared.models.tokens)."""
        self.tokenizer, self.n_vocab = tokenizer, n_vocab
        # every added token is matched by text before the rest is tokenized (the control tokens)
        self.control = tokens.ControlTokens({t.content: i for i, t in tokenizer.added_tokens_decoder.items()})
        eog = (tokens.gguf_end_of_generation(gguf_path) if gguf_path is not None
               else tokens.tokenizer_end_of_generation(tokenizer, generation_config))
        eot = tokens.template_end_of_turn(self._render, self.control) if self.has_chat_template else None
        self.eos_ids = tokens.end_of_generation(eog, eot)  # the same set as the llama.cpp backend
        self._make_special(self.eos_ids)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token

    @property
    def has_chat_template(self) -> bool:
        return bool(self.tokenizer.chat_template)

    def _make_special(self, ids) -> None:
        """Mark the added tokens among `ids` as special, as llama.cpp marks every end-of-generation
        token a control token: prompt text then never becomes one, and decode leaves it out
        (Gemma 3's "</s>", id 212, is a plain added token in transformers)."""
        from tokenizers import AddedToken
        added = self.tokenizer.added_tokens_decoder
        plain = [added[i] for i in sorted(ids) if i in added and not added[i].special]
        backend = getattr(self.tokenizer, "_tokenizer", None)  # fast tokenizers only
        if plain and backend is not None:
            backend.add_special_tokens([AddedToken(t.content, special=True, normalized=t.normalized, lstrip=t.lstrip,
                                                   rstrip=t.rstrip, single_word=t.single_word) for t in plain])

    def _render(self, messages, add_generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(list(messages), add_generation_prompt=add_generation_prompt,
                                                  tokenize=False)

    def _literal(self, text: str) -> list[int]:
        """Token ids of `text` as text: control-token strings in it are not parsed, no BOS."""
        return self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]

    def _encode_raw(self, prompt: str) -> list[int]:
        return self.tokenizer(prompt, split_special_tokens=True)["input_ids"]

    def decode(self, ids: Sequence[int]) -> str:
        """Text of `ids` without control tokens, and without a character cut in half at its end."""
        text = self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        return tokens.whole_characters(text)


class HFModel(TokenizerRules, LoadedModel):
    backend = "transformers"

    def __init__(self, spec, model, tokenizer, quantization, load_s, from_cache, n_threads,
                 gguf_path: Path | None = None):
        self.spec, self.name, self.model = spec, spec.name, model
        self.quantization, self.load_s, self.from_cache = quantization, load_s, from_cache
        self.dtype = str(model.dtype).removeprefix("torch.")
        devices = sorted({str(p.device) for p in model.parameters()})
        self.device = ",".join(devices)
        self.on_cuda = any(d.startswith("cuda") for d in devices)
        self.n_threads = n_threads if not self.on_cuda else None
        short = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}.get(self.dtype, self.dtype)
        self.runtime = f"transformers {short}" if quantization == "none" else f"transformers bnb-{quantization}"
        self.context_length = spec.context_length or getattr(model.config, "max_position_embeddings", None)
        self._init_tokens(tokenizer, model.get_input_embeddings().num_embeddings, gguf_path,
                          model.generation_config)

    def _sync(self):
        if self.on_cuda:
            torch.cuda.synchronize()

    @torch.inference_mode()
    def timed_generate(self, input_ids, max_new_tokens, force_length, batch_size) -> TimedOutput:
        input_ids = tokens.check_ids(input_ids, self.n_vocab)  # an empty tensor fails deep in torch
        device = self.model.device
        ids = torch.tensor([input_ids] * batch_size, device=device)
        mask = torch.ones_like(ids)
        clock_ = _FirstTokenClock(self._sync)
        kwargs = dict(max_new_tokens=max_new_tokens, do_sample=False, streamer=clock_,
                      eos_token_id=sorted(self.eos_ids), pad_token_id=self.tokenizer.pad_token_id,
                      temperature=None, top_p=None, top_k=None)
        if force_length:
            kwargs["min_new_tokens"] = max_new_tokens
        self._sync()
        t_start = clock()
        out = self.model.generate(input_ids=ids, attention_mask=mask, **kwargs)
        self._sync()
        t_end = clock()
        new = out[0, len(input_ids):].tolist()
        # a batch pads finished sequences; the first sequence's own tokens end at its first EOS
        for i, tok in enumerate(new):
            if tok in self.eos_ids and not force_length:
                new = new[:i + 1]
                break
        return TimedOutput(new_ids=new, t_start=t_start, t_first=clock_.t_first or t_end, t_end=t_end)

    @torch.inference_mode()
    def generate_batch(self, batch_ids, max_new_tokens) -> list[tuple[list[int], str]]:
        """Greedy answers to several prompts in one generate call (LoadedModel.generate_batch).

        The prompts are padded on the left (pad id = the tokenizer's pad token, masked out),
        so every answer starts at the same column and generate computes positions from the
        mask. Each row's new ids are cut after its first stop token; rows that stopped early
        are padded by generate and the padding is dropped. Padding changes the shapes of the
        matmuls, so a batched answer can differ from the one-by-one answer in the last bits
        of its logits (and rarely in a greedy token).
        """
        batch_ids = check_batch(batch_ids, max_new_tokens, self.n_vocab)
        width = max(map(len, batch_ids))
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(x)) + x for x in batch_ids], device=self.model.device)
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in batch_ids], device=self.model.device)
        out = self.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                  do_sample=False, eos_token_id=sorted(self.eos_ids), pad_token_id=pad,
                                  temperature=None, top_p=None, top_k=None)
        answers = []
        for row in out[:, width:].tolist():
            end = next((i + 1 for i, t in enumerate(row) if t in self.eos_ids), len(row))
            answers.append((row[:end], stop_reason(row[:end], self.eos_ids)))
        return answers

    def close(self):
        del self.model
        if self.on_cuda:
            torch.cuda.empty_cache()


def transformers_folder(spec: catalog.ModelSpec) -> tuple[Path | str, bool, Path | None]:
    """What transformers (or vLLM) loads for `spec`: its hub id or folder, or for a GGUF entry the
    cached conversion (made now if missing). Returns (source, from_cache, the GGUF path or None)."""
    source = catalog.resolve(spec)
    if spec.format != "gguf":
        return source, True, None
    gguf_path = Path(source)
    folder, converted = convert_gguf(spec, gguf_path)
    return folder, not converted, gguf_path


def load(spec: catalog.ModelSpec, quantization: str = "none", dtype: str | None = None,
         device_map=None, n_threads: int | None = None) -> HFModel:
    t0 = time.perf_counter()  # a first load includes the GGUF conversion
    source, from_cache, gguf_path = transformers_folder(spec)
    cuda = torch.cuda.is_available() and device_map != "cpu"
    torch_dtype = getattr(torch, dtype) if dtype else (torch.float16 if cuda else torch.float32)
    # torch's own default counts the CPUs of the box; unset, use no more than this process may
    # run on (machine.usable_cpus: its affinity)
    n_threads = n_threads or min(torch.get_num_threads(), machine.usable_cpus())
    torch.set_num_threads(n_threads)
    kwargs = {"dtype": torch_dtype}
    qconfig = quantization_config(quantization, torch_dtype)
    if qconfig is not None:
        kwargs["quantization_config"] = qconfig
        device_map = device_map or ("auto" if cuda else "cpu")
    if device_map is not None:
        kwargs["device_map"] = device_map
    elif cuda:
        kwargs["device_map"] = "cuda:0"
    model = AutoModelForCausalLM.from_pretrained(source, **kwargs).eval()
    tokenizer = AutoTokenizer.from_pretrained(source)
    load_s = time.perf_counter() - t0
    return HFModel(spec, model, tokenizer, quantization, load_s, from_cache, n_threads, gguf_path)
