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
a alone. Hardware without rows borrows, in this order: the card named by `calibrate_like` in
hardware.yaml, the median of the family's fits on that kind of hardware, the same hardware in
another family; every Calibration names the rows it came from.

Leave-one-out: each configuration (model x quantization x runtime x hardware) is left out in
turn, the constants refitted on the rest, and its rows predicted: absolute percentage errors
of decode tok/s, prefill seconds and memory.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from . import analysis, results, roofline
from .roofline import GB, Calibration, Hardware

PUBLISHED_FILE = Path(__file__).parent / "data" / "published_speeds.yaml"
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
    decode_tok_s: float
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


# ---------------------------------------------------------------------------------------------
# observations

def published_observations(path: Path = PUBLISHED_FILE) -> list[Observation]:
    """The published rows (data/published_speeds.yaml) as observations.

    Bytes per step: the row's `weights_gb` (the file size its source states) or, without one,
    the weights of its `arch` stored as its `quantization` (roofline.weight_bytes), plus each
    sequence's KV cache at `context_tokens`. decode_tok_s is per sequence. RooflineError for
    a row naming unknown hardware, architecture or quantization.
    """
    out = []
    for i, r in enumerate(yaml.safe_load(Path(path).read_text())):
        hw = roofline.hardware(r["hardware"])
        batch = int(r.get("batch_size", 1))
        q = roofline.quantization(r["quantization"]) if r.get("quantization") else None
        kv, flops, weights = 0.0, None, r.get("weights_gb")
        if r.get("arch"):
            arch = roofline.architecture(r["arch"])
            cbits = roofline.compute_bits(q, hw) if q else 16
            kv = batch * arch.kv_bytes_per_token(q.bits("kv_bits", cbits) if q else 16) * r["context_tokens"]
            flops = roofline.decode_flops(arch, r["context_tokens"], batch)
            if weights is None and q is not None:
                weights = roofline.weight_bytes(arch, q, cbits, per_token=True) / GB
        if weights is None:
            raise roofline.RooflineError(f"{path.name} row {i + 1} ({r['model']}): no weights_gb and no arch + "
                                         "quantization to compute them from; add one of them")
        step = weights * GB + kv
        precision = roofline.compute_precision(q, hw) if q else "int8"
        out.append(Observation(
            dataset="published", config=f"{r['model']} · {r['family']} · {hw.label} (published #{i + 1})",
            family=r["family"], hardware=hw.key,
            hardware_label=hw.label, kind=hw.kind, model=r["model"], quantization=r.get("quantization"),
            input_tokens=r["context_tokens"], output_tokens=0, bytes_per_token=step,
            bandwidth=hw.bandwidth_gb_s * GB, decode_tok_s=r["decode_tok_s"],
            roofline_s=roofline.roofline_seconds(step, flops, hw, precision),
            source=r["source"], fit=not r.get("exclude"), batch_size=batch, exclude=r.get("exclude")))
    return out


