"""Calibrating the roofline model on measured rows, and checking it by leave-one-out.

Nothing here is typed: per runtime family (llama.cpp, transformers, bitsandbytes, ...) and
hardware, the decode efficiency and per-token overhead are fitted to measured decode rates,
the prefill efficiency and overhead to measured prefill times, and the runtime's memory
overhead to measured peak memory. The rows are this lab's own (res/01_biggest_model/speed.jsonl
and length_scaling.jsonl, read with shared.results) and the published rows of
data/published_speeds.yaml, each with its source.

Fit (decode; prefill alike with FLOPs and peak FLOP/s): step seconds t = a x r + c, with r
the step's time at the roofline (max of bytes / bandwidth and FLOPs / peak) and
a = 1 / efficiency, least squares on relative error (each point weighted by
1/t), a > 0, c >= 0. A group whose points barely differ in bytes cannot separate a from c:
it takes c from the family's other fits on the same kind of hardware (their median) and fits
a alone. A GPU is calibrated by its own rows or those of the card named by `calibrate_like` in
hardware.yaml (a 2xT4 by the T4's); with fewer than MIN_OWN_ROWS of them it is a range from
its generation's rows (never a calibrated value with another card's error), and with none on
its generation it is uncalibrated (the roofline ceiling to the runtime's worst fit). Prefill
follows the same rule on published prompt-processing rows (llama-bench ppN). A fit whose
efficiency lands on its bound of 1 says so (Fit.at_bound). Every Calibration names the rows it
came from, with their sources, dates and builds.

Leave-one-out: each configuration (model x quantization x runtime x hardware) is left out in
turn, the constants refitted on the rest, and its rows predicted: absolute percentage errors
of decode tok/s, prefill seconds and memory. The error a GPU column carries (column_errors)
comes only from that card's own rows, one row and one source out.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from shared import results
from shared.speed import roofline
from shared.machine import DATA, machine_label
from shared.speed.roofline import GB, Calibration, Hardware

PUBLISHED_FILE = DATA / "published_speeds.yaml"
LAB_TABLES = ("speed", "length_scaling")


@dataclasses.dataclass(frozen=True)
class Observation:
    """One measured point: a configuration at one input / output length (medians of its rows)."""
    dataset: str                 # lab | published
    config: str                  # the unit left out by leave-one-out
    family: str
    hardware: str                # hardware key (GPU) or machine (CPU)
    hardware_label: str
    kind: str                    # gpu | cpu
    model: str
    quantization: str | None
    input_tokens: int
    output_tokens: int
    bytes_per_token: float       # read per decode step (roofline facts), bytes
    bandwidth: float             # bytes/s
    decode_tok_s: float | None   # None: a row with prompt processing only
    roofline_s: float            # a decode step at the roofline: max(bytes / bandwidth, FLOPs / peak)
    prefill_flops: float | None = None
    peak_flops: float | None = None
    prefill_s: float | None = None
    resident_bytes: float | None = None   # weights + KV at the full context
    memory_gb: float | None = None        # measured peak (model share, else process)
    source: str = ""
    fit: bool = True
    rows: int = 1
    batch_size: int = 1
    exclude: str | None = None   # why a published row is kept out of every fit and error
    date: str = ""               # when the source published it (published rows)
    build: str = ""              # the runtime build it ran ("not stated" where the source does not say)

    @property
    def evidence(self) -> str:
        """The row's source, date and build in one phrase (what an answer cites)."""
        return "; ".join(x for x in (self.source.split(";")[0], self.date, self.build) if x)


# ---------------------------------------------------------------------------------------------
# observations

def published_observations(path: Path = PUBLISHED_FILE) -> list[Observation]:
    """The published rows (data/published_speeds.yaml) as observations.

    Bytes per step: the row's `weights_gb` (the file size its source states) or, without one,
    the weights of its `arch` stored as its `quantization`: the published GGUF file of that model
    and type where data/gguf_files.yaml records one (as roofline.predict reads it), else
    parameters x bits per weight (roofline.weight_bytes); plus each sequence's KV cache at
    `context_tokens`. decode_tok_s is per sequence (None: a prompt-processing row only).
    `prefill_tok_s` over `prompt_tokens` gives the row's prefill seconds and FLOPs (with `arch`)
    at the card's peak in the runtime's precision. RooflineError for a row naming unknown
    hardware, architecture or quantization.
    """
    from shared.speed import modelfiles
    out = []
    for i, r in enumerate(yaml.safe_load(Path(path).read_text())):
        hw = roofline.hardware(r["hardware"])
        batch = int(r.get("batch_size", 1))
        q = roofline.quantization(r["quantization"]) if r.get("quantization") else None
        kv, flops, weights, arch = 0.0, None, r.get("weights_gb"), None
        if r.get("arch"):
            arch = roofline.architecture(r["arch"])
            cbits = roofline.compute_bits(q, hw) if q else 16
            kv = batch * arch.kv_bytes_per_token(q.bits("kv_bits", cbits) if q else 16) * r["context_tokens"]
            flops = roofline.decode_flops(arch, r["context_tokens"], batch)
            if weights is None and q is not None:
                file = modelfiles.published_size(r["arch"], q.key) if q.family == "llama.cpp" else None
                weights = roofline.weight_bytes(arch, q, cbits, per_token=True,
                                                published_bytes=file[0] if file else None) / GB
        if weights is None:
            raise roofline.RooflineError(f"{path.name} row {i + 1} ({r['model']}): no weights_gb and no arch + "
                                         "quantization to compute them from; add one of them")
        step = weights * GB + kv
        precision = roofline.compute_precision(q, hw) if q else "int8"
        prefill = {}
        if r.get("prefill_tok_s") and arch is not None and precision in hw.peak_tflops:
            n = int(r["prompt_tokens"])
            prefill = {"prefill_flops": roofline.prefill_flops(arch, n, 1), "peak_flops": hw.peak_flops(precision),
                       "prefill_s": n / r["prefill_tok_s"]}
        out.append(Observation(
            dataset="published", config=f"{r['model']} · {r['family']} · {hw.label} (published #{i + 1})",
            family=r["family"], hardware=hw.key,
            hardware_label=hw.label, kind=hw.kind, model=r["model"], quantization=r.get("quantization"),
            input_tokens=r["context_tokens"], output_tokens=0, bytes_per_token=step,
            bandwidth=hw.bandwidth_gb_s * GB, decode_tok_s=r["decode_tok_s"],
            roofline_s=roofline.roofline_seconds(step, flops, hw, precision), **prefill,
            source=r["source"], fit=not r.get("exclude"), batch_size=batch, exclude=r.get("exclude"),
            date=str(r.get("date", "")), build=str(r.get("build", ""))))
    return out


