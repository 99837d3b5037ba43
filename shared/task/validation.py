"""The lab's own validation set: hand-written texts and prompts, rewritten by a model we run.

Kaggle gives no training pairs, so we make them: validation_sources.yaml holds 36 texts (by
genre) and 30 rewrite prompts (by kind); `pairs` picks a reproducible, evenly spread sample of
(text, prompt) combinations and `make_rows` asks a model to do each rewrite, one row per pair
with everything needed to trace it (model, runtime, seed, commit, machine). `set_table` and
`load_set` turn what a user types for a set (a name, a file path) into its file, or a LabError
saying what exists, before any model or encoder is loaded.
"""
from __future__ import annotations

import difflib
import json
import math
import os
import random
import re
from collections import defaultdict
from pathlib import Path
from typing import Iterator, Sequence

import yaml
from tqdm.auto import tqdm

from shared import machine, results
from shared.models import timing
from shared.task import dataio
from shared.errors import LabError
from shared.machine import DATA

SOURCES_FILE = DATA / "validation_sources.yaml"
LAB_COLUMNS = ("original", "rewritten", "prompt")  # a set's rows as make_rows writes them
FILE_SUFFIXES = (".csv", *dataio.JSONL_SUFFIXES)    # a competition file, in any letter case


def load_sources() -> tuple[list[dict], list[dict]]:
    """(texts, prompts): texts have id, genre, text; prompts have id, kind, prompt."""
    data = yaml.safe_load(SOURCES_FILE.read_text())
    texts = [{**t, "text": t["text"].strip()} for t in data["texts"]]
    prompts = [{**p, "prompt": p["prompt"].strip()} for p in data["prompts"]]
    return texts, prompts


def _spread(items: list[dict], key: str, rng: random.Random) -> list[dict]:
    """`items` shuffled so that groups (genres, kinds) take turns: every run of k consecutive
    items covers min(k, number of groups) groups."""
    groups = defaultdict(list)
    for item in items:
        groups[item[key]].append(item)
    order = sorted(groups)
    rng.shuffle(order)
    for name in order:
        rng.shuffle(groups[name])
    out, depth = [], max(len(g) for g in groups.values())
    for i in range(depth):
        out += [groups[name][i] for name in order if i < len(groups[name])]
    return out


