"""The competition's data format, both ways: CSV (or JSON lines) of rewrite pairs, and submissions.

Kaggle's files have one row per sample with `id`, `original_text`, `rewritten_text` and, in
training data, `rewrite_prompt`; a submission has `id` and `rewrite_prompt`.

    pairs = read_pairs("test.csv")                      # DataFrame, every cell checked
    write_csv(pairs, "copy.csv")                         # atomic: all of it or nothing
    write_csv(from_validation(rows), "lab_set.csv")      # the lab's set in the same format

Every problem with a file is a LabError naming the row and the column (rows are counted from 1,
the header not included): a missing column, an empty or non-text cell, a duplicate id, a file
that is not CSV, bytes that are not UTF-8 (UTF-16 and UTF-32 are read when the file starts with
their byte-order mark). A cell may be as long as the file: csv's own field_size_limit (131072
characters) is lifted while reading, since write_csv (pandas) writes longer cells. Writing goes
to a temporary file in the same folder, then one rename, so a failure never leaves a
half-written file behind.
"""
from __future__ import annotations

import codecs
import csv
import io
import json
import os
import tempfile
from pathlib import Path

import pandas as pd

from .catalog import LabError

REQUIRED = ("id", "original_text", "rewritten_text")
PROMPT = "rewrite_prompt"                     # present in training data, absent from the test file
SUBMISSION = ("id", PROMPT)
JSONL_SUFFIXES = (".jsonl", ".ndjson")


class DataFileError(LabError):
    """A data file the lab cannot read as rewrite pairs; the message names row and column."""


# a file that starts with one of these byte-order marks is in that encoding (Excel and pandas
# write UTF-16 with a BOM); UTF-32's little-endian mark begins with UTF-16's, so it comes first
BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def _decode(path: Path) -> str:
    raw = path.read_bytes()
    codec = next((codec for bom, codec in BOMS if raw.startswith(bom)), None)
    if codec is not None:
        try:
            return raw.decode(codec)
        except UnicodeDecodeError as e:
            raise DataFileError(f"{path}: starts with a {codec.upper()} byte-order mark but byte "
                                f"{e.start} is not {codec.upper()}; save the file as UTF-8") from e
    if b"\x00" in raw[:65536]:
        raise DataFileError(f"{path}: not a text file (it holds NUL bytes); expected a CSV with "
                            f"columns {', '.join(REQUIRED)}")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise DataFileError(f"{path}: line {line} (byte {e.start}) is not UTF-8 "
                            f"({raw[e.start:e.start + 4]!r}); save the file as UTF-8") from e


def _read_csv(path: Path, text: str) -> pd.DataFrame:
    if not text.strip():
        raise DataFileError(f"{path}: the file is empty; expected a CSV header "
                            f"{','.join(REQUIRED)}")
    # csv refuses a cell over its field_size_limit (131072 characters by default), which a long
    # original_text passes and write_csv (pandas) writes; no cell is longer than the whole text
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, len(text) + 1))
    try:
        # csv parses quoting strictly and keeps every cell as text ("NA", "null" are prompts too)
        records = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as e:
        raise DataFileError(f"{path}: not a readable CSV ({e}); expected comma-separated columns "
                            f"{', '.join(REQUIRED)} with a header row") from e
    finally:
        csv.field_size_limit(limit)
    header, rows = records[0], [r for r in records[1:] if r]
    if not set(REQUIRED) & set(header):
        raise DataFileError(f"{path}: not a CSV with columns {', '.join(REQUIRED)}: the header "
                            f"reads {','.join(header)[:80]!r}")
    for number, row in enumerate(rows, 1):
        if len(row) != len(header):
            raise DataFileError(f"{path}: not a readable CSV: row {number} has {len(row)} fields "
                                f"but the header has {len(header)} ({', '.join(header)})")
    return pd.DataFrame(rows, columns=header)


def _read_jsonl(path: Path, text: str) -> pd.DataFrame:
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataFileError(f"{path}: line {number} is not JSON ({e.msg})") from e
        if not isinstance(record, dict):
            raise DataFileError(f"{path}: line {number} is a JSON {type(record).__name__}, "
                                "expected an object with named fields")
        records.append(record)
    if not records:
        raise DataFileError(f"{path}: the file holds no rows")
    return pd.DataFrame(records)