def lab_rows(results_dir: str | Path, batched: bool = False) -> pd.DataFrame:
    """Successful timed rows of the lab's speed tables: batch 1 (or, `batched`, every batch size)."""
    frames = [results.ok_timed(results.read(Path(results_dir) / f"{t}.jsonl")).assign(table=t)
              for t in LAB_TABLES]
    df = pd.concat([f for f in frames if not f.empty], ignore_index=True) if any(not f.empty for f in frames) else pd.DataFrame()
    if df.empty or batched:
        return df
    return df[df["batch_size"].eq(1)]


def lab_observations(results_dir: str | Path, peaks: list[dict], batched: bool = False) -> tuple[list[Observation], list[str]]:
    """This lab's rows as observations (medians per configuration, lengths and batch size), and
    the configurations skipped with the reason (hardware not measured, model facts missing).
    `batched`: rows of every batch size (weights read once a step, KV per sequence)."""
    df = lab_rows(results_dir, batched)
    out, skipped = [], []
    if df.empty:
        return out, skipped
    df = df.assign(quant=[roofline.quantization_of_row(r) for r in df.to_dict("records")])
    if "rss_before_load_mb" in df:
        model_share = df["peak_rss_mb"] - pd.to_numeric(df["rss_before_load_mb"], errors="coerce")
        df = df.assign(memory_mb=model_share.fillna(df["peak_rss_mb"]))
    else:
        df = df.assign(memory_mb=df["peak_rss_mb"])
    for (machine, model, quant), g in df.groupby(["machine", "model", "quant"]):
        try:
            hw = roofline.hardware(machine, peaks)
            arch = roofline.architecture(model)
            q = roofline.quantization(quant)
        except roofline.RooflineError as e:
            skipped.append(f"{model} {quant} on {machine_label(machine)}: {e}")
            continue
        cbits = roofline.compute_bits(q, hw)
        kv = arch.kv_bytes_per_token(q.bits("kv_bits", cbits))
        weights_read = roofline.weight_bytes(arch, q, cbits, per_token=True)
        resident = roofline.weight_bytes(arch, q, cbits, per_token=False)
        config = f"{model} · {quant} · {hw.label}"
        precision = roofline.compute_precision(q, hw)
        for (n_in, n_out, batch), p in g.groupby(["input_tokens", "output_tokens", "batch_size"]):
            batch = int(batch)
            step = weights_read + batch * kv * (n_in + n_out / 2)
            flops = roofline.decode_flops(arch, n_in + n_out / 2, batch)
            out.append(Observation(
                dataset="lab", config=config + (f" · batch {batch}" if batch > 1 else ""), batch_size=batch, family=q.family, hardware=hw.key, hardware_label=hw.label,
                kind=hw.kind, model=model, quantization=quant, input_tokens=int(n_in), output_tokens=int(n_out),
                bytes_per_token=step, bandwidth=hw.bandwidth_gb_s * GB,
                decode_tok_s=float(p["decode_tok_s"].median()),
                roofline_s=roofline.roofline_seconds(step, flops, hw, precision),
                prefill_flops=roofline.prefill_flops(arch, int(n_in), batch),
                peak_flops=hw.peak_flops(roofline.compute_precision(q, hw)),
                prefill_s=float(p["prefill_s"].median()), resident_bytes=resident + batch * kv * (n_in + n_out),
                memory_gb=float(p["memory_mb"].median()) * 2**20 / GB,
                source=f"{', '.join(sorted(p['table'].unique()))}.jsonl ({len(p)} rows)", rows=len(p)))
    return out, skipped


# ---------------------------------------------------------------------------------------------
# fitting

@dataclasses.dataclass(frozen=True)
class Fit:
    """t = x / (efficiency x peak) + overhead_s fitted on some observations (x: the roofline's
    bytes or FLOPs of a decode step, the FLOPs of a prefill)."""
    efficiency: float
    overhead_s: float
    points: int
    configs: tuple[str, ...]
    method: str                  # "slope and intercept" | "slope, intercept from the family" | ...
    evidence: tuple[str, ...] = ()   # source; date; build of the rows (Observation.evidence)
    cards: tuple[str, ...] = ()      # hardware keys of the rows

    @property
    def at_bound(self) -> bool:
        """The efficiency landed on its bound of 1 (the fit was capped there): a constant pinned to
        a bound was not determined by the rows, so it has no error to report."""
        return "capped at 1" in self.method or self.efficiency >= 0.999


@dataclasses.dataclass(frozen=True)
class MemoryFit:
    """A runtime's memory beyond weights and KV cache on a card (GB: CUDA context, buffers), the
    median of measured peak memory - resident weights - KV over `points` rows."""
    overhead_gb: float
    points: int
    configs: tuple[str, ...]
    method: str


