"""The competition's facts, typed once: shared/data/kaggle.yaml (each value with its source).

    >>> from shared.task import competition
    >>> competition.facts().budget_s_per_sample    # seconds a sample: budget_hours x 3600 / samples

shared/task/submit.py's defaults, the notebooks' parameter defaults (0 meaning "from kaggle.yaml") and
the roofline model's budget come from `facts()`; a params file sets its own value only to override.
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import yaml

from shared.errors import LabError
from shared.machine import DATA

KAGGLE_FILE = DATA / "kaggle.yaml"


@dataclasses.dataclass(frozen=True)
class Facts:
    """What a submission must fit: `budget_hours` (run-time limit of the notebook, hours) for
    `samples` hidden rows, less `margin_hours` (hours, the lab's allowance for install and load)."""
    budget_hours: float
    samples: int
    margin_hours: float

    @property
    def deadline_hours(self) -> float:
        """Hours left for the rows: budget_hours - margin_hours."""
        return self.budget_hours - self.margin_hours

    @property
    def budget_s_per_sample(self) -> float:
        """Seconds a sample: budget_hours x 3600 / samples (the whole budget, margin included)."""
        return self.budget_hours * 3600 / self.samples


@functools.lru_cache(maxsize=None)
def facts(path: str | Path = KAGGLE_FILE) -> Facts:
    """The facts of `path` (default shared/data/kaggle.yaml). LabError naming the file for a
    missing key or a value that is not a positive number (a margin may be 0, less than the budget)."""
    path = Path(path)
    raw = yaml.safe_load(path.read_text()) or {}
    missing = [k for k in ("budget_hours", "samples", "margin_hours") if k not in raw]
    if missing:
        raise LabError(f"{path}: missing {missing} (budget_hours, samples, margin_hours)")
    try:
        f = Facts(float(raw["budget_hours"]), int(raw["samples"]), float(raw["margin_hours"]))
    except (TypeError, ValueError) as e:
        raise LabError(f"{path}: budget_hours, samples and margin_hours must be numbers: {e}") from None
    if f.budget_hours <= 0 or f.samples < 1 or not 0 <= f.margin_hours < f.budget_hours:
        raise LabError(f"{path}: need budget_hours > 0, samples >= 1 and 0 <= margin_hours < budget_hours, got {f}")
    return f


def budget(budget_hours: float = 0, samples: int = 0) -> tuple[float, int]:
    """(budget_hours, samples): each given value (a notebook parameter, a params file's
    override), else kaggle.yaml's; 0 or None means "from kaggle.yaml"."""
    f = facts()
    return (float(budget_hours) if budget_hours else f.budget_hours), (int(samples) if samples else f.samples)