def pairs(n_samples: int, seed: int, max_words: int | None = None) -> list[dict]:
    """`n_samples` distinct (text, prompt) pairs, the same for the same seed, spread over genres
    and prompt kinds. Each has text_id, genre, prompt_id, kind, original and prompt.

    max_words: use only texts of at most this many words (shorter rewrites cost less on a CPU);
    None uses every text."""
    texts, prompts = load_sources()
    if max_words is not None:
        texts = [t for t in texts if len(t["text"].split()) <= max_words]
    total = len(texts) * len(prompts)
    if not 0 < n_samples <= total:
        raise LabError(f"n_samples must be between 1 and {total} (texts x prompts"
                       f"{'' if max_words is None else f', texts of at most {max_words} words'}), "
                       f"got {n_samples}")
    rng = random.Random(seed)
    texts, prompts = _spread(texts, "genre", rng), _spread(prompts, "kind", rng)
    nt, np_ = len(texts), len(prompts)
    cycle = math.lcm(nt, np_)  # pairs (i mod nt, i mod np) repeat after this many
    out = []
    for i in range(n_samples):
        # shifting the prompt index by one per cycle reaches every combination exactly once
        t, p = texts[i % nt], prompts[(i + i // cycle) % np_]
        out.append({"text_id": t["id"], "genre": t["genre"], "prompt_id": p["id"],
                    "kind": p["kind"], "original": t["text"], "prompt": p["prompt"]})
    return out


def make_rows(lm, n_samples: int, seed: int, max_new_tokens: int = 256,
              progress: bool = True, max_words: int | None = None,
              held_out_fraction: float = 0.5) -> Iterator[dict]:
    """Rewrite each pair with `lm` (the competition's form: prompt, blank line, text) and yield
    one row per pair, with its `split` ("train" or "held_out", by prompt: see split_by_prompt).
    A failing pair yields a row with `error` set and an empty rewrite."""
    info = machine.info()
    chosen = pairs(n_samples, seed, max_words)
    held = split_by_prompt([p["prompt"] for p in chosen], held_out_fraction, seed,
                           groups=[p["kind"] for p in chosen])
    for index, pair in enumerate(tqdm(chosen, desc=f"rewrite {lm.name}", disable=not progress)):
        row = {"index": index, **pair, "split": "held_out" if held[index] else "train",
               "rewritten": "", "generator": lm.name,
               "generator_runtime": lm.runtime, "max_new_tokens": max_new_tokens, "seed": seed,
               "max_words": max_words, "input_tokens": 0,
               "output_tokens": 0, "stop_reason": None, "seconds": None, "error": None,
               "machine": info["machine"], "git_commit": info["git_commit"]}
        try:
            message = {"role": "user", "content": f"{pair['prompt']}\n\n{pair['original']}"}
            rec = timing.generate(lm, messages=[message], max_new_tokens=max_new_tokens)
            row.update(rewritten=rec.text.strip(), output_tokens=rec.output_tokens,
                       input_tokens=rec.input_tokens, stop_reason=rec.stop_reason,
                       seconds=rec.total_s)
        except Exception as e:  # recorded in the row; the other pairs still run
            row["error"] = f"{type(e).__name__}: {e}"
        row["timestamp"] = machine.info()["timestamp"]
        yield row


def split_by_prompt(prompts: Sequence[str], held_out_fraction: float, seed: int,
                    groups: Sequence[str] | None = None) -> list[bool]:
    """Which rows are held out (True), deciding by distinct prompt: every row of a prompt lands
    on the same side, so a held-out score is on prompts the training side never saw.

    About `held_out_fraction` of the distinct prompts are held out (at least one, and at least
    one is kept for training; a single prompt is never held out), taken in turn from each group
    (prompt kind) when `groups` is given, in an order fixed by `seed`.
    """
    if not 0 < held_out_fraction < 1:
        raise LabError(f"held_out_fraction must be between 0 and 1 (exclusive), got {held_out_fraction}")
    if groups is not None and len(groups) != len(prompts):
        raise LabError(f"{len(prompts)} prompts but {len(groups)} groups; they must pair up")
    kind = {}
    for i, prompt in enumerate(prompts):
        kind.setdefault(prompt, groups[i] if groups is not None else "")
    items = [{"prompt": p, "kind": k} for p, k in sorted(kind.items())]
    order = [item["prompt"] for item in _spread(items, "kind", random.Random(seed))]
    n_held = min(max(1, round(held_out_fraction * len(order))), len(order) - 1)
    held = set(order[:n_held])  # at least one prompt on each side; a single prompt stays in train
    return [p in held for p in prompts]


def with_split(rows, held_out_fraction: float, seed: int):
    """`rows` (a set's DataFrame, columns prompt and maybe kind, seed) with a `split` column.

    A set that has one keeps it. A set made before make_rows recorded it (the committed
    validation_smollm2.jsonl) gets the one make_rows gives the same rows: split_by_prompt over
    its prompts, grouped by kind, with the seed it was made with (its `seed` column) or `seed`.
    """
    if "split" in rows and rows["split"].notna().all():
        return rows
    recorded = rows["seed"].dropna().unique() if "seed" in rows else []
    seed = int(recorded[0]) if len(recorded) == 1 else seed
    held = split_by_prompt(rows["prompt"].tolist(), held_out_fraction, seed,
                           groups=rows["kind"].tolist() if "kind" in rows else None)
    return rows.assign(split=["held_out" if h else "train" for h in held])


def _lab_sets(results_dir: Path) -> list[str]:
    """Names of the validation sets in `results_dir`: JSON-lines files whose first row has the
    columns make_rows writes."""
    names = []
    for path in sorted(Path(results_dir).glob("*.jsonl")):
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                first = json.loads(f.readline())
        except (OSError, ValueError):
            continue
        if isinstance(first, dict) and set(LAB_COLUMNS) <= set(first):
            names.append(path.stem)
    return names


def _available(results_dir: Path, typed: str = "") -> str:
    names = _lab_sets(results_dir)
    close = difflib.get_close_matches(typed.lower(), [n.lower() for n in names], n=1, cutoff=0.6)
    hint = f"did you mean {next(n for n in names if n.lower() == close[0])!r}? " if close else ""
    return (f"{hint}Sets in {results_dir}: {', '.join(names) or 'none'} (make one with "
            "make_validation_set.ipynb), or give the path of a competition CSV / JSON-lines file "
            "with a rewrite_prompt column")


def made_otherwise(rows, table: Path, **settings) -> str | None:
    """A note when the set `rows` (read from `table`) was made with other `settings`
    (max_new_tokens, seed: columns of its rows) than the notebook asks for, else None. A set is
    reused by its name (prompt_engineering reads it by name): the note says so and how to get a
    set made with these settings."""
    if len(rows) == 0:
        return None
    differ = {k: sorted(map(str, rows[k].dropna().unique())) for k, v in settings.items()
              if k in rows and set(rows[k].dropna().unique()) - {v}}
    if not differ:
        return None
    made = ", ".join(f"{k} {'/'.join(v)}" for k, v in differ.items())
    asked = ", ".join(f"{k} {settings[k]}" for k in differ)
    return (f"note: {machine.shown(table)} was made with {made}, not {asked}: reused as it is (a set is "
            "reused by its name); give another set_name for a new set, or redo=True to make this one again")


def set_table(set_name: str, results_dir: str | os.PathLike) -> Path:
    """`<results_dir>/<set_name>.jsonl`, the file of a validation set (it need not exist yet).

    LabError unless `set_name` is a plain name: not blank, no folder, no file suffix."""
    results_dir = Path(results_dir)
    if not isinstance(set_name, str) or not set_name.strip():
        raise LabError(f"the set name is {set_name!r}; give a name such as 'validation_smollm2'")
    if not re.fullmatch(r"[\w.-]+", set_name) or Path(set_name).suffix.lower() in FILE_SUFFIXES:
        raise LabError(f"set name {set_name!r} is not a plain name (letters, digits, '_', '-', '.'; "
                       f"no folder, no {'/'.join(FILE_SUFFIXES)} suffix): the set is the file "
                       f"{results_dir}/<name>.jsonl, e.g. 'validation_smollm2'")
    return results_dir / f"{set_name}.jsonl"


def _find_file(typed: str, results_dir: Path) -> Path:
    path = Path(typed).expanduser()
    tried = [path] if path.is_absolute() else [Path.cwd() / path, machine.REPO / path, results_dir / path]
    for candidate in tried:
        if candidate.is_file():
            return candidate
    raise LabError(f"validation set {typed!r}: no such file (looked for "
                   f"{', '.join(str(t) for t in dict.fromkeys(tried))}). "
                   + _available(results_dir, path.stem))


def _usable(rows, source: str):
    missing = [c for c in LAB_COLUMNS if c not in rows]
    if missing:
        raise LabError(f"{source}: not a validation set (no column {', '.join(missing)}); "
                       "make one with make_validation_set.ipynb")
    error = rows["error"] if "error" in rows else None
    ok = rows["rewritten"].map(lambda t: isinstance(t, str) and bool(t.strip()))
    if error is not None:
        ok &= error.isna()
    if not ok.any():
        raise LabError(f"{source}: none of its {len(rows)} rows has a rewrite (every one failed "
                       "or is blank); make the set again (make_validation_set.ipynb, redo=True)")
    return rows[ok].reset_index(drop=True)


def load_set(validation_set: str | os.PathLike, results_dir: str | os.PathLike):
    """(pairs, set_name): the pairs a notebook scores, from what a user types for a set.

    `validation_set` is a set name (`<results_dir>/<name>.jsonl`, made by make_validation_set)
    or the path of a competition file with a rewrite_prompt column (.csv, .jsonl, .ndjson in
    any letter case), relative to the working directory, the repository or `results_dir`.
    pairs is a DataFrame in the lab's columns (original, rewritten, prompt, and id or text_id,
    prompt_id, kind, split when the set has them), failed rewrites and rows with an empty cell
    left out; set_name is the
    name or the file's stem. LabError, naming the sets that exist, for a name or path that
    does not, a file that is not a set, or a set without one usable row.
    """
    results_dir = Path(results_dir)
    typed = str(validation_set).strip() if isinstance(validation_set, (str, os.PathLike)) else ""
    if not typed:
        raise LabError(f"validation_set is {validation_set!r}; " + _available(results_dir))
    path = Path(typed)
    if path.suffix.lower() in FILE_SUFFIXES or len(path.parts) > 1:
        found = _find_file(typed, results_dir)
        if found.suffix.lower() in dataio.JSONL_SUFFIXES and found.stem in _lab_sets(found.parent):
            return _usable(results.read(found), str(found)), found.stem  # a set made by the lab
        pairs = dataio.read_pairs(found, required=(*dataio.REQUIRED, dataio.PROMPT), blanks=True)
        whole = pairs[pairs.drop(columns="id").apply(lambda c: c.str.strip().ne("")).all(axis=1)]
        if whole.empty:  # a row with an empty text or prompt is not a pair, as a failed rewrite
            raise LabError(f"{found}: none of its {len(pairs)} rows has all of original_text, "
                           "rewritten_text and rewrite_prompt")
        return dataio.to_lab(whole.reset_index(drop=True)), found.stem
    table = set_table(typed, results_dir)
    if not table.is_file():
        raise LabError(f"validation set {typed!r}: there is no {table}. " + _available(results_dir, typed))
    return _usable(results.read(table), str(table)), typed