def fit_line(x, t, peak: float, prior_overhead: float = 0.0, min_spread: float = 1.25) -> tuple[float, float, str]:
    """Fit t = x / (efficiency x peak) + overhead (x: bytes or FLOPs; t: seconds; peak: per s).

    Least squares on relative error. With x spread below `min_spread` (max / min), the
    overhead is `prior_overhead` and only the efficiency is fitted. Returns (efficiency,
    overhead_s, method).
    """
    x, t = np.asarray(x, float), np.asarray(t, float)
    if len(x) >= 2 and x.max() / x.min() >= min_spread:
        design = np.column_stack([x / t, 1 / t])
        (a, c), *_ = np.linalg.lstsq(design, np.ones_like(t), rcond=None)
        if a > 0 and c >= 0:
            return 1 / (a * peak), float(c), "slope and intercept"
        if a > 0:  # negative intercept: no overhead
            prior_overhead, method = 0.0, "slope, no intercept"
        else:
            method = "slope, intercept from the family"
    else:
        method = "slope, intercept from the family" if prior_overhead else "slope only"
    c = prior_overhead if np.all(t > prior_overhead) else 0.0
    w = x / t
    a = float((w * (1 - c / t)).sum() / (w * w).sum())
    if a * peak < 1:  # a borrowed overhead that would need efficiency > 1: the roof, overhead the rest
        a, c = 1 / peak, float(max(0.0, np.median(t - x / peak)))
        method += ", efficiency capped at 1"
    return 1 / (a * peak), float(c), method


def short(config: str) -> str:
    """A configuration's name without its hardware: "gemma-3-270m Q4_K_M", "Llama 7B Q4_0 #4"."""
    parts = config.split(" · ")
    if "(published #" in config:
        return f"{parts[0]} #{config.rsplit('#', 1)[1].rstrip(')')}"
    return " ".join(parts[:2])


def _median(values) -> float:
    return float(np.median(list(values))) if values else 0.0


def _union(fits: list[Fit], field: str) -> tuple[str, ...]:
    return tuple(sorted({c for f in fits for c in getattr(f, field)}))


def _pooled(fits: list[Fit]) -> Fit:
    method = "median" + (", efficiency capped at 1" if any(f.at_bound for f in fits) and len(fits) == 1 else "")
    return Fit(_median(f.efficiency for f in fits), _median(f.overhead_s for f in fits),
               sum(f.points for f in fits), _union(fits, "configs"), method, _union(fits, "evidence"), _union(fits, "cards"))


MIN_OWN_ROWS = 2   # a card x runtime with fewer rows of its own is a range, not a calibrated ✓


