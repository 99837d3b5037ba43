"""The competition's data format, both ways: CSV (or JSON lines) of rewrite pairs, and submissions.

Kaggle's files have one row per sample with `id`, `original_text`, `rewritten_text` and, in
training data, `rewrite_prompt`; a submission has `id` and `rewrite_prompt`.

    pairs = read_pairs("test.csv")                      # DataFrame, every cell checked
    write_csv(pairs, "copy.csv")                         # atomic: all of it or nothing
    write_csv(from_validation(rows), "lab_set.csv")      # the lab's set in the same format

Every problem with a file is a LabError naming the row and the column (rows are counted from 1,
the header not included): a missing column, an empty or non-text cell, a duplicate id, a file
that is not CSV, bytes that are not UTF-8 (UTF-16 and UTF-32 are read when the file starts with
their byte-order mark). A row of nothing but empty cells (the `,,` row an Excel export ends with,
a JSON object of nulls) is skipped like a blank line. `read_pairs(..., blanks=True)` keeps a
row whose text cells are empty, whitespace or JSON null (as ""), for a caller that answers every
id (shared.task.submit); its id must still be there. A cell may be as long as the file: csv's own
field_size_limit (131072 characters) is lifted while reading, since write_csv (pandas) writes
longer cells. Writing goes to a temporary file in the same folder, then one rename, so a failure
never leaves a half-written file behind; `check_output` refuses, before any compute, an output
path in a folder that cannot be written or that is one of the run's inputs.
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

from shared import results
from shared.errors import DataFileError, LabError

REQUIRED = ("id", "original_text", "rewritten_text")
PROMPT = "rewrite_prompt"                     # present in training data, absent from the test file
JSONL_SUFFIXES = (".jsonl", ".ndjson")



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


def _blank(value) -> bool:
    """An empty cell: None (JSON null), NaN, or text of nothing but whitespace."""
    return value is None or (isinstance(value, float) and value != value) or (
        isinstance(value, str) and not value.strip())


def check_pairs(df: pd.DataFrame, source: str = "data", required=REQUIRED,
                blanks: bool = False) -> pd.DataFrame:
    """`df` with the columns checked and every cell a str (ids may be whole numbers).

    Columns: `required` and `rewrite_prompt` when `df` has it, each once, in that order. A row
    whose every one of these cells is empty is dropped (a blank line). Other cells must be
    non-blank text; with `blanks` an empty text cell (not an id) is kept as "".
    Raises DataFileError naming the first bad row (1-based as in `df`, header not counted) and
    column.
    """
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataFileError(f"{source}: missing column(s) {', '.join(missing)}; found "
                            f"{', '.join(map(str, df.columns)) or 'none'}")
    columns = [c for c in dict.fromkeys((*required, PROMPT)) if c in df.columns]  # each once
    cells = {column: df[column].tolist() for column in columns}
    kept = [k for k in range(len(df)) if not all(_blank(cells[c][k]) for c in columns)]
    clean = {}
    for column in columns:
        values = []
        for k in kept:
            value, number = cells[column][k], k + 1
            if column == "id" and isinstance(value, int) and not isinstance(value, bool):
                value = str(value)
            if blanks and column != "id" and _blank(value):
                value = ""
            elif not isinstance(value, str):
                raise DataFileError(f"{source}: row {number}, column {column!r}: expected text, "
                                    f"got {type(value).__name__} {value!r}")
            elif not value.strip():
                raise DataFileError(f"{source}: row {number}, column {column!r}: empty cell")
            values.append(value)
        clean[column] = values
    out = pd.DataFrame(clean, columns=columns)
    dup = out["id"].duplicated(keep=False)
    if dup.any():
        rows = [kept[i] + 1 for i in dup[dup].index]
        raise DataFileError(f"{source}: column 'id': id {out['id'][dup].iloc[0]!r} appears "
                            f"in rows {', '.join(map(str, rows[:5]))}; ids must be unique")
    return out


def read_pairs(path: str | os.PathLike, required=REQUIRED, blanks: bool = False) -> pd.DataFrame:
    """The rewrite pairs of a competition CSV (or JSON lines: .jsonl / .ndjson), checked.

    Columns `id`, `original_text`, `rewritten_text` (all str, non-blank, ids unique) and
    `rewrite_prompt` when the file has it; other columns are dropped. Rows keep file order; a
    row of nothing but empty cells is skipped. blanks: keep empty text cells as "" (check_pairs).
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: no such file")
    text = _decode(path)
    df = _read_jsonl(path, text) if path.suffix.lower() in JSONL_SUFFIXES else _read_csv(path, text)
    pairs = check_pairs(df, str(path), required, blanks)
    if pairs.empty:
        raise DataFileError(f"{path}: a header but no rows")
    return pairs


def _new_file_mode(path: Path) -> int:
    """The permission bits `path` would get from a plain open(): its own where it exists, else
    0o666 less the process umask (the temporary file of an atomic write is made 0o600)."""
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_csv(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write `df` as UTF-8 CSV (no index) atomically: a temporary file, fsync, one rename.

    A write that fails (a read-only folder, a full disk) is a DataFileError naming the file and
    the reason; the file that was there is left as it was and no temporary file stays behind."""
    path = Path(path)
    if not path.parent.is_dir():
        raise DataFileError(f"{path}: folder {path.parent} does not exist")
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, _new_file_mode(path))   # mkstemp makes 0600; the file gets open()'s mode
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            df.to_csv(f, index=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise DataFileError(f"{path}: could not be written ({e.strerror or e}); "
                                f"{'the file there is unchanged' if path.exists() else 'nothing was written'}"
                                ) from e
        raise
    return path


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one file: the same inode when both exist (through symbolic and hard
    links, and a case-insensitive file system's other spelling), else the same resolved path."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


def check_output(out: str | os.PathLike, inputs=(), also=(), flag: str = "--out") -> Path:
    """`out` as a Path, checked before any compute: a file (not a folder) in a folder that
    exists and can be written (a file is made there and removed: a permission bit is not proof,
    root ignores it and a read-only mount refuses it), and neither `out` nor the other files
    written next to it (`also`, e.g. a sidecar, which must be appendable when it exists) is one
    of `inputs` (same_file). LabError naming `flag`, the path and what to do."""
    out = Path(out)
    if out.is_dir():
        raise LabError(f"{flag} {out} is a folder; name a .csv file")
    folder = out.parent
    if not folder.is_dir():
        raise LabError(f"{flag} {out}: folder {folder} does not exist")
    for written in (out, *map(Path, also)):
        for source in inputs:
            if source is not None and Path(source).exists() and same_file(written, source):
                raise LabError(f"{flag} {out}: {written} is the input {source} (the same file); "
                               "writing it would replace the input: name another file")
    try:
        results.probe_folder(folder)
    except OSError as e:
        raise LabError(f"{flag} {out}: folder {folder} cannot be written ({e.strerror or e}); "
                       "name a file in a folder you can write") from e
    for written in also:
        try:
            results.check_writable(written)
        except results.TableWriteError as e:
            raise LabError(f"{flag} {out}: {e}") from e
    return out


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