def check_pairs(df: pd.DataFrame, source: str = "data", required=REQUIRED) -> pd.DataFrame:
    """`df` with the columns checked and every cell a non-blank str (ids may be whole numbers).

    Raises DataFileError naming the first bad row (1-based, header not counted) and column.
    """
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataFileError(f"{source}: missing column(s) {', '.join(missing)}; found "
                            f"{', '.join(map(str, df.columns)) or 'none'}")
    columns = [c for c in (*required, PROMPT) if c in df.columns]
    clean = {}
    for column in columns:
        values = []
        for number, value in enumerate(df[column].tolist(), 1):
            if column == "id" and isinstance(value, int) and not isinstance(value, bool):
                value = str(value)
            if not isinstance(value, str):
                raise DataFileError(f"{source}: row {number}, column {column!r}: expected text, "
                                    f"got {type(value).__name__} {value!r}")
            if not value.strip():
                raise DataFileError(f"{source}: row {number}, column {column!r}: empty cell")
            values.append(value)
        clean[column] = values
    out = pd.DataFrame(clean, columns=columns)
    dup = out["id"].duplicated(keep=False)
    if dup.any():
        rows = [i + 1 for i in dup[dup].index]
        raise DataFileError(f"{source}: column 'id': id {out['id'].iloc[rows[0] - 1]!r} appears "
                            f"in rows {', '.join(map(str, rows[:5]))}; ids must be unique")
    return out


def read_pairs(path: str | os.PathLike, required=REQUIRED) -> pd.DataFrame:
    """The rewrite pairs of a competition CSV (or JSON lines: .jsonl / .ndjson), checked.

    Columns `id`, `original_text`, `rewritten_text` (all str, non-blank, ids unique) and
    `rewrite_prompt` when the file has it; other columns are dropped. Rows keep file order.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: no such file")
    text = _decode(path)
    df = _read_jsonl(path, text) if path.suffix.lower() in JSONL_SUFFIXES else _read_csv(path, text)
    if df.empty:
        raise DataFileError(f"{path}: a header but no rows")
    return check_pairs(df, str(path), required)


def write_csv(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write `df` as UTF-8 CSV (no index) atomically: a temporary file, fsync, one rename."""
    path = Path(path)
    if not path.parent.is_dir():
        raise DataFileError(f"{path}: folder {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            df.to_csv(f, index=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_submission(ids, predictions, path: str | os.PathLike) -> Path:
    """`id,rewrite_prompt` in the given order; refuses blanks (fill them with the fallback first)."""
    df = pd.DataFrame({"id": list(ids), PROMPT: list(predictions)})
    if len(df) and df[PROMPT].map(lambda p: not isinstance(p, str) or not p.strip()).any():
        first = int(df[PROMPT].map(lambda p: not isinstance(p, str) or not p.strip()).idxmax()) + 1
        raise DataFileError(f"submission row {first}, column {PROMPT!r}: blank prediction; "
                            "use metrics.clean_predictions to fill blanks with the fallback")
    return write_csv(df, path)


def from_validation(rows: pd.DataFrame) -> pd.DataFrame:
    """The lab's validation rows (make_validation_set) in the competition's columns.

    id is "<text_id>__<prompt_id>" so each row traces back to validation_sources.yaml; failed
    or blank rewrites are left out (they are not pairs).
    """
    ok = rows[rows["error"].isna() & rows["rewritten"].fillna("").str.strip().ne("")]
    out = pd.DataFrame({"id": ok["text_id"] + "__" + ok["prompt_id"],
                        "original_text": ok["original"], "rewritten_text": ok["rewritten"],
                        PROMPT: ok["prompt"]})
    return check_pairs(out.reset_index(drop=True), "validation rows")


def to_lab(pairs: pd.DataFrame) -> pd.DataFrame:
    """Competition columns renamed to the lab's (original, rewritten, prompt), id kept."""
    return pairs.rename(columns={"original_text": "original", "rewritten_text": "rewritten",
                                 PROMPT: "prompt"})
