"""Every kind of error the lab raises for input a user can fix: the ground of the package.

LabError is the one base (a ValueError: bad input, raised before any compute, its message says
how to fix it); each kind below names what went wrong where a caller may want to tell them
apart. The modules that raise them import them from here (and keep them under their old
names: `catalog.LabError`, `results.TableWriteError`, `roofline.RooflineError` still work).
This module imports nothing of the lab.
"""
from __future__ import annotations


class LabError(ValueError):
    """Bad input the user can fix; the message says how. Raised before any compute."""


class UnknownModelError(LabError):
    """A model name the catalog (shared/data/models.yaml) does not have; the message lists it."""


class ModelFileError(LabError):
    """A model file is missing or corrupt (sha256 mismatch)."""


class UnsupportedQuantizationError(LabError):
    """A backend that cannot run the quantization asked for (shared.models.loading.check)."""


class ContextTooLongError(LabError):
    """A prompt plus the tokens to generate longer than the model's context."""


class DataFileError(LabError):
    """A data file the lab cannot read as rewrite pairs; the message names row and column."""


class TableWriteError(LabError):
    """A row could not be appended (no space left, a quota, a read-only folder); the table's
    earlier rows are whole."""


class RooflineError(LabError):
    """A prediction cannot be made: unknown hardware or quantization, missing model facts."""
