"""Prompt-recovery strategies on SmolLM2-135M (transformers backend, CPU), kept to a few tokens."""
import re

import pytest

from shared import loading, prompts
from shared.catalog import LabError

ORIGINAL = "The bus to the airport leaves every hour from the station. Tickets cost five euros."
REWRITTEN = "Arr, the bus to the airport sails every hour from the station, matey! A ticket be five euros."


@pytest.fixture(scope="module")
def lm():
    model = loading.load("smollm2-135m-instruct")
    yield model
    model.close()


def test_two_step_chain(lm):
    row = prompts.recover(lm, "two_step", ORIGINAL, REWRITTEN, max_new_tokens=24)
    assert row["error"] is None
    assert row["model_calls"] == 2
    assert row["prediction"].strip()
    assert row["output_tokens"] > 0 and row["seconds"] > 0


def test_mean_prompt_makes_no_call():
    row = prompts.recover(None, "mean_prompt", ORIGINAL, REWRITTEN)  # no model needed
    assert row["model_calls"] == 0
    assert row["prediction"] == prompts.templates()["mean_prompt"]["prediction"]


def test_truncation_is_counted(lm):
    row = prompts.recover(lm, "direct", ORIGINAL, REWRITTEN, max_new_tokens=2, max_text_tokens=4)
    assert row["truncated"] is True
    assert row["error"] is None


def test_unknown_strategy_raises():
    with pytest.raises(LabError, match="two_step"):
        prompts.recover(None, "telepathy", ORIGINAL, REWRITTEN)


def test_template_hashes():
    hashes = [prompts.template_hash(s) for s in prompts.STRATEGIES]
    assert all(re.fullmatch(r"[0-9a-f]{8}", h) for h in hashes)
    assert len(set(hashes)) == len(hashes)


@pytest.mark.parametrize("raw, expected", [
    ('Instruction: "Rewrite this text as a pirate."', "Rewrite this text as a pirate."),
    ("\n- **Prompt:** Make it formal.\nMore text", "Make it formal."),
    ("1. Rewrite it as a haiku.", "Rewrite it as a haiku."),
    ("Text A:\nRewrite this text as a limerick.", "Rewrite this text as a limerick."),
    ("Rewrite:", ""),
])
def test_clean_instruction(raw, expected):
    assert prompts.clean_instruction(raw) == expected