class Calibrator:
    """Fits of every (family, hardware) group of `observations`, and calibrations from them.

    Decode and prefill are fitted on batch-1 rows; rows decoding several sequences at once are
    fitted apart (`batched`), since a runtime's batched kernels are not its batch-1 kernels
    (bitsandbytes dequantizes once per step either way). A runtime is calibrated on a card by
    rows of that card, the card named by `calibrate_like`, or other cards of its generation;
    never by another runtime. Where there are none it is uncalibrated: the roofline ceiling and
    a pessimistic end (the runtime's worst fitted efficiency and overhead on any GPU). A batch
    above 1 is calibrated only by batched rows of the runtime on the card's generation; without
    them it is uncalibrated too, from the ceiling to no gain from batching (each sequence costs a
    batch-1 step of the runtime's batch-1 calibration, or of its worst fit).
    """

    def __init__(self, observations: list[Observation], hardware_of: dict[str, Hardware]):
        self.all_observations = [o for o in observations if o.fit]
        self.observations = [o for o in self.all_observations if o.batch_size == 1]
        self.hardware_of = hardware_of
        self.decode = self._fit_all("decode", self.observations)
        self.prefill = self._fit_all("prefill", self.observations)
        self.batched = self._fit_all("decode", [o for o in self.all_observations if o.batch_size > 1])
        self.memory = self._fit_memory()

    def _points(self, o: Observation, what: str):
        if what == "decode":
            return None if not o.decode_tok_s else (o.roofline_s, 1 / o.decode_tok_s, 1.0)
        if o.prefill_s is None or o.prefill_flops is None:
            return None
        return o.prefill_flops, o.prefill_s, o.peak_flops

    def _fit_all(self, what: str, observations: list[Observation]) -> dict[tuple[str, str], Fit]:
        groups: dict[tuple[str, str], list] = {}
        for o in observations:
            p = self._points(o, what)
            if p is not None:
                groups.setdefault((o.family, o.hardware), []).append((o, p))
        fits, deferred = {}, []
        for key, items in groups.items():
            x, t, peak = zip(*(p for _, p in items))
            configs = tuple(sorted({o.config for o, _ in items}))
            evidence = tuple(sorted({o.evidence for o, _ in items}))
            eff, c, method = fit_line(x, t, peak[0])
            if method == "slope and intercept":
                fits[key] = Fit(eff, c, len(items), configs, method, evidence, (key[1],))
            else:
                deferred.append((key, x, t, peak[0], configs, evidence))
        for key, x, t, peak, configs, evidence in deferred:  # borrow the intercept from the family's fits
            kind = self.hardware_of[key[1]].kind
            same_family = {k: f for k, f in fits.items() if k[0] == key[0]}
            same_kind = [f.overhead_s for k, f in same_family.items() if self.hardware_of[k[1]].kind == kind]
            if what == "prefill" and kind == "gpu" and not same_kind:
                prior = 0.0   # a GPU prefill borrows no CPU overhead: slope only
            else:
                prior = _median(same_kind or [f.overhead_s for f in same_family.values()])
            eff, c, method = fit_line(x, t, peak, prior_overhead=prior)
            fits[key] = Fit(eff, c, len(x), configs, method, evidence, (key[1],))
        return fits

    def _fit_memory(self) -> dict[tuple[str, str], MemoryFit]:
        groups: dict[tuple[str, str], list[Observation]] = {}
        for o in self.observations:
            if o.memory_gb is not None and o.resident_bytes is not None:
                groups.setdefault((o.family, o.hardware), []).append(o)
        return {key: MemoryFit(_median(o.memory_gb - o.resident_bytes / GB for o in obs), len(obs),
                               tuple(sorted({o.config for o in obs})), "median of measured - weights - KV")
                for key, obs in groups.items()}

    def _lookup(self, fits: dict, family: str, hw: Hardware, fallback: bool = False) -> tuple[Fit | None, str, bool]:
        """(fit, sentence saying which rows, calibrated) for `family` on `hw`.

        Own card, then `calibrate_like`, then the median of the family's fits on other cards
        of the same generation (GPUs) or kind (CPUs). With `fallback` (for held-out errors
        only) a card with none gets the median of the family's fits on every GPU, marked
        uncalibrated; without it, (None, "", False).
        """
        def describe(fit: Fit, where: str) -> str:
            constants = f"eff {fit.efficiency:.2f}, overhead {fit.overhead_s * 1e3:.1f} ms"
            if fit.at_bound:
                constants += " (efficiency at its bound of 1: pinned, not determined by the rows)"
            return f"{where}: {constants}; {fit.points} point{'s' * (fit.points != 1)} of {'; '.join(short(c) for c in fit.configs)}"
        if (family, hw.key) in fits:
            return fits[(family, hw.key)], describe(fits[(family, hw.key)], f"{family} on {hw.label}"), True
        like = hw.calibrate_like
        if like and (family, like) in fits:
            label = self.hardware_of[like].label
            return fits[(family, like)], describe(fits[(family, like)], f"{family} on {label} ({hw.label} unmeasured)"), True
        if hw.kind == "gpu":
            kin = [f for (fam, h), f in fits.items() if fam == family and self.hardware_of[h].kind == "gpu"
                   and self.hardware_of[h].generation == hw.generation and hw.generation]
            scope = f"{hw.generation} GPU"
        else:
            kin = [f for (fam, h), f in fits.items() if fam == family and self.hardware_of[h].kind == hw.kind]
            scope = hw.kind.upper()
        if kin:
            pooled = _pooled(kin)
            bound = " (efficiency at its bound of 1: pinned, not determined by the rows)" if pooled.at_bound else ""
            return pooled, (f"median of {len(kin)} {family} {scope} fits ({hw.label} unmeasured): "
                            f"eff {pooled.efficiency:.2f}, overhead {pooled.overhead_s * 1e3:.1f} ms{bound} "
                            f"({'; '.join(short(c) for c in pooled.configs)})"), True
        if fallback:
            gpus = [f for (fam, h), f in fits.items() if fam == family and self.hardware_of[h].kind == hw.kind]
            if gpus:
                pooled = _pooled(gpus)
                return pooled, (f"uncalibrated: no {family} row on a {hw.generation or hw.kind} card; median of its "
                                f"{len(gpus)} fits on other generations"), False
        return None, "", False

    def generation_fits(self, fits: dict, family: str, hw: Hardware) -> list[Fit]:
        """The family's fits on the GPUs of `hw`'s generation (its own card's among them)."""
        return [f for (fam, h), f in fits.items() if fam == family and self.hardware_of[h].kind == "gpu"
                and hw.generation and self.hardware_of[h].generation == hw.generation]

    def own_fit(self, fits: dict, family: str, hw: Hardware) -> Fit | None:
        """The family's fit on `hw` itself or the card it is `calibrate_like` (a 2xT4: the T4)."""
        return fits.get((family, hw.key)) or (fits.get((family, hw.calibrate_like)) if hw.calibrate_like else None)

    def _range(self, fits: dict, family: str, hw: Hardware, what: str) -> tuple[Fit, Fit, str] | None:
        """For a GPU with fewer than MIN_OWN_ROWS rows of `family`: (fastest, slowest, sentence) of
        the range its generation's rows give: the fastest fit of the generation (highest efficiency,
        lowest overhead) to its slowest (with a single fit in the generation: the runtime's worst fit
        on any GPU). None where the card has enough rows of its own or the generation has none."""
        own = self.own_fit(fits, family, hw)
        if hw.kind != "gpu" or (own is not None and own.points >= MIN_OWN_ROWS):
            return None
        gen = self.generation_fits(fits, family, hw)
        if not gen:
            return None
        fast = Fit(max(f.efficiency for f in gen), min(f.overhead_s for f in gen), sum(f.points for f in gen),
                   _union(gen, "configs"), "fastest of the generation", _union(gen, "evidence"), _union(gen, "cards"))
        slow_fits = gen if len(gen) > 1 else [f for (fam, h), f in fits.items()
                                              if fam == family and self.hardware_of[h].kind == "gpu"]
        slow = Fit(min(f.efficiency for f in slow_fits), max(f.overhead_s for f in slow_fits),
                   sum(f.points for f in slow_fits), _union(slow_fits, "configs"), "slowest", _union(slow_fits, "evidence"),
                   _union(slow_fits, "cards"))
        cards = ", ".join(sorted(self.hardware_of[k].label for k in fast.cards))
        n_own = own.points if own is not None else 0
        card = _card_label(hw, self.hardware_of)
        where = (f"its {hw.generation} rows ({cards})" if len(gen) > 1 else
                 f"its {hw.generation} rows ({cards}) to the runtime's slowest {what} fit on any GPU")
        text = (f"range, not calibrated: {card} has {n_own} {family} {what} row{'s' * (n_own != 1)} of its own "
                f"(fewer than {MIN_OWN_ROWS}); from {where}: eff {slow.efficiency:.2f}-{fast.efficiency:.2f}, "
                f"overhead {fast.overhead_s * 1e3:.1f}-{slow.overhead_s * 1e3:.1f} ms "
                f"({'; '.join(short(c) for c in fast.configs)})")
        if fast.at_bound:
            text += "; the fastest fit's efficiency is at its bound of 1 (pinned, not determined by the rows)"
        return fast, slow, text

    def pessimistic(self, family: str, kind: str = "gpu") -> Fit | None:
        """The runtime's worst fitted decode (lowest efficiency, highest overhead) on any card of
        `kind`; of every runtime where it has none."""
        fits = [f for (fam, h), f in self.decode.items() if fam == family and self.hardware_of[h].kind == kind]
        fits = fits or [f for (fam, h), f in self.decode.items() if self.hardware_of[h].kind == kind]
        if not fits:
            return None
        return Fit(min(f.efficiency for f in fits), max(f.overhead_s for f in fits), sum(f.points for f in fits),
                   tuple(sorted({c for f in fits for c in f.configs})), "worst")

    def calibration(self, family: str, hw: Hardware, decode_error_pct: float | None = None,
                    batch_size: int = 1, fallback: bool = False) -> Calibration:
        """The Calibration of `family` on `hw`, each constant with the rows it came from. No row of
        the runtime on the card's generation: uncalibrated, with the pessimistic constants (and,
        with `fallback`, the family's other-generation median as its central value)."""
        d, d_rows, calibrated = self._lookup(self.decode, family, hw, fallback)
        ranged = self._range(self.decode, family, hw, "decode") if calibrated and not fallback and batch_size == 1 \
            else None   # (a batch above 1 keeps its batched-row rule below)
        if ranged is not None:   # fewer than MIN_OWN_ROWS rows of the card: its generation's range
            d, _, d_rows = ranged
            calibrated = False
        unbatched = None   # batch > 1 without batched rows: the no-gain end of the range
        if batch_size > 1:
            b, b_rows, b_cal = self._lookup(self.batched, family, hw)
            if b is not None:
                d, d_rows, calibrated = b, "batched rows: " + b_rows, b_cal
            elif fallback:  # held-out errors only: the batch-1 constants, as batch_check shows them
                if d is not None:
                    d_rows = f"no batched {family} row on this generation; batch-1 calibration: " + d_rows
            else:
                unbatched = d or self.pessimistic(family, hw.kind)
                d_rows = (f"uncalibrated at batch {batch_size}: no batched {family} row on a {hw.generation or hw.kind} "
                          f"card; range from the roofline ceiling to no gain from batching (each sequence a "
                          f"batch-1 step: " + (d_rows if d is not None else "the runtime's worst fit on any GPU")
                          + ")") if unbatched else ""
                d, calibrated = None, False
        p, p_rows, _ = self._lookup(self.prefill, family, hw)
        p_slow, prefill_calibrated = None, p is not None
        p_range = self._range(self.prefill, family, hw, "prefill") if hw.kind == "gpu" else None
        if p_range is not None:   # fewer than 2 prompt-processing rows of the card: its generation's range
            p, p_slow, p_rows = p_range
            prefill_calibrated = False
        if p is None and hw.kind == "gpu":   # no prompt-processing row on the generation: ceiling to the worst GPU fit
            gpus = [f for (fam, h), f in self.prefill.items() if fam == family and self.hardware_of[h].kind == "gpu"]
            if gpus:
                p_slow = Fit(min(f.efficiency for f in gpus), max(f.overhead_s for f in gpus), sum(f.points for f in gpus),
                             _union(gpus, "configs"), "slowest", _union(gpus, "evidence"), _union(gpus, "cards"))
                p_rows = (f"uncalibrated: no {family} prompt-processing row on a {hw.generation} card; range from the "
                          f"compute ceiling to the runtime's slowest prefill fit on any GPU (eff {p_slow.efficiency:.3f})")
            prefill_calibrated = False
        m = self.memory.get((family, hw.key)) or self.memory.get((family, hw.calibrate_like))
        m_rows = (f"{family}: runtime memory {m.overhead_gb:.2f} GB beyond weights and KV (median of "
                  f"{m.points} point{'s' * (m.points != 1)} of {'; '.join(short(c) for c in m.configs)})") if m else ""
        worst = self.pessimistic(family, hw.kind) if not calibrated else None
        if ranged is not None:
            worst = ranged[1]
        if unbatched is not None:  # per sequence: a batch-1 step each, B of them one after another
            worst = unbatched
        if not calibrated and d is None and not d_rows:
            d_rows = (f"uncalibrated: no {family} row on a {hw.generation or hw.kind} card; range from the roofline "
                      + (f"ceiling to its worst fit on any GPU (eff {worst.efficiency:.2f}, overhead "
                         f"{worst.overhead_s * 1e3:.1f} ms)" if worst else "ceiling (no pessimistic bound)"))
        return Calibration(
            decode_efficiency=d.efficiency if d else 1.0, decode_overhead_s=d.overhead_s if d else 0.0,
            prefill_efficiency=p.efficiency if p else 1.0, prefill_overhead_s=p.overhead_s if p else 0.0,
            memory_overhead_gb=m.overhead_gb if m else 0.0,
            decode_rows=d_rows or roofline.CEILING.decode_rows,
            prefill_rows=p_rows or f"no {family} prefill row on {hw.kind.upper()}: roofline ceiling (a lower bound on time)",
            memory_rows=m_rows or "none: weights + KV only (no measured memory row on this hardware)",
            decode_error_pct=decode_error_pct, calibrated=calibrated,
            pessimistic_efficiency=worst.efficiency if worst else None,
            pessimistic_overhead_s=worst.overhead_s if worst else None,
            pessimistic_unbatched=unbatched is not None,
            decode_at_bound=bool(d is not None and d.at_bound),
            decode_evidence=" | ".join(d.evidence) if d is not None else "",
            prefill_calibrated=prefill_calibrated,
            prefill_pessimistic_efficiency=p_slow.efficiency if p_slow else None,
            prefill_pessimistic_overhead_s=p_slow.overhead_s if p_slow else None,
            prefill_evidence=" | ".join(p.evidence) if p is not None else "")

    def predict(self, o: Observation) -> dict:
        """Decode tok/s, prefill s and memory GB predicted for an observation's configuration (a
        card without calibration gets its runtime's other-generation median, marked)."""
        hw = self.hardware_of[o.hardware]
        c = self.calibration(o.family, hw, batch_size=o.batch_size, fallback=True)
        fits = self.batched if o.batch_size > 1 and self._lookup(self.batched, o.family, hw)[0] else self.decode
        has_fit = self._lookup(fits, o.family, hw, fallback=True)[0] is not None
        out = {"decode_tok_s": 1 / (o.roofline_s / c.decode_efficiency + c.decode_overhead_s) if has_fit else None}
        if o.prefill_flops is not None and o.peak_flops:
            out["prefill_s"] = o.prefill_flops / (c.prefill_efficiency * o.peak_flops) + c.prefill_overhead_s
        if o.resident_bytes is not None:
            out["memory_gb"] = o.resident_bytes / GB + c.memory_overhead_gb
        out["decode_calibration"] = c.decode_rows
        out["calibrated"] = c.calibrated
        return out


