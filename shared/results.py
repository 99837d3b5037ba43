"""The results store: one tidy JSON-lines table per experiment, appended row by row.

Each row is one measured instance (every parameter, the machine, the measurements). A row is
written with a single O_APPEND write and fsync, so a run that is interrupted keeps every row it
already wrote, and a torn last line (power cut mid-write) is skipped on reading, never fatal;
the next append starts a fresh line after it, so the torn line never swallows a new row.
"""
from __future__ import annotations

import json
import math
import os
import uuid
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping

from . import machine

if TYPE_CHECKING:
    import pandas as pd


def new_run_id() -> str:
    """A short id that groups the rows of one notebook run."""
    return uuid.uuid4().hex[:8]


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def append(path: str | Path, rows: Iterable[Mapping] | Mapping, run_id: str | None = None) -> None:
    """Append rows to the table at `path` (created with its folder if needed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(rows, Mapping):
        rows = [rows]
    for row in rows:
        row = {k: _clean(v) for k, v in dict(row).items()}
        if run_id is not None:
            row.setdefault("run_id", run_id)
        line = (json.dumps(row, default=str) + "\n").encode()
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if not _ends_a_line(fd):
                line = b"\n" + line  # close a torn last line: this row must not join it
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)


def _ends_a_line(fd: int) -> bool:
    """Whether the file open at `fd` is empty or ends in a newline (not in a torn line)."""
    size = os.fstat(fd).st_size
    return size == 0 or os.pread(fd, 1, size - 1) == b"\n"


def read(path: str | Path) -> pd.DataFrame:
    """The table at `path` as a DataFrame (empty when the file does not exist yet)."""
    import pandas as pd  # not at the top: a child process that only appends rows starts faster

    path = Path(path)
    if not path.exists():
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
    another checkout, so its main job measures them again (and shared.reproduction compares).
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
