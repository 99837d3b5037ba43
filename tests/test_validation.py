"""The validation set: reproducible pairs from the sources, rewritten by SmolLM2-135M."""
from shared.models import loading
from shared.task import validation


def test_sources_have_unique_ids():
    texts, prompts = validation.load_sources()
    assert len({t["id"] for t in texts}) == len(texts)
    assert len({p["id"] for p in prompts}) == len(prompts)
    assert all(t["text"] and t["genre"] for t in texts)
    assert all(p["prompt"] and p["kind"] for p in prompts)


def test_pairs_reproducible_and_spread():
    first = validation.pairs(10, seed=7)
    assert first == validation.pairs(10, seed=7)
    assert first != validation.pairs(10, seed=8)
    assert len({p["genre"] for p in first}) >= 5
    assert len({p["kind"] for p in first}) >= 4
    assert len({(p["text_id"], p["prompt_id"]) for p in first}) == 10


def test_make_rows_one_sample():
    lm = loading.load("smollm2-135m-instruct")
    rows = list(validation.make_rows(lm, n_samples=1, seed=0, max_new_tokens=24, progress=False))
    assert rows[0]["split"] == "train"
    assert len(rows) == 1
    row = rows[0]
    assert row["error"] is None
    assert row["rewritten"].strip()
    assert row["generator"] == "smollm2-135m-instruct"
    assert row["generator_runtime"] == lm.runtime
    for field in ("machine", "git_commit", "timestamp", "seed", "max_new_tokens", "prompt_id", "split",
                  "text_id", "output_tokens", "stop_reason", "seconds"):
        assert row[field] is not None, field


def test_split_holds_out_whole_prompts():
    chosen = validation.pairs(40, seed=3)               # more pairs than prompts: prompts repeat
    prompts = [p["prompt"] for p in chosen]
    held = validation.split_by_prompt(prompts, 0.5, seed=3, groups=[p["kind"] for p in chosen])
    train = {p for p, h in zip(prompts, held) if not h}
    held_out = {p for p, h in zip(prompts, held) if h}
    assert train and held_out and not train & held_out  # every copy of a prompt on one side
    assert held == validation.split_by_prompt(prompts, 0.5, seed=3, groups=[p["kind"] for p in chosen])
    kinds = {p["kind"] for p, h in zip(chosen, held) if h}
    assert len(kinds) >= 4                              # taken in turn from each kind
    assert validation.split_by_prompt(["only one"], 0.5, seed=0) == [False]


def test_short_texts_only():
    chosen = validation.pairs(12, seed=0, max_words=40)
    assert all(len(p["original"].split()) <= 40 for p in chosen)