def hardware_index(observations: list[Observation], peaks: list[dict]) -> dict[str, Hardware]:
    """Every hardware the observations (and hardware.yaml) name, by key."""
    index = dict(roofline.hardware_table())
    for o in observations:
        if o.hardware not in index:
            index[o.hardware] = roofline.hardware(o.hardware, peaks)
    return index


def _loo_row(o: Observation, pred: dict, held_out: str) -> dict:
    row = {"dataset": o.dataset, "config": o.config, "family": o.family, "hardware": o.hardware_label,
           "hardware_key": o.hardware, "model": o.model, "quantization": o.quantization,
           "input_tokens": o.input_tokens, "output_tokens": o.output_tokens, "batch_size": o.batch_size,
           "bytes_per_token_gb": o.bytes_per_token / GB, "in_fit": o.fit, "source": o.source,
           "held_out": held_out, "calibrated_by": pred["decode_calibration"], "calibrated": pred["calibrated"]}
    for metric in ("decode_tok_s", "prefill_s", "memory_gb"):
        measured, predicted = getattr(o, metric), pred.get(metric)
        row[f"{metric}_measured"], row[f"{metric}_predicted"] = measured, predicted
        row[f"{metric}_err_pct"] = (abs(predicted / measured - 1) * 100
                                    if measured and predicted is not None else None)
    return row


