"""Prompt-recovery strategies on SmolLM2-135M (transformers backend, CPU), kept to a few tokens."""
import re

import pytest

from shared.models import loading
from shared.task import prompts
from shared.errors import LabError

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
    from shared.models import timing
    with pytest.raises(LabError, match="llama_cpp"):
        timing.generate(lm, prompt="Hello", max_new_tokens=1, reuse_prefix=True)


# ---- batches (LoadedModel.generate_batch, prompts.recover_batch) -----------------------------

PAIRS = [(ORIGINAL, REWRITTEN),
         ("Dinner is at six.", "Supper shall be served at six o'clock, as is proper."),
         ("The shop is closed on Mondays because the owner goes fishing.", "Alas! The shop is shut on Mondays.")]


def test_generate_batch_keeps_order_and_matches_one_by_one(lm, smol_llama):
    """transformers decodes the prompts together (left padding); its answers are the greedy
    answers of each prompt alone, in input order, and so are llama.cpp's (the default loop)."""
    from shared.models.loading import LoadedModel
    chats = [[{"role": "user", "content": c}] for c in
             ("Name a colour.", "Write the word 'cat' five times, separated by spaces.", "Say hi.")]
    for model in (lm, smol_llama):
        batch = [model.encode(messages=c) for c in chats]
        together = model.generate_batch(batch, 12)
        alone = LoadedModel.generate_batch(model, batch, 12)   # the base class: one by one
        assert [ids for ids, _ in together] == [ids for ids, _ in alone]
        for ids, reason in together:
            assert reason == ("eos" if ids[-1] in model.eos_ids else "length")
            assert len(ids) <= 12 and (reason == "eos" or len(ids) == 12)
    with pytest.raises(LabError, match="non-empty"):
        lm.generate_batch([], 4)
    with pytest.raises(LabError, match="empty"):
        lm.generate_batch([[1, 2], []], 4)


def test_recover_batch_gives_the_one_by_one_rows(lm):
    batched = prompts.recover_batch(lm, "two_step", PAIRS, max_new_tokens=8)
    single = [prompts.recover(lm, "two_step", o, r, max_new_tokens=8) for o, r in PAIRS]
    assert [b["prediction"] for b in batched] == [s["prediction"] for s in single]
    assert [b["step_outputs"] for b in batched] == [s["step_outputs"] for s in single]
    assert all(b["model_calls"] == 2 and b["batch_size"] == 3 and b["error"] is None for b in batched)
    assert [b["output_tokens"] for b in batched] == [s["output_tokens"] for s in single]


def test_a_failing_batch_runs_one_by_one(lm, monkeypatch):
    """A batched call that fails (here: any call with more than one prompt) costs no row."""
    real = type(lm).generate_batch

    def no_batches(self, batch_ids, max_new_tokens):
        if len(batch_ids) > 1:
            raise RuntimeError("CUDA out of memory (simulated for batches)")
        return real(self, batch_ids, max_new_tokens)

    monkeypatch.setattr(type(lm), "generate_batch", no_batches)
    rows = prompts.recover_batch(lm, "direct", PAIRS, max_new_tokens=6)
    single = [prompts.recover(lm, "direct", o, r, max_new_tokens=6) for o, r in PAIRS]
    assert [r["error"] for r in rows] == [None] * 3
    assert [r["prediction"] for r in rows] == [s["prediction"] for s in single]


# ---- ensembles -------------------------------------------------------------------------------

def test_an_ensemble_joins_its_parts_and_sums_their_seconds(lm):
    parts = [prompts.recover(lm, p, ORIGINAL, REWRITTEN, max_new_tokens=8)
             for p in prompts.parts("few_shot_direct_mean")]
    row = prompts.recover(lm, "few_shot_direct_mean", ORIGINAL, REWRITTEN, max_new_tokens=8, mean_prompt="Use a pirate voice.")
    joined = prompts.join_predictions([p["prediction"] for p in parts])
    assert row["prediction"] == prompts.append_mean(joined, "Use a pirate voice.")
    assert row["parts"] == {p["strategy"]: p["prediction"] for p in parts}
    assert row["model_calls"] == sum(p["model_calls"] for p in parts) == 2
    derived = prompts.combine("few_shot_direct_mean", parts, "Use a pirate voice.")  # from recorded rows
    assert derived["seconds"] == pytest.approx(sum(p["seconds"] for p in parts))
    assert derived["prediction"] == row["prediction"]
    assert prompts.template_hash("few_shot_direct_mean", "a") != prompts.template_hash("few_shot_direct_mean", "b")
    assert prompts.template_hash("few_shot_direct") != prompts.template_hash("few_shot_direct_mean")
    batched = prompts.recover_batch(lm, "few_shot_direct_mean", PAIRS[:2], max_new_tokens=8,
                                    mean_prompt="Use a pirate voice.")
    assert batched[0]["prediction"] == row["prediction"]


def test_join_predictions():
    assert prompts.join_predictions(["Make it formal", " ", "Rewrite as a poem!"]) == \
        "Make it formal. Rewrite as a poem!"
    assert prompts.join_predictions(["", ""]) == ""


def test_an_ensemble_of_unknown_parts_is_refused(monkeypatch, tmp_path):
    bad = tmp_path / "t.yaml"
    bad.write_text(prompts.TEMPLATES_FILE.read_text() + "\nbroken:\n  concat: [direct, telepathy]\n")
    monkeypatch.setattr(prompts, "TEMPLATES_FILE", bad)
    prompts.templates.cache_clear()
    try:
        with pytest.raises(LabError, match="telepathy"):
            prompts.templates()
    finally:
        prompts.templates.cache_clear()


# ---- a chat strategy on a base model ---------------------------------------------------------

def test_a_chat_strategy_on_a_base_model_is_an_error_not_a_row(gemma_llama):
    """Gemma 3 270M is a base model (no chat template): recover refuses before any call instead
    of returning a row with an error that a submission would turn into the fallback."""
    for run in (lambda: prompts.recover(gemma_llama, "direct", ORIGINAL, REWRITTEN),
                lambda: prompts.recover_batch(gemma_llama, "few_shot_direct", PAIRS)):
        with pytest.raises(LabError, match="no chat template"):
            run()
    assert prompts.recover(gemma_llama, "mean_prompt", ORIGINAL, REWRITTEN)["error"] is None
