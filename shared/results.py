"""The results store: one tidy JSON-lines table per experiment, appended row by row.

Each row is one measured instance (every parameter, the machine, the measurements). A row is
written with O_APPEND writes and fsync, so a run that is interrupted keeps every row it
already wrote, and a torn last line (power cut mid-write) is skipped on reading, never fatal;
the next append starts a fresh line after it, so the torn line never swallows a new row. A row
that cannot be written whole (a full disk or quota, which can take part of a write and refuse
the rest; a read-only folder) is cut off again and raises TableWriteError naming the table and
the reason: the rows before it stay whole.
"""
from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import stat
import tempfile
import uuid
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping

from shared import machine
from shared.errors import TableWriteError

if TYPE_CHECKING:
    import pandas as pd


def new_run_id() -> str:
    """A short id that groups the rows of one notebook run."""
    return uuid.uuid4().hex[:8]


def settings_hash(settings: Mapping) -> str:
    """8 hex characters of sha1 over `settings` (JSON, keys sorted): the parameters that change a
    measurement or a prediction, as one column of its row and part of what counts as done
    (shared.run.experiment.run, shared.task.submit's sidecar)."""
    return hashlib.sha1(json.dumps(dict(settings), sort_keys=True, default=str).encode()).hexdigest()[:8]


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value



def append(path: str | Path, rows: Iterable[Mapping] | Mapping, run_id: str | None = None) -> None:
    """Append rows to the table at `path` (created with its folder if needed).

    Each row is whole or absent: a write the disk takes only in part is cut back to the row
    before it (ftruncate) and TableWriteError is raised; the rows before it stay."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _write_error(path, e, "its folder cannot be made") from e
    if isinstance(rows, Mapping):
        rows = [rows]
    for row in rows:
        row = {k: _clean(v) for k, v in dict(row).items()}
        if run_id is not None:
            row.setdefault("run_id", run_id)
        line = (json.dumps(row, default=str) + "\n").encode()
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as e:
            raise _write_error(path, e, "it cannot be opened for writing") from e
        try:
            size = os.fstat(fd).st_size
            if not _ends_a_line(fd):
                line = b"\n" + line  # close a torn last line: this row must not join it
            view = memoryview(line)
            while view:  # a full disk or a file size limit can take part of a write
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError as e:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                os.ftruncate(fd, size)  # no half row stays behind
            raise _write_error(path, e, "the row was not written") from e
        finally:
            os.close(fd)


def probe_folder(folder: str | Path) -> None:
    """Make `folder` if needed, then make and remove a file in it: a permission bit is not proof
    (root ignores it, a read-only mount refuses it). OSError when it cannot be written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(prefix=".probe-", dir=folder)
    os.close(fd)
    os.unlink(probe)


def check_writable(path: str | Path) -> Path:
    """`path` checked before any compute: its folder made if needed and a file made there and
    removed (a permission bit is not proof: root ignores it, a read-only mount refuses it), and
    the table itself opened for appending when it exists. TableWriteError naming the reason."""
    path = Path(path)
    try:
        probe_folder(path.parent)
    except OSError as e:
        raise _write_error(path, e, f"its folder {path.parent} cannot be written") from e
    if path.is_dir():
        raise TableWriteError(f"{path} is a folder, not a table: move it away or write elsewhere")
    if path.exists():
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND))
        except OSError as e:
            raise _write_error(path, e, "it cannot be opened for appending") from e
    return path


def _write_error(path: Path, error: OSError, what: str) -> TableWriteError:
    fix = {errno.ENOSPC: "free space on its disk", errno.EDQUOT: "free space within your quota",
           errno.EFBIG: "the file reached a size limit (ulimit -f)"}.get(
        error.errno, "write to a folder you can write")
    return TableWriteError(f"{path}: {what} ({error.strerror or error}); any rows already in it are "
                           f"kept whole: {fix}, then run again")


