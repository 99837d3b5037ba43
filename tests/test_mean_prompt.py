"""The mean-prompt search on the embedded encoder (all-MiniLM-L6-v2): monotone, reproducible,
and scored on held-out prompts it never saw."""
import numpy as np
import pytest

from shared.task import mean_prompt, metrics, validation
from shared.errors import LabError


@pytest.fixture(scope="module")
def encoder():
    return metrics.load_encoder("all-MiniLM-L6-v2")


@pytest.fixture(scope="module")
def split():
    """The source prompts, half held out by prompt (and so by wording)."""
    _, sources = validation.load_sources()
    prompts = [p["prompt"] for p in sources]
    held = validation.split_by_prompt(prompts, 0.5, seed=0, groups=[p["kind"] for p in sources])
    train = [p for p, h in zip(prompts, held) if not h]
    held_out = [p for p, h in zip(prompts, held) if h]
    return train, held_out


def test_pool_is_words_and_phrases_of_the_training_prompts():
    pool = mean_prompt.candidate_pool(["Rewrite this text as a pirate.", "Rewrite this text formally."],
                                      max_ngram=2)
    assert pool[:2] == ["rewrite", "rewrite this"]  # most frequent first
    assert "pirate" in pool and "this text" in pool
    assert "this" not in pool and "as a" not in pool  # stopwords alone are left out


def test_training_score_never_falls_and_held_out_is_unseen(encoder, split):
    train, held_out = split
    assert not set(train) & set(held_out)
    words = mean_prompt.candidate_pool(train, max_ngram=1)  # words only: a small, quick pool
    result = mean_prompt.search(train, encoder, max_steps=4, seed=0, pool=words, progress=False)
    scores = [h["train_scs"] for h in result.history]
    assert all(b >= a for a, b in zip(scores, scores[1:])), scores
    assert result.train_scs == scores[-1]
    # the reported training score is the metric's own on the training prompts
    assert np.isclose(metrics.scs([result.prompt] * len(train), train, encoder).mean(),
                      result.train_scs, atol=1e-5)
    held = metrics.score([result.prompt] * len(held_out), held_out, encoder)
    assert held["n"] == len(held_out) and held["encoder"] == "all-MiniLM-L6-v2"
    # started from the usual constant, the search never ends below it on the training side
    fixed = metrics.scs([metrics.FALLBACK_PROMPT] * len(train), train, encoder).mean()
    from_fixed = mean_prompt.search(train, encoder, max_steps=2, pool=words,
                                    start=metrics.FALLBACK_PROMPT, progress=False)
    assert from_fixed.prompt.startswith(metrics.FALLBACK_PROMPT)
    assert from_fixed.train_scs >= fixed - 1e-6


def test_search_is_reproducible_and_beam_is_no_worse(encoder, split):
    train, _ = split
    words = mean_prompt.candidate_pool(train, max_ngram=1)
    a = mean_prompt.search(train, encoder, max_steps=2, seed=1, pool=words, candidates_per_step=20,
                           progress=False)
    b = mean_prompt.search(train, encoder, max_steps=2, seed=1, pool=words, candidates_per_step=20,
                           progress=False)
    assert a.prompt == b.prompt and a.history == b.history
    greedy = mean_prompt.search(train, encoder, max_steps=2, beam_width=1, pool=words, progress=False)
    beam = mean_prompt.search(train, encoder, max_steps=2, beam_width=3, pool=words, progress=False)
    assert beam.history[0]["train_scs"] == greedy.history[0]["train_scs"]  # same first step
    assert beam.beam_width == 3


def test_bad_arguments_raise_before_any_encoding(encoder):
    with pytest.raises(LabError, match="non-blank"):
        mean_prompt.search(["Make it formal.", " "], encoder)
    with pytest.raises(LabError, match="beam_width"):
        mean_prompt.search(["Make it formal."], encoder, beam_width=0)