def lab_rows(results_dir: str | Path, batched: bool = False) -> pd.DataFrame:
    """Successful timed rows of the lab's speed tables: batch 1 (or, `batched`, every batch size)."""
    frames = [analysis.ok_timed(results.read(Path(results_dir) / f"{t}.jsonl")).assign(table=t)
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
            skipped.append(f"{model} {quant} on {analysis.machine_label(machine)}: {e}")
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


def _pooled(fits: list[Fit]) -> Fit:
    return Fit(_median(f.efficiency for f in fits), _median(f.overhead_s for f in fits),
               sum(f.points for f in fits), tuple(sorted({c for f in fits for c in f.configs})), "median")


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
            return o.roofline_s, 1 / o.decode_tok_s, 1.0
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
            eff, c, method = fit_line(x, t, peak[0])
            if method == "slope and intercept":
                fits[key] = Fit(eff, c, len(items), configs, method)
            else:
                deferred.append((key, x, t, peak[0], configs))
        for key, x, t, peak, configs in deferred:  # borrow the intercept from the family's fits
            kind = self.hardware_of[key[1]].kind
            same_family = {k: f for k, f in fits.items() if k[0] == key[0]}
            same_kind = [f.overhead_s for k, f in same_family.items() if self.hardware_of[k[1]].kind == kind]
            prior = _median(same_kind or [f.overhead_s for f in same_family.values()])
            eff, c, method = fit_line(x, t, peak, prior_overhead=prior)
            fits[key] = Fit(eff, c, len(x), configs, method)
        return fits

    def _fit_memory(self) -> dict[tuple[str, str], Fit]:
        groups: dict[tuple[str, str], list[Observation]] = {}
        for o in self.observations:
            if o.memory_gb is not None and o.resident_bytes is not None:
                groups.setdefault((o.family, o.hardware), []).append(o)
        return {key: Fit(1.0, _median(o.memory_gb - o.resident_bytes / GB for o in obs), len(obs),
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
            return pooled, (f"median of {len(kin)} {family} {scope} fits ({hw.label} unmeasured): "
                            f"eff {pooled.efficiency:.2f}, overhead {pooled.overhead_s * 1e3:.1f} ms "
                            f"({'; '.join(short(c) for c in pooled.configs)})"), True
        if fallback:
            gpus = [f for (fam, h), f in fits.items() if fam == family and self.hardware_of[h].kind == hw.kind]
            if gpus:
                pooled = _pooled(gpus)
                return pooled, (f"uncalibrated: no {family} row on a {hw.generation or hw.kind} card; median of its "
                                f"{len(gpus)} fits on other generations"), False
        return None, "", False

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
        m = self.memory.get((family, hw.key)) or self.memory.get((family, hw.calibrate_like))
        m_rows = (f"{family}: runtime memory {m.overhead_s:.2f} GB beyond weights and KV (median of "
                  f"{m.points} point{'s' * (m.points != 1)} of {'; '.join(short(c) for c in m.configs)})") if m else ""
        worst = self.pessimistic(family, hw.kind) if not calibrated else None
        if unbatched is not None:  # per sequence: a batch-1 step each, B of them one after another
            worst = unbatched
        if not calibrated and d is None and not d_rows:
            d_rows = (f"uncalibrated: no {family} row on a {hw.generation or hw.kind} card; range from the roofline "
                      + (f"ceiling to its worst fit on any GPU (eff {worst.efficiency:.2f}, overhead "
                         f"{worst.overhead_s * 1e3:.1f} ms)" if worst else "ceiling (no pessimistic bound)"))
        return Calibration(
            decode_efficiency=d.efficiency if d else 1.0, decode_overhead_s=d.overhead_s if d else 0.0,
            prefill_efficiency=p.efficiency if p else 1.0, prefill_overhead_s=p.overhead_s if p else 0.0,
            memory_overhead_gb=m.overhead_s if m else 0.0,
            decode_rows=d_rows or roofline.CEILING.decode_rows,
            prefill_rows=p_rows or f"no {family} prefill row on {hw.kind.upper()}: roofline ceiling (a lower bound on time)",
            memory_rows=m_rows or "none: weights + KV only (no measured memory row on this hardware)",
            decode_error_pct=decode_error_pct, calibrated=calibrated,
            pessimistic_efficiency=worst.efficiency if worst else None,
            pessimistic_overhead_s=worst.overhead_s if worst else None,
            pessimistic_unbatched=unbatched is not None)

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


def column_errors(card_out: pd.DataFrame, hardware: list[Hardware], families=("llama.cpp", "transformers", "bitsandbytes"),
                  batch_size: int = 1) -> pd.DataFrame:
    """Per runtime family and table column (a GPU): the median held-out decode error of the
    rows of that card (`calibrate_like` for a 2xT4), else of the other cards of its generation,
    with the scope it belongs to; "no rows" where the family has none on that generation.
    `card_out`: held_out(..., by="card")."""
    ok = card_out[card_out["in_fit"] & card_out["decode_tok_s_err_pct"].notna()
                  & card_out["batch_size"].eq(batch_size)] if not card_out.empty else card_out
    index = dict(roofline.hardware_table())
    rows = []
    for family in families:
        f = ok[ok["family"] == family]
        for hw in hardware:
            own = {hw.key, hw.calibrate_like} - {None}
            mine = f[f["hardware_key"].isin(own)]
            scope = f"{', '.join(sorted(mine['hardware'].unique()))} held out"
            if mine.empty:
                kin = [k for k, h in index.items() if h.generation == hw.generation and hw.generation]
                mine = f[f["hardware_key"].isin(kin)]
                scope = f"{hw.generation} cards held out ({', '.join(sorted(mine['hardware'].unique()))})"
            per_config = mine.groupby("config")["decode_tok_s_err_pct"].median()
            rows.append({"family": family, "hardware": hw.label, "configs": len(per_config),
                         "held_out_err_pct": float(per_config.median()) if len(per_config) else None,
                         "worst_err_pct": float(per_config.max()) if len(per_config) else None,
                         "scope": scope if len(per_config) else "no rows"})
    return pd.DataFrame(rows)


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

SEED_FILE = Path(__file__).parent / "data" / "seed_speeds.yaml"


def implied_efficiency(decode_tok_s: float, bytes_per_token: float, bandwidth_gb_s: float) -> float:
    """tok/s x bytes per token / bandwidth: the fraction of the bandwidth a decode rate needs
    (with no overhead; speed_facts.md s4)."""
    return decode_tok_s * bytes_per_token / (bandwidth_gb_s * GB)


def seed_check(calibrator: Calibrator, context_tokens: int = 200, path: Path = SEED_FILE) -> pd.DataFrame:
    """Every cell of the seed's speed table under each hardware its column could mean.

    Per cell and hypothesis: bytes read per token (weights + KV at `context_tokens`), the
    implied bandwidth efficiency, whether the model fits the hardware's memory, the calibrated
    prediction and measured / predicted. A cell is `plausible` when it fits and its implied
    efficiency is at most the highest of any published llama.cpp row (the physics ceiling the
    evidence shows).
    """
    seed = yaml.safe_load(Path(path).read_text())
    ceiling = max(implied_efficiency(o.decode_tok_s, o.bytes_per_token, o.bandwidth / GB)
                  for o in published_observations() if o.fit and o.family == "llama.cpp")
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