def _ends_a_line(fd: int) -> bool:
    """Whether the file open at `fd` is empty or ends in a newline (not in a torn line)."""
    size = os.fstat(fd).st_size
    return size == 0 or os.pread(fd, 1, size - 1) == b"\n"


def read(path: str | Path) -> pd.DataFrame:
    """The table at `path` as a DataFrame (empty when the file does not exist yet)."""
    import pandas as pd  # not at the top: a child process that only appends rows starts faster

    path = Path(path)
    if not path.exists() or not (path.is_file() or path.is_dir()):  # a device (/dev/full) or FIFO holds no rows
        return pd.DataFrame()
    rows = []
    # a torn write can end in half a UTF-8 character or in NUL bytes (a crash before the data
    # reached the disk): decode leniently, split on "\n" only (the writer's separator)
    for number, line in enumerate(path.read_bytes().decode("utf-8", errors="replace").split("\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if isinstance(row, dict):
            rows.append(row)
        else:  # a line that is not a JSON object (a torn write, stray bytes) is never a row
            warnings.warn(f"{path}:{number}: skipped a torn line (interrupted write)")
    return pd.DataFrame(rows)


def done_configs(path: str | Path, keys: list[str], machine_name: str | None = None,
                 checkout: str | None = None) -> set[tuple]:
    """Configurations (tuples of `keys`) already measured successfully by this checkout on this
    machine.

    A rerun skips these unless asked to redo them. Only rows of `checkout` (default: this
    checkout's id, machine.checkout_id) count: the rows a fresh clone receives were measured by
    another checkout, so its main job measures them again (and shared.report.reproduction compares).
    A configuration is done when its latest row here is ok: one that failed part-way (ok rows,
    then a failed row) is measured again, and a later success clears an earlier failure.
    """
    df = read(path)
    if df.empty or "checkout" not in df:
        return set()
    machine_name = machine_name or machine.info()["machine"]
    checkout = checkout or machine.info()["checkout"]
    df = df[(df["machine"] == machine_name) & (df["checkout"] == checkout)]
    missing = [k for k in keys if k not in df]
    if missing or df.empty:
        return set()
    statuses = df["status"] if "status" in df else ["ok"] * len(df)
    latest = {tuple(_clean(v) for v in row): status
              for row, status in zip(df[keys].itertuples(index=False), statuses)}  # file order
    return {config for config, status in latest.items() if status == "ok"}


# Row picking: which rows of a table a table, figure or fit uses.
CONFIG_KEYS = ("model", "runtime", "machine")


def latest_run(df: pd.DataFrame, keys=CONFIG_KEYS) -> pd.DataFrame:
    """For each configuration (`keys`), only the rows of its latest run (`run_id`, in the order
    the rows were appended). A rerun after a change of code or settings (`redo`) replaces the
    earlier numbers in every table instead of pooling with them, and repeated runs never
    narrow a spread by counting the same measurement twice; the earlier rows stay on disk."""
    keys = [k for k in keys if k in df]
    if df.empty or "run_id" not in df or not keys:
        return df
    last = df.groupby(keys, dropna=False, sort=False)["run_id"].transform("last")
    return df[df["run_id"].eq(last)]


def ok_timed(df: pd.DataFrame) -> pd.DataFrame:
    """Successful, timed (not warm-up) rows of each configuration's latest run."""
    if df.empty:
        return df
    keep = df["status"].eq("ok") if "status" in df else __import__('pandas').Series(True, index=df.index)
    if "phase" in df:
        keep &= df["phase"].eq("timed")
    return latest_run(df[keep])


def numeric(df: pd.DataFrame, columns) -> pd.DataFrame:
    """`df` with `columns` (those present) as floats: a null in the JSON rows (an undefined value,
    e.g. decode_tok_s of a 1-token answer) and anything not a number become NaN, so a column
    that is entirely null still aggregates, and tables print an empty cell for it."""
    cols = [c for c in columns if c in df]
    return df.assign(**{c: __import__('pandas').to_numeric(df[c], errors="coerce").astype(float) for c in cols}) if cols else df