def _as_frame(rows: list[dict]) -> pd.DataFrame:
    out = pd.DataFrame(rows)
    numeric = [f"{m}_{s}" for m in ("decode_tok_s", "prefill_s", "memory_gb") for s in ("measured", "predicted", "err_pct")]
    return out.astype({c: float for c in numeric if c in out})


def leave_one_out(observations: list[Observation], peaks: list[dict]) -> pd.DataFrame:
    """Each configuration predicted by constants fitted without it: one row per observation
    with measured, predicted and absolute percentage error of decode, prefill and memory."""
    index = hardware_index(observations, peaks)
    rows = []
    for config in dict.fromkeys(o.config for o in observations):
        cal = Calibrator([o for o in observations if o.config != config], index)
        rows += [_loo_row(o, cal.predict(o), config) for o in observations if o.config == config]
    return _as_frame(rows)


def held_out(observations: list[Observation], peaks: list[dict], by: str = "card") -> pd.DataFrame:
    """Leave one card (by="card": every row of a hardware key) or one source (by="source") out:
    refit on the rest and predict the held-out rows of published GPU measurements. A runtime
    with no other row on the held-out card's generation is predicted from its fits on other
    generations (`calibrated` False); one with no other GPU row at all gets no prediction.
    Excluded rows are predicted too but count in no error (`in_fit` False)."""
    if by not in ("card", "source"):
        raise ValueError(f"by must be 'card' or 'source', got {by!r}")
    index = hardware_index(observations, peaks)
    published = [o for o in observations if o.dataset == "published"]
    key = (lambda o: o.hardware) if by == "card" else (lambda o: o.source.split(" (")[0].split(";")[0])
    rows = []
    for group in dict.fromkeys(key(o) for o in published):
        cal = Calibrator([o for o in observations if not (o.dataset == "published" and key(o) == group)], index)
        rows += [_loo_row(o, cal.predict(o), group) for o in published if key(o) == group]
    return _as_frame(rows)


def _card_label(hw: Hardware, index: dict) -> str:
    """Whose rows count as the card's own: a multi-GPU card's single card ("T4" for a 2xT4), a card
    with a twin ("P100 (or P100 12GB)"), else the card."""
    if not hw.calibrate_like or hw.calibrate_like not in index:
        return hw.label
    like = index[hw.calibrate_like].label
    return like if hw.count > 1 else f"{hw.label} (or {like})"


def _source_key(o: Observation) -> str:
    """The source an observation is left out with (its publication, without the table detail)."""
    return o.source.split(" (")[0].split(";")[0]


def _own_rows(observations: list[Observation], family: str, hw: Hardware, what: str = "decode") -> list[Observation]:
    """Published batch-1 rows in the fit of `family` on `hw` itself or the card it is calibrated
    like (a 2xT4: the T4's), with a decode rate (what="decode") or a prefill time ("prefill")."""
    keys = {hw.key, hw.calibrate_like} - {None}
    return [o for o in observations if o.dataset == "published" and o.fit and o.batch_size == 1 and o.family == family
            and o.hardware in keys and (o.decode_tok_s if what == "decode" else o.prefill_s)]


