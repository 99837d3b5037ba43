"""Inputs several fault tests share (issue 24's): four competition rows, the submission options
on the embedded SmolLM2, a folder that refuses every user. Imported by the test files (pytest
puts tests/ on sys.path); not a test file itself."""
import os
import tempfile

import pandas as pd
import pytest

SMOL = "smollm2-135m-instruct"
PAIRS = pd.DataFrame({
    "id": ["z9", "a1", "m5", "b2"],
    "original_text": ["The bus leaves at nine.", "Dinner is at six.", "The shop is closed.",
                      "Bring an umbrella."],
    "rewritten_text": ["Arr, the bus sails at nine, matey!", "Supper shall be served at six o'clock.",
                       "Alas, the shop's doors are shut.", "Yo, grab an umbrella, fam."],
})
OPTIONS = dict(model=SMOL, n_threads=2, max_new_tokens=8, progress=False)


def no_load(monkeypatch):
    """Make any model load fail the test: what follows must stop before loading."""
    monkeypatch.setattr("shared.models.loading.load", lambda *a, **k: pytest.fail("a model was loaded"))


def refuses_root(folder: str) -> bool:
    """Whether making a file in `folder` fails here, also for root (sysfs does)."""
    try:
        fd, probe = tempfile.mkstemp(dir=folder)
    except OSError:
        return True
    os.close(fd)
    os.unlink(probe)
    return False


READ_ONLY = "/sys/kernel"
needs_read_only = pytest.mark.skipif(not (os.path.isdir(READ_ONLY) and refuses_root(READ_ONLY)),
                                     reason="no folder here that refuses every user (/sys/kernel)")
