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


def test_each_step_of_a_chain_gets_its_own_budget(lm):
    """two_step's list of differences has its own cap in the template; the final answer the caller's."""
    row = prompts.recover(lm, "two_step", ORIGINAL, REWRITTEN, max_new_tokens=4)
    list_budget = prompts.templates()["two_step"]["steps"][0]["max_new_tokens"]
    assert row["step_max_new_tokens"] == [list_budget, 4]
    assert list_budget > 4


def test_direct_mean_appends_the_mean_prompt():
    assert prompts.append_mean("Rewrite it as a pirate", "Improve tone.") == "Rewrite it as a pirate. Improve tone."
    assert prompts.append_mean("  ", "Improve tone.") == "Improve tone."
    # the appended text is part of the template's identity
    assert prompts.template_hash("direct_mean", "a") != prompts.template_hash("direct_mean", "b")
    row = prompts.recover(None, "mean_prompt", ORIGINAL, REWRITTEN, mean_prompt="Use a pirate voice.")
    assert row["prediction"] == "Use a pirate voice."
    assert row["template_hash"] == prompts.template_hash("mean_prompt", "Use a pirate voice.")


def test_reused_prefix_gives_the_same_answer_with_less_prefill():
    """llama.cpp keeps the KV state of the few-shot preamble from the call before."""
    llama = loading.load("smollm2-135m-instruct", "llama_cpp", n_threads=2)
    try:
        cold = prompts.recover(llama, "few_shot", ORIGINAL, REWRITTEN, max_new_tokens=8)
        other = "The museum opens at ten. Entry is free on Sundays."
        prompts.recover(llama, "few_shot", other, other.upper(), max_new_tokens=8, reuse_prefix=True)
        warm = prompts.recover(llama, "few_shot", ORIGINAL, REWRITTEN, max_new_tokens=8, reuse_prefix=True)
    finally:
        llama.close()
    assert cold["reused_tokens"] == 0
    assert warm["reused_tokens"] > 200                       # the three worked examples
    assert warm["reused_tokens"] < warm["input_tokens"]
    assert warm["raw_output"] == cold["raw_output"]


def test_reuse_prefix_is_refused_by_transformers(lm):
    from shared import timing
    with pytest.raises(LabError, match="llama_cpp"):
        timing.generate(lm, prompt="Hello", max_new_tokens=1, reuse_prefix=True)