def _errors(observations: list[Observation], index: dict, rows: list[Observation], what: str) -> tuple[list, list]:
    """Absolute % errors of `rows` (metric `what`: decode_tok_s or prefill_s), each predicted by
    constants fitted without it (one row out) and without every row of its source (one source out)."""
    def err(o, cal):
        predicted = cal.predict(o).get(what)
        measured = getattr(o, what)
        return abs(predicted / measured - 1) * 100 if predicted and measured else None
    loo = [err(o, Calibrator([x for x in observations if x is not o], index)) for o in rows]
    loso = []
    for source in dict.fromkeys(_source_key(o) for o in rows):
        cal = Calibrator([x for x in observations if _source_key(x) != source or x.dataset != "published"], index)
        loso += [err(o, cal) for o in rows if _source_key(o) == source]
    return [e for e in loo if e is not None], [e for e in loso if e is not None]


def column_errors(observations: list[Observation], peaks: list[dict], hardware: list[Hardware],
                  families=("llama.cpp", "transformers", "bitsandbytes")) -> pd.DataFrame:
    """Per runtime family and table column (a GPU): the held-out decode error of that card's own
    rows (its `calibrate_like` card's for a 2xT4) only, each row predicted from constants fitted
    without it (`held_out_err_pct`, median; `worst_err_pct`) and without its whole source
    (`loso_err_pct`: one source out, the card's rows predicted from what is left: another
    source on the card, else its generation). A column with fewer than MIN_OWN_ROWS rows has no
    error: it is a range from its generation's rows (`scope` says so). The prefill error of the
    column: its generation's prompt-processing rows, one row out (`prefill_err_pct`, with
    `prefill_rows`). Batch-1 rows in the fit only."""
    index = hardware_index(observations, peaks)
    out = []
    for family in families:
        for hw in hardware:
            own = _own_rows(observations, family, hw)
            cards = ", ".join(sorted({o.hardware_label for o in own}))
            row = {"family": family, "hardware": hw.label, "configs": len(own), "held_out_err_pct": None,
                   "worst_err_pct": None, "loso_err_pct": None}
            if len(own) >= MIN_OWN_ROWS:
                loo, loso = _errors(observations, index, own, "decode_tok_s")
                row.update(held_out_err_pct=float(np.median(loo)) if loo else None,
                           worst_err_pct=float(np.max(loo)) if loo else None,
                           loso_err_pct=float(np.median(loso)) if loso else None,
                           scope=f"{len(own)} {cards} rows, one row out (one source out: loso)")
            else:
                gen = sorted({o.hardware_label for o in observations if o.dataset == "published" and o.fit
                              and o.family == family and o.decode_tok_s and index[o.hardware].generation == hw.generation
                              and hw.generation})
                card = _card_label(hw, index)
                row["scope"] = (f"range: {len(own)} {card} row{'s' * (len(own) != 1)} (fewer than {MIN_OWN_ROWS}); "
                                + (f"from {hw.generation} rows ({', '.join(gen)})" if gen else f"no {hw.generation} row"))
            gen_pre = [o for o in observations if o.dataset == "published" and o.fit and o.batch_size == 1
                       and o.family == family and o.prefill_s and hw.generation
                       and index[o.hardware].generation == hw.generation]
            pre_loo = _errors(observations, index, gen_pre, "prefill_s")[0] if len(gen_pre) >= MIN_OWN_ROWS else []
            row["prefill_rows"] = len(gen_pre)
            row["prefill_err_pct"] = float(np.median(pre_loo)) if pre_loo else None
            out.append(row)
    return pd.DataFrame(out)


def accuracy(loo: pd.DataFrame, by: list[str] | None = None) -> pd.DataFrame:
    """Median and worst absolute percentage error of each metric (per `by` groups, by
    configuration: each configuration's rows count once, as their median)."""
    if loo.empty:
        return pd.DataFrame()
    by = by or ["dataset"]
    per_config = loo.groupby(by + ["config"]).median(numeric_only=True).reset_index()
    out = []
    for keys, g in per_config.groupby(by):
        row = dict(zip(by, keys if isinstance(keys, tuple) else (keys,)))
        row["configs"] = len(g)
        for metric in ("decode_tok_s", "prefill_s", "memory_gb"):
            err = g[f"{metric}_err_pct"].dropna()
            row[f"{metric}_median_err_pct"] = err.median() if len(err) else None
            row[f"{metric}_worst_err_pct"] = err.max() if len(err) else None
        out.append(row)
    return pd.DataFrame(out)


def calibrate(results_dir: str | Path, peaks: list[dict]):
    """(observations, skipped configurations, Calibrator on all of them, hardware index)."""
    lab, skipped = lab_observations(results_dir, peaks)
    observations = lab + published_observations()
    index = hardware_index(observations, peaks)
    return observations, skipped, Calibrator(observations, index), index


# ---------------------------------------------------------------------------------------------
# the seed's speed table against physics

SEED_FILE = DATA / "seed_speeds.yaml"


def implied_efficiency(decode_tok_s: float, bytes_per_token: float, bandwidth_gb_s: float) -> float:
    """tok/s x bytes per token / bandwidth: the fraction of the bandwidth a decode rate needs
    (with no overhead; speed_facts.md s4)."""
    return decode_tok_s * bytes_per_token / (bandwidth_gb_s * GB)


def efficiency_ceiling(observations: list[Observation] | None = None) -> float:
    """The plausibility ceiling: the highest implied bandwidth efficiency (implied_efficiency) of
    any published llama.cpp row in the fit. A prediction above it asks more of the card than any
    public measurement showed (seed_check rules seed cells out with it; shared/speed/predictor.py flags
    a cell above it instead of calling it fast enough)."""
    rows = [o for o in (observations if observations is not None else published_observations())
            if o.dataset == "published" and o.fit and o.family == "llama.cpp" and o.decode_tok_s]
    if not rows:
        raise roofline.RooflineError("no published llama.cpp row in the fit: no plausibility ceiling")
    return max(implied_efficiency(o.decode_tok_s, o.bytes_per_token, o.bandwidth / GB) for o in rows)


