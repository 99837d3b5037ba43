"""The roofline model of LLM inference: bytes per token, decode speed, prefill time, memory.

Batch-1 decoding reads every active weight (and the KV cache) once per generated token and
does about 2 FLOPs per weight read, an arithmetic intensity far below a GPU's ridge point,
so decode is bound by memory bandwidth; prefill processes all input tokens in one pass and
is bound by compute. The max() keeps the roofline's other side: a machine whose peak FLOP/s
is low next to its bandwidth (fp16 on a Pascal P4) decodes at its compute roof (Williams et
al., "Roofline", CACM 2009; the same argument in Pope et al., "Efficiently Scaling Transformer
Inference", 2022, and in llama.cpp discussions). The same form serves GPUs and this lab's CPU.

    decode step  t = max(bytes / bandwidth, FLOPs / peak) / efficiency + overhead   (s)
    decode rate  1 / t                                                       (tokens/s per sequence)
    prefill      flops / (efficiency x peak FLOP/s) + overhead               (s)
    memory       weights + KV cache (n_ctx x batch) + runtime buffers a GPU  (GB), on the visible capacity
    load         bytes read at load / the machine's read rate, once a submission (s)

A GGUF type's weights are the published file's size where one is recorded
(data/gguf_files.yaml through shared/speed/modelfiles.py), else parameters x bits per weight; the
load time comes from a public load time on the machine (data/load_times.yaml).

Efficiencies and overheads are never typed: shared/speed/calibration.py fits them on measured rows of
the same runtime (on the same card generation, else "uncalibrated" with a range) and hands a
`Calibration` to `predict`, which says which rows calibrated each number and the held-out error
they carry. The facts
are data files: hardware.yaml (GPUs), data/quantization.yaml (bits per weight), the catalog's
`architecture:` blocks (models.yaml), and this machine's measured peaks (shared/speed/peaks.py).
"GB" is 1e9 bytes throughout.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from pathlib import Path

import yaml

from shared.models import catalog
from shared.speed import modelfiles
from shared.machine import DATA, machine_label
from shared.errors import LabError, RooflineError

HARDWARE_FILE = DATA / "hardware.yaml"
QUANTIZATION_FILE = DATA / "quantization.yaml"
GB = 1e9



# ---------------------------------------------------------------------------------------------
# hardware

@dataclasses.dataclass(frozen=True)
class Hardware:
    """One machine: a GPU type (times `count`) from hardware.yaml, or a measured CPU."""
    key: str
    label: str                       # short name: "P4", "2xT4", "AMD EPYC 2c"
    kind: str                        # gpu | cpu
    count: int                       # devices; a layer split adds memory, not bandwidth
    memory_gb: float | None          # per device (GB); None where not retrieved
    bandwidth_gb_s: float            # per device (GB/s): one sequence sees one device's
    peak_tflops: dict                # precision (fp32, fp16, int8) -> dense TFLOP/s per device
    fast_fp16: bool = False
    tensor_cores: bool = False
    dp4a: bool = False
    calibrate_like: str | None = None
    source: str = ""
    generation: str | None = None          # pascal | turing | ampere | ada | hopper (GPUs)
    visible_memory_gb: float | None = None  # per device, as a CUDA program sees it (public log)
    runtime_overhead_gb: float = 0.0       # per device: CUDA context, workspaces (public log)

    @property
    def usable_memory_gb(self) -> float | None:
        """Per device: the visible capacity where a public log gives it, else the nominal one."""
        return self.visible_memory_gb if self.visible_memory_gb is not None else self.memory_gb

    @property
    def total_memory_gb(self) -> float | None:
        return None if self.memory_gb is None else self.memory_gb * self.count

    def peak_flops(self, precision: str) -> float:
        """Peak FLOP/s (not TFLOP/s) in `precision`; RooflineError listing the known ones."""
        if precision not in self.peak_tflops:
            raise RooflineError(f"{self.label}: no peak FLOP/s for {precision!r} in {self.source or HARDWARE_FILE}; "
                                f"known: {', '.join(self.peak_tflops) or 'none'}")
        return self.peak_tflops[precision] * 1e12


@functools.cache
def hardware_table(path: Path = HARDWARE_FILE) -> dict[str, Hardware]:
    """The GPUs of hardware.yaml by key."""
    entries = yaml.safe_load(Path(path).read_text())
    return {key: Hardware(key=key, kind="gpu", **{k: v for k, v in e.items()}) for key, e in entries.items()}


def cpu_from_peaks(row: dict) -> Hardware:
    """A CPU as the lab measured it (a row of machine_peaks.jsonl, see shared/speed/peaks.py)."""
    return Hardware(key=row["machine"], label=machine_label(row["machine"]), kind="cpu", count=1,
                    memory_gb=row.get("memory_total_gb"), bandwidth_gb_s=row["triad_gb_s"],
                    peak_tflops={"fp32": row["matmul_fp32_tflops"]},
                    source=f"measured by shared/speed/peaks.py on {row.get('timestamp', '?')[:10]} "
                           f"({row.get('threads')} threads; {row.get('matmul_library', 'torch')})")


def hardware(name: str, peaks: list[dict] | None = None) -> Hardware:
    """A Hardware by hardware.yaml key, label ("T4", "2xT4") or a result row's `machine`.

    CPUs come from measured peaks (rows of shared/speed/peaks.py: pass them as `peaks`). Raises
    RooflineError listing what is known.
    """
    table = hardware_table()
    if name in table:
        return table[name]
    by_label = {h.label.lower(): h for h in table.values()}
    for candidate in (name, machine_label(name)):
        if candidate.lower() in by_label:
            return by_label[candidate.lower()]
    for row in peaks or []:
        if name in (row["machine"], machine_label(row["machine"])):
            return cpu_from_peaks(row)
    measured = sorted({r["machine"] for r in peaks or []})
    raise RooflineError(f"unknown hardware {name!r}. Known GPUs ({HARDWARE_FILE.name}): "
                        f"{', '.join(h.label for h in table.values())}; measured CPUs: "
                        f"{', '.join(measured) or 'none (run shared.speed.peaks.measure on the machine)'}")


# ---------------------------------------------------------------------------------------------
# quantization

@dataclasses.dataclass(frozen=True)
class Quantization:
    """How weights are stored (data/quantization.yaml). Bits may be "compute": the dtype the
    runtime computes in (16 on a GPU, 32 on this lab's CPU runs)."""
    key: str
    family: str                      # llama.cpp | transformers | bitsandbytes
    bpw: float                       # bits per weight of the matmul weights
    embedding_bpw: float | str
    lm_head_bpw: float | str
    kv_bits: float | str
    source: str
    ppl_delta: float | None = None   # perplexity increase over F16 (Llama-3-8B) where published

    def bits(self, field: str, compute_bits: int) -> float:
        value = getattr(self, field)
        return compute_bits if value == "compute" else float(value)


@functools.cache
def quantization_table(path: Path = QUANTIZATION_FILE) -> dict[str, Quantization]:
    entries = yaml.safe_load(Path(path).read_text())
    return {key: Quantization(key=key, **e) for key, e in entries.items()}


def quantization(key: str) -> Quantization:
    table = quantization_table()
    if key not in table:
        raise RooflineError(f"unknown quantization {key!r}; known ({QUANTIZATION_FILE.name}): {', '.join(table)}")
    return table[key]


def quantization_of_row(row: dict) -> str:
    """The quantization key of a result row: llama.cpp rows carry the GGUF type; transformers
    rows carry none / 8bit / 4bit and a dtype."""
    if row.get("backend") == "llama_cpp":
        return str(row["quantization"])
    q = str(row.get("quantization", "none"))
    if q in ("8bit", "4bit"):
        return f"bnb-{q}"
    return {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}.get(str(row.get("dtype")), "fp32")


# ---------------------------------------------------------------------------------------------
# architecture

@dataclasses.dataclass(frozen=True)
class Architecture:
    """What the roofline needs of a model (the catalog's `architecture:` block).

    params_total_b / params_active_b: parameters resident / used per token (MoE: top-k experts),
    in billions, embeddings included. gguf_*: facts of the catalog's own GGUF file (its
    tensors' bytes), used instead of bits-per-weight estimates when predicting that file.
    """
    layers: int
    hidden_size: int
    attention_heads: int
    kv_heads: int
    head_dim: int
    ffn_size: int
    vocab_size: int
    tied_embeddings: bool
    params_total_b: float
    params_active_b: float
    source: str
    experts: int = 1
    experts_per_token: int = 1
    gguf_file_type: str | None = None
    gguf_tensor_bytes: int | None = None       # all tensors of the file
    gguf_bytes_per_token: int | None = None    # tensors read per token (all but an untied token_embd)

    @property
    def embedding_params(self) -> float:
        return self.vocab_size * self.hidden_size

    @property
    def lm_head_params(self) -> float:
        """Parameters of a separate output matrix (0 when tied to the embedding)."""
        return 0 if self.tied_embeddings else self.vocab_size * self.hidden_size

    def block_params(self, active: bool = True) -> float:
        """Parameters of the transformer blocks (attention, MLP / experts, norms)."""
        total = (self.params_active_b if active else self.params_total_b) * 1e9
        return total - self.embedding_params - self.lm_head_params

    def kv_bytes_per_token(self, kv_bits: float = 16) -> float:
        """KV cache per token of context: 2 (K and V) x layers x KV heads x head dim x bytes."""
        return 2 * self.layers * self.kv_heads * self.head_dim * kv_bits / 8


REQUIRED = [f.name for f in dataclasses.fields(Architecture) if f.default is dataclasses.MISSING]


def architecture(model: str | catalog.ModelSpec) -> Architecture:
    """The Architecture of a catalog model; RooflineError naming what is missing."""
    spec = model if isinstance(model, catalog.ModelSpec) else catalog.get(model)
    block = spec.architecture or {}
    missing = [name for name in REQUIRED if name not in block]
    if missing:
        raise RooflineError(f"{spec.name}: the catalog ({catalog.CATALOG_FILE.name}) has no architecture facts "
                            f"{', '.join(missing)}; add an `architecture:` block with {', '.join(REQUIRED)} "
                            "(from the GGUF: roofline.architecture_from_gguf, or config.json, with a source)")
    known = {f.name for f in dataclasses.fields(Architecture)}
    return Architecture(**{k: v for k, v in block.items() if k in known})


def architecture_from_gguf(path: str | Path) -> dict:
    """The architecture block of a GGUF file, read from its metadata and tensor table.

    Parameter counts are the sum of the tensors' elements; `gguf_bytes_per_token` leaves out
    an untied token_embd (the lookup reads one row a token).
    """
    import gguf
    reader = gguf.GGUFReader(str(path))

    def field(key, default=None):
        f = reader.fields.get(key)
        return default if f is None else f.contents()

    arch = field("general.architecture")
    embd = next(t for t in reader.tensors if t.name == "token_embd.weight")
    hidden, vocab = (int(x) for x in embd.shape[:2])
    tied = not any(t.name == "output.weight" for t in reader.tensors)
    heads = int(field(f"{arch}.attention.head_count"))
    experts = int(field(f"{arch}.expert_count", 0) or 1)
    used = int(field(f"{arch}.expert_used_count", 0) or 1)
    total = sum(int(t.n_elements) for t in reader.tensors)
    expert_params = sum(int(t.n_elements) for t in reader.tensors if "_exps" in t.name)
    active = total - expert_params + expert_params * used // experts
    file_bytes = sum(int(t.n_bytes) for t in reader.tensors)
    per_token = file_bytes - (0 if tied else int(embd.n_bytes))
    return {
        "layers": int(field(f"{arch}.block_count")),
        "hidden_size": int(field(f"{arch}.embedding_length")),
        "attention_heads": heads,
        "kv_heads": int(field(f"{arch}.attention.head_count_kv", heads)),
        "head_dim": int(field(f"{arch}.attention.key_length", 0) or field(f"{arch}.embedding_length") // heads),
        "ffn_size": int(field(f"{arch}.feed_forward_length")),
        "vocab_size": vocab,
        "tied_embeddings": tied,
        "params_total_b": round(total / 1e9, 4),
        "params_active_b": round(active / 1e9, 4),
        **({"experts": experts, "experts_per_token": used} if experts > 1 else {}),
        "gguf_file_type": gguf.LlamaFileType(int(field("general.file_type"))).name.removeprefix("MOSTLY_"),
        "gguf_tensor_bytes": file_bytes,
        "gguf_bytes_per_token": per_token,
        "source": f"GGUF metadata and tensor table of {Path(path).name} (roofline.architecture_from_gguf)",
    }


# ---------------------------------------------------------------------------------------------
# calibration handed in by shared/speed/calibration.py

@dataclasses.dataclass(frozen=True)
class Calibration:
    """Fitted constants of one runtime family on one hardware, and where they came from."""
    decode_efficiency: float = 1.0     # fraction of the roofline (bandwidth or compute) a decode step achieves
    decode_overhead_s: float = 0.0     # fixed seconds per decode step (launches, Python, sampling)
    prefill_efficiency: float = 1.0    # fraction of peak FLOP/s prefill achieves
    prefill_overhead_s: float = 0.0
    memory_overhead_gb: float = 0.0    # runtime memory beyond weights and KV (CUDA context, libraries)
    decode_rows: str = "none: roofline ceiling"
    prefill_rows: str = "none: roofline ceiling"
    memory_rows: str = "none: weights + KV only"
    decode_error_pct: float | None = None   # held-out error of this runtime on this card (or its generation)
    calibrated: bool = True            # False: no row of this runtime on this card's generation
    pessimistic_efficiency: float | None = None   # the worst fitted efficiency / overhead of the runtime
    pessimistic_overhead_s: float | None = None   # on any GPU: the low end of an uncalibrated range
    pessimistic_unbatched: bool = False   # the low end is no gain from batching: B batch-1 steps, one after another
    error_scope: str = ""              # which rows the held-out error belongs to
    decode_at_bound: bool = False      # the decode efficiency sits on its bound of 1 (pinned by the fit)
    decode_evidence: str = ""          # the rows' sources, dates and builds
    prefill_calibrated: bool = True    # False: a range (prefill_pessimistic_* its slow end)
    prefill_pessimistic_efficiency: float | None = None
    prefill_pessimistic_overhead_s: float | None = None
    prefill_error_pct: float | None = None   # held-out error of the prefill rows of this generation
    prefill_evidence: str = ""


CEILING = Calibration()


# ---------------------------------------------------------------------------------------------
# prediction

def compute_bits(quant: Quantization, hw: Hardware) -> int:
    """Bits of the dtype transformers computes in: the stored dtype for dense weights; for
    bitsandbytes the lab's default dtype (float16 on a GPU, float32 on a CPU)."""
    if quant.family == "transformers":
        return int(quant.bpw)
    return 16 if hw.kind == "gpu" else 32


def compute_precision(quant: Quantization, hw: Hardware) -> str:
    """The precision whose peak FLOP/s bounds prefill for this runtime on this hardware.

    transformers and bitsandbytes compute in their dtype; on a GPU their fp16 GEMMs run at the
    PyTorch fp16 rate measured on the card (`fp16_torch`: on Pascal cuBLAS accumulates in fp32
    and runs near the fp32 rate, not at the native 1:64 half rate of a P4), fp32 on a CPU. llama.cpp on a GPU multiplies quantized weights with
    int8 dot products where the card has dp4a / int8 (MMQ), else in fp16 where fp16 is fast,
    else fp32; F16/F32 files use fp16/fp32 GEMM. On a CPU the measured fp32 peak is the
    reference for every runtime (llama.cpp's int8 dot products may beat it: efficiency > 1).
    """
    if hw.kind == "cpu":
        return "fp32"
    if quant.family in ("transformers", "bitsandbytes"):
        if compute_bits(quant, hw) == 32:
            return "fp32"
        return "fp16_torch" if "fp16_torch" in hw.peak_tflops else "fp16"
    if quant.key in ("F16", "F32"):
        return "fp16" if hw.fast_fp16 and "fp16" in hw.peak_tflops else "fp32"
    if hw.dp4a and "int8" in hw.peak_tflops:
        return "int8"
    return "fp16" if hw.fast_fp16 and "fp16" in hw.peak_tflops else "fp32"


def weight_bytes(arch: Architecture, quant: Quantization, cbits: int, per_token: bool,
                 published_bytes: float | None = None) -> float:
    """Bytes of the weights: resident (per_token=False) or read per decode step (True: MoE
    active experts only; the input embedding is a row lookup, so only the output matrix is read
    whole; a tied embedding is read as the output matrix).

    The catalog's own GGUF file gives its tensors' bytes. `published_bytes` (a published GGUF
    file's size, shared/speed/modelfiles.py) is the resident size; the bytes read per step are that
    size times the estimate's read / resident ratio: the file minus the token-embedding share
    (untied models) and minus the inactive experts (MoE), both at the file's mean bits per
    weight. Otherwise parameters x bits per weight (data/quantization.yaml).
    """
    if arch.gguf_tensor_bytes and quant.key == arch.gguf_file_type:
        return arch.gguf_bytes_per_token if per_token else arch.gguf_tensor_bytes
    read = _estimated_bytes(arch, quant, cbits, per_token=True)
    resident = _estimated_bytes(arch, quant, cbits, per_token=False)
    if published_bytes:
        return published_bytes * read / resident if per_token else published_bytes
    return read if per_token else resident


def _estimated_bytes(arch: Architecture, quant: Quantization, cbits: int, per_token: bool) -> float:
    """Parameters x bits per weight: blocks at `bpw`, the output matrix at `lm_head_bpw`, an
    untied input embedding (resident only) at `embedding_bpw`."""
    blocks = arch.block_params(active=per_token) * quant.bpw / 8
    head = arch.vocab_size * arch.hidden_size * quant.bits("lm_head_bpw", cbits) / 8
    if per_token:
        return blocks + head
    embedding = 0 if arch.tied_embeddings else arch.embedding_params * quant.bits("embedding_bpw", cbits) / 8
    return blocks + head + embedding


def decode_flops(arch: Architecture, context_tokens: float, batch_size: int = 1) -> float:
    """FLOPs of one decode step: 2 per active matmul weight (blocks and the output matrix) and
    attention over the context, 4 x layers x context x heads x head_dim, per sequence."""
    dense = 2 * (arch.block_params(active=True) + arch.vocab_size * arch.hidden_size)
    attention = 4 * arch.layers * context_tokens * arch.attention_heads * arch.head_dim
    return batch_size * (dense + attention)


def roofline_seconds(step_bytes: float, step_flops: float | None, hw: Hardware, precision: str) -> float:
    """Time of one step at the roofline (efficiency 1): max(bytes / bandwidth, FLOPs / peak);
    the memory side alone where the hardware's peak in `precision` is not known."""
    memory = step_bytes / (hw.bandwidth_gb_s * GB)
    if step_flops is None or precision not in hw.peak_tflops:
        return memory
    return max(memory, step_flops / hw.peak_flops(precision))


def prefill_flops(arch: Architecture, input_tokens: int, batch_size: int = 1) -> float:
    """FLOPs of one prefill: 2 x matmul parameters per input token (the active blocks), the
    output matrix for the last position only, and causal attention 2 x layers x n^2 x heads x
    head_dim (QK^T and AV, halved by the mask)."""
    n = input_tokens
    dense = 2 * arch.block_params(active=True) * n
    logits = 2 * arch.vocab_size * arch.hidden_size
    attention = 2 * arch.layers * n * n * arch.attention_heads * arch.head_dim
    return batch_size * (dense + logits + attention)


@dataclasses.dataclass(frozen=True)
class Prediction:
    """One model x quantization x hardware x workload. Sizes in GB (1e9 bytes), times in s."""
    model: str
    quantization: str
    family: str
    hardware: str
    batch_size: int
    input_tokens: int
    output_tokens: int
    n_ctx: int                       # tokens the KV cache is allocated for, per sequence
    weights_gb: float                # resident
    weights_read_gb: float           # read per decode step
    weights_source: str              # file (published GGUF) | catalog GGUF | bpw estimate | parameters
    weights_file: str                # the file(s) or the estimate the weights come from
    kv_read_gb: float                # KV cache read per step (all sequences, mean context)
    bytes_per_token_gb: float        # weights + KV per step
    decode_flops: float              # per step (all sequences)
    decode_bound: str                # memory | compute: the roofline side of a decode step
    ceiling_tok_s: float             # 1 / max(bytes / bandwidth, FLOPs / peak): efficiency 1, no overhead
    decode_tok_s: float              # per sequence (uncalibrated: at the ceiling)
    decode_tok_s_low: float          # per sequence, pessimistic end (= decode_tok_s when calibrated)
    throughput_tok_s: float          # decode tokens/s of the whole batch
    prefill_s: float
    prefill_s_high: float            # the slow end of prefill (= prefill_s when its calibration is not a range)
    implied_efficiency: float        # decode tok/s x bytes a step / bandwidth (all sequences)
    max_n_ctx: int | None            # the largest n_ctx a sequence can allocate on the visible memory (capped at the model's trained context)
    split: str                       # layer | row (multi-GPU: layers one card after another, or each matrix over all cards)
    memory_gb: float                 # weights + KV for n_ctx x batch + runtime overhead, all devices
    memory_per_gpu_gb: float         # the same split over the devices by layers
    memory_available_gb: float | None   # per device: visible capacity (nominal where no log gives it)
    memory_margin_gb: float | None   # per device: available - memory_per_gpu (negative: does not fit)
    fits_memory: bool | None
    s_per_sample: float              # prefill + (output - 1) / decode, divided by the batch
    s_per_sample_high: float         # the same at the pessimistic end
    budget_s: float                  # the budget's share of one sample (hours x 3600 / samples)
    load_s: float | None             # seconds to load the model once (None: no public rate for the machine)
    load_calibration: str            # how load_s was obtained, and whether it was subtracted
    budget_net_s: float              # a sample's share after loading once: budget_s - load_s / samples
    calls_per_sample: int            # model calls of this size that fit budget_net_s
    max_output_tokens: int           # the largest output whose sample fits the budget
    fast_enough: bool                # one call fits budget_net_s at the calibrated rate (uncalibrated: pessimistic end)
    calibrated: bool
    precision: str                   # whose peak FLOP/s bounds prefill
    decode_calibration: str
    prefill_calibration: str
    memory_calibration: str
    decode_error_pct: float | None
    error_scope: str
    decode_at_bound: bool = False
    prefill_calibrated: bool = True
    prefill_error_pct: float | None = None
    decode_evidence: str = ""
    prefill_evidence: str = ""

    @property
    def verdict(self) -> str:
        if self.fits_memory is False:
            return "does not fit"
        if not self.calibrated:
            if self.s_per_sample > self.budget_net_s:
                return "too slow"
            return "uncalibrated: fast enough" if self.fast_enough else "uncalibrated: ceiling fast, pessimistic slow"
        if not self.fast_enough:
            return "too slow"
        return "fits" if self.fits_memory else "fast enough (memory unknown)"

    def row(self) -> dict:
        return {**dataclasses.asdict(self), "verdict": self.verdict}


def predict(model: str | Architecture, quant: str, hw: str | Hardware, batch_size: int = 1,
            input_tokens: int = 600, output_tokens: int = 100, budget_s: float | None = None,
            calibration: Calibration = CEILING, peaks: list[dict] | None = None,
            name: str | None = None, n_ctx: int | None = None, samples: int | None = None,
            split: str = "layer") -> Prediction:
    """Predict speed and memory of `model` stored as `quant` on `hw` (see the module docstring).

    Decode reads the weights once per step for all `batch_size` sequences and each sequence's
    KV cache at the mean context (input + output/2). Memory holds the KV cache allocated for
    `n_ctx` tokens per sequence (llama.cpp allocates it whole at load; default input + output)
    for the whole batch, plus the hardware's runtime overhead per device; a multi-GPU card
    splits layers evenly. `calibration` (shared/speed/calibration.py) supplies efficiencies and
    overheads; the default is the bare roofline ceiling. An uncalibrated one (no row of the
    runtime on this card generation) gives the ceiling and a pessimistic end. `budget_s`: seconds
    a sample (required: the budget lives in the params files). RooflineError before any compute
    for a workload below 1 token or an n_ctx shorter than input + output.

    Weights: the catalog's own GGUF, else for a GGUF type a published file of the model
    (`name`, shared/speed/modelfiles.py: the larger where quantizers differ), else parameters x bits
    per weight; `weights_source` says which. Loading: the bytes read at load over the machine's
    public read rate (modelfiles.load_seconds); with `samples` (the submission's sample count)
    one load is taken from the whole budget before the calls a sample are counted
    (`budget_net_s`); without it the load time is reported, not subtracted.

    Prefill: a calibration whose prefill is a range (`prefill_calibrated` False) gives its slow
    end as `prefill_s_high`, and the seconds a sample at the pessimistic end use it. `max_n_ctx`:
    the largest KV allocation a sequence gets on the visible memory (weights, runtime buffers and
    the KV cache split over the devices with the layers; llama.cpp as the lab loads it, with
    flash attention, so no n_ctx x n_ubatch score buffer), capped at the model's trained context.
    `split` ("layer" or "row", multi-GPU only): a row split (llama.cpp -sm row, tensor parallel)
    reads every matrix from all devices at once, so a step sees their summed bandwidth and FLOP/s.
    """
    if split not in ("layer", "row"):
        raise RooflineError(f"split must be 'layer' or 'row', got {split!r}")
    if min(batch_size, input_tokens, output_tokens) < 1:
        raise RooflineError(f"batch_size, input_tokens and output_tokens must be >= 1, got "
                            f"{batch_size}, {input_tokens}, {output_tokens}")
    if budget_s is None or budget_s <= 0:
        raise RooflineError(f"budget_s (seconds a sample) must be > 0, got {budget_s!r}: pass "
                            "budget_hours * 3600 / samples from the params file")
    n_ctx = n_ctx or input_tokens + output_tokens
    if n_ctx < input_tokens + output_tokens:
        raise RooflineError(f"n_ctx {n_ctx} is shorter than input + output = {input_tokens + output_tokens} "
                            "tokens: raise n_ctx (the KV cache must hold the whole sample)")
    arch = model if isinstance(model, Architecture) else architecture(model)
    q = quantization(quant)
    hw = hw if isinstance(hw, Hardware) else hardware(hw, peaks)
    if split == "row" and hw.count < 2:
        raise RooflineError(f"a row split needs several GPUs; {hw.label} has {hw.count}")
    # the hardware one step runs on: a layer split one device at a time, a row split all of them
    step_hw = hw if split == "layer" else dataclasses.replace(
        hw, bandwidth_gb_s=hw.bandwidth_gb_s * hw.count, peak_tflops={k: v * hw.count for k, v in hw.peak_tflops.items()})
    cbits = compute_bits(q, hw)
    kv_per_token = arch.kv_bytes_per_token(q.bits("kv_bits", cbits))
    label = name or (model if isinstance(model, str) else None)
    own_file = bool(arch.gguf_tensor_bytes) and q.key == arch.gguf_file_type
    published = modelfiles.published_size(label, q.key) if label and q.family == "llama.cpp" and not own_file else None
    if own_file:
        weights_source, weights_file = "catalog GGUF", arch.source
    elif published:
        weights_source, weights_file = "file", published[1]
    else:
        weights_source = "bpw estimate" if q.family == "llama.cpp" else "parameters"
        weights_file = f"parameters x {q.bpw:g} bits per weight ({QUANTIZATION_FILE.name}: {q.key})"
    published_bytes = published[0] if published else None
    weights_read = weight_bytes(arch, q, cbits, per_token=True, published_bytes=published_bytes)
    kv_read = batch_size * kv_per_token * (input_tokens + output_tokens / 2)
    step_bytes = weights_read + kv_read
    c = calibration
    bandwidth = step_hw.bandwidth_gb_s * GB
    precision = compute_precision(q, hw)
    step_flops = decode_flops(arch, input_tokens + output_tokens / 2, batch_size)
    ideal_s = roofline_seconds(step_bytes, step_flops, step_hw, precision)
    decode = 1 / (ideal_s / c.decode_efficiency + c.decode_overhead_s)
    if c.calibrated or c.pessimistic_efficiency is None:
        low = decode
    elif c.pessimistic_unbatched:  # each sequence a batch-1 step of its own, the batch one after another
        one_s = roofline_seconds(weights_read + kv_per_token * (input_tokens + output_tokens / 2),
                                 decode_flops(arch, input_tokens + output_tokens / 2, 1), step_hw, precision)
        low = 1 / (batch_size * (one_s / c.pessimistic_efficiency + (c.pessimistic_overhead_s or 0.0)))
    else:
        low = 1 / (ideal_s / c.pessimistic_efficiency + (c.pessimistic_overhead_s or 0.0))
    p_flops, peak = prefill_flops(arch, input_tokens, batch_size), step_hw.peak_flops(precision)
    prefill = p_flops / (c.prefill_efficiency * peak) + c.prefill_overhead_s
    prefill_high = prefill if c.prefill_calibrated or c.prefill_pessimistic_efficiency is None else \
        p_flops / (c.prefill_pessimistic_efficiency * peak) + (c.prefill_pessimistic_overhead_s or 0.0)
    weights = weight_bytes(arch, q, cbits, per_token=False, published_bytes=published_bytes)
    load_s, load_calibration = modelfiles.load_seconds(
        modelfiles.checkpoint_bytes(q.family, arch.params_total_b, weights), q.family, hw.label)
    if load_s is not None and samples:
        budget_net = budget_s - load_s / samples
        load_calibration += f"; one load taken from the budget of {samples} samples"
    else:
        budget_net = budget_s
        if load_s is not None:
            load_calibration += "; not subtracted (no sample count given)"
    overhead_gb = (c.memory_overhead_gb if c.memory_overhead_gb else hw.runtime_overhead_gb) * hw.count
    memory = weights + batch_size * kv_per_token * n_ctx + overhead_gb * GB
    per_gpu = memory / hw.count
    available = hw.usable_memory_gb
    margin = None if available is None else available - per_gpu / GB
    per_sample = (prefill + (output_tokens - 1) / decode) / batch_size
    per_sample_high = (prefill_high + (output_tokens - 1) / low) / batch_size
    if available is None:
        max_ctx = None
    else:
        room = available * hw.count * GB - weights - overhead_gb * GB   # what the KV cache may take, all devices
        max_ctx = max(0, int(room // (batch_size * kv_per_token)))
        trained = _trained_context(label)
        max_ctx = min(max_ctx, trained) if trained else max_ctx
    max_out = max(0, math.floor(1 + (budget_net * batch_size - prefill) * decode))
    memory_rows = c.memory_rows if c.memory_overhead_gb else (
        f"weights + KV for n_ctx {n_ctx} + {hw.runtime_overhead_gb:g} GB runtime per GPU ({HARDWARE_FILE.name})")
    return Prediction(
        model=name or (model if isinstance(model, str) else "?"), quantization=q.key, family=q.family,
        hardware=hw.label + (" row split" if split == "row" else ""), batch_size=batch_size, input_tokens=input_tokens, output_tokens=output_tokens,
        n_ctx=n_ctx, weights_gb=weights / GB, weights_read_gb=weights_read / GB,
        weights_source=weights_source, weights_file=weights_file, kv_read_gb=kv_read / GB,
        bytes_per_token_gb=step_bytes / GB, decode_flops=step_flops,
        decode_bound="memory" if ideal_s <= step_bytes / bandwidth else "compute",
        ceiling_tok_s=1 / ideal_s, decode_tok_s=decode, decode_tok_s_low=low,
        throughput_tok_s=decode * batch_size,
        prefill_s=prefill, prefill_s_high=prefill_high, implied_efficiency=decode * batch_size * step_bytes / bandwidth,
        max_n_ctx=max_ctx, split=split, memory_gb=memory / GB, memory_per_gpu_gb=per_gpu / GB, memory_available_gb=available,
        memory_margin_gb=margin, fits_memory=None if margin is None else margin >= 0,
        s_per_sample=per_sample, s_per_sample_high=per_sample_high, budget_s=budget_s,
        load_s=load_s, load_calibration=load_calibration, budget_net_s=budget_net,
        calls_per_sample=max(0, int(budget_net // per_sample_high)), max_output_tokens=max_out,
        fast_enough=per_sample_high <= budget_net, calibrated=c.calibrated, precision=precision,
        decode_calibration=c.decode_rows, prefill_calibration=c.prefill_rows,
        memory_calibration=memory_rows, decode_error_pct=c.decode_error_pct, error_scope=c.error_scope,
        decode_at_bound=c.decode_at_bound, prefill_calibrated=c.prefill_calibrated,
        prefill_error_pct=c.prefill_error_pct, decode_evidence=c.decode_evidence, prefill_evidence=c.prefill_evidence)


def _trained_context(model: str | None) -> int | None:
    """The context the catalog says `model` was trained for (None where unknown)."""
    if not model:
        return None
    try:
        return catalog.get(model).context_length
    except LabError:
        return None