def seed_check(calibrator: Calibrator, context_tokens: int = 200, path: Path = SEED_FILE) -> pd.DataFrame:
    """Every cell of the seed's speed table under each hardware its column could mean.

    Per cell and hypothesis: bytes read per token (weights + KV at `context_tokens`), the
    implied bandwidth efficiency, whether the model fits the hardware's memory, the calibrated
    prediction and measured / predicted. A cell is `plausible` when it fits and its implied
    efficiency is at most the highest of any published llama.cpp row (the physics ceiling the
    evidence shows).
    """
    seed = yaml.safe_load(Path(path).read_text())
    ceiling = efficiency_ceiling()
    rows = []
    for cell in seed["cells"]:
        column = seed["columns"][cell["column"]]
        quant = cell.get("quantization", column["quantization"])
        for key in column["hypotheses"]:
            hw = roofline.hardware(key)
            cal = calibrator.calibration(column["family"], hw)
            p = roofline.predict(cell["model"], quant, hw, input_tokens=context_tokens, output_tokens=1,
                                 calibration=cal, name=cell["model"], budget_s=1.0)
            eff = implied_efficiency(cell["decode_tok_s"], p.bytes_per_token_gb * GB, hw.bandwidth_gb_s)
            offered = None if column.get("kaggle", True) is False else (hw.key in seed.get("kaggle_offers", []) or any(
                roofline.hardware(k).generation == hw.generation and roofline.hardware(k).label.endswith(hw.label)
                for k in seed.get("kaggle_offers", [])))
            rows.append({"label_gpus": column.get("label_gpus"), "gpus": hw.count, "kaggle": offered,
                         "column": cell["column"], "model": cell["model"], "quantization": quant,
                         "seed_tok_s": cell["decode_tok_s"], "hypothesis": hw.label,
                         "bytes_per_token_gb": p.bytes_per_token_gb, "implied_eff": eff,
                         "memory_gb": p.memory_gb, "memory_available_gb": p.memory_available_gb,
                         "fits": p.fits_memory, "predicted_tok_s": p.decode_tok_s,
                         "seed_over_predicted": cell["decode_tok_s"] / p.decode_tok_s,
                         "plausible": bool(p.fits_memory is not False and eff <= ceiling),
                         "calibration": cal.decode_rows, "note": cell.get("quantization_note", "")})
    out = pd.DataFrame(rows)
    out.attrs["efficiency_ceiling"] = ceiling
    return out


def seed_verdicts(check: pd.DataFrame) -> pd.DataFrame:
    """Per seed column and hypothesis: cells that are plausible, and how far the calibrated
    model is from the seed's numbers (median |log(seed / predicted)|, as a factor). Supported:
    every cell plausible and a factor within 10% of the best such hypothesis (ties are kept:
    the evidence does not separate them). `with_labels`: supported, a card Kaggle offers (or a
    single GPU of the T4 x2 option), and the GPU count the seed's label names."""
    rows = []
    for (column, hyp), g in check.groupby(["column", "hypothesis"], sort=False):
        factor = float(np.exp(np.median(np.abs(np.log(g["seed_over_predicted"])))))
        label = g["label_gpus"].iloc[0] if "label_gpus" in g else None
        rows.append({"column": column, "hypothesis": hyp, "cells": len(g),
                     "kaggle_card": None if "kaggle" not in g or g["kaggle"].iloc[0] is None else bool(g["kaggle"].iloc[0]),
                     "label_gpu_count_agrees": None if label is None or pd.isna(label) else bool(g["gpus"].iloc[0] == label),
                     "plausible": int(g["plausible"].sum()), "no_fit": int((g["fits"] == False).sum()),  # noqa: E712
                     "max_implied_eff": g["implied_eff"].max(), "median_factor_off": factor})
    out = pd.DataFrame(rows)
    out["supported"] = False
    for column, g in out.groupby("column", sort=False):
        ok = g[g["plausible"] == g["cells"]]
        if not ok.empty:
            best = ok["median_factor_off"].min()
            out.loc[ok.index[ok["median_factor_off"] <= 1.1 * best], "supported"] = True
    # the seed's labels as evidence: a card Kaggle offers (a T4 of a T4 x2 counts) with the GPU count the label names
    kaggle = out["kaggle_card"].fillna(True).astype(bool)
    count = out["label_gpu_count_agrees"].fillna(True).astype(bool)
    out["with_labels"] = out["supported"] & kaggle & count
    return out


def batch_check(observations: list[Observation], batched_lab: list[Observation], peaks: list[dict]) -> pd.DataFrame:
    """Rows decoding several sequences at once (this lab's CPU rows in `batched_lab` and the
    published batched rows) predicted by the batch-1 calibration of their runtime and card,
    with the weights read once a step for the batch and the KV cache per sequence: measured and
    predicted decode tok/s per sequence and throughput, and the absolute error %. Shows how
    far the batch-1 roofline carries to a batch, and why batched rows are fitted apart."""
    single = [o for o in observations if o.batch_size == 1]
    cal = Calibrator(single, hardware_index(observations + batched_lab, peaks))
    rows = []
    for o in [o for o in batched_lab if o.batch_size > 1] + [o for o in observations if o.batch_size > 1 and o.fit]:
        c = cal.calibration(o.family, cal.hardware_of[o.hardware])
        if not c.calibrated:
            continue
        predicted = 1 / (o.roofline_s / c.decode_efficiency + c.decode_overhead_s)
        rows.append({"dataset": o.dataset, "family": o.family, "hardware": o.hardware_label, "model": o.model,
                     "quantization": o.quantization, "batch_size": o.batch_size,
                     "measured_tok_s": o.decode_tok_s, "predicted_tok_s": predicted,
                     "measured_throughput": o.decode_tok_s * o.batch_size,
                     "predicted_throughput": predicted * o.batch_size,
                     "err_pct": abs(predicted / o.decode_tok_s - 1) * 100})
    return pd.DataFrame(rows)
