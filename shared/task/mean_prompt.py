"""An optimized mean prompt: one constant prediction that maximizes mean SCS over training prompts.

The competition's top teams submitted, for every sample, a long string of words found by search
to sit close, in sentence-t5-base space, to every rewrite prompt at once (a "mean prompt"),
sometimes after a model's own guess. Here: a candidate pool of words and short phrases taken
from training prompts, and a greedy (beam_width 1) or beam search that appends one candidate at
a time while the mean training SCS rises.

    enc = metrics.load_encoder()
    result = search(train_prompts, enc, max_steps=20, beam_width=1, seed=0)
    result.prompt, result.train_scs, result.history      # history: best score after each step
    metrics.score([result.prompt] * len(held_out), held_out, enc)

The truths are embedded once; each step embeds all its candidate strings in one batch and scores
them against every truth with one matrix product. The best score never falls from one step to
the next: a beam keeps its parents among the candidates, and the search stops when nothing beats
them. The result is tied to the encoder it was optimized with: one found with all-MiniLM-L6-v2
must be searched again with sentence-t5-base before a submission.
"""
from __future__ import annotations

import dataclasses
import random
import re
from collections import Counter
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from shared.errors import LabError
from shared.task.metrics import Encoder

_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
STOPWORDS = frozenset("a an the of to and or it its this that is as be by for in on with".split())


@dataclasses.dataclass
class SearchResult:
    prompt: str                  # the best constant prediction found
    train_scs: float             # its mean SCS over the training prompts
    history: list[dict]          # one dict per step: step, train_scs, prompt, candidates tried
    encoder: str
    seed: int
    beam_width: int
    pool_size: int
    n_train: int


def candidate_pool(prompts: Sequence[str], max_ngram: int = 3, max_size: int = 400) -> list[str]:
    """Words and phrases (1..max_ngram consecutive words, lowercased) of the training prompts,
    most frequent first (ties alphabetical), at most max_size; phrases that are only stopwords
    are left out."""
    if max_ngram < 1 or max_size < 1:
        raise LabError(f"max_ngram and max_size must be at least 1, got {max_ngram}, {max_size}")
    counts: Counter[str] = Counter()
    for prompt in prompts:
        words = [w.lower() for w in _WORD.findall(prompt)]
        for n in range(1, max_ngram + 1):
            for i in range(len(words) - n + 1):
                gram = words[i:i + n]
                if all(w in STOPWORDS for w in gram):
                    continue
                counts[" ".join(gram)] += 1
    ranked = sorted(counts, key=lambda g: (-counts[g], g))
    return ranked[:max_size]


def _mean_scs(candidates: list[str], truth_emb: np.ndarray, encoder: Encoder) -> np.ndarray:
    """Mean over truths of cos**3 for each candidate string: shape (len(candidates),)."""
    emb = encoder.embed(candidates)                          # (c, d), unit rows
    cos = np.clip(emb @ truth_emb.T, -1.0, 1.0).astype(np.float64)   # (c, n)
    return (cos ** 3).mean(axis=1)


def search(train_prompts: Sequence[str], encoder: Encoder, max_steps: int = 20,
           beam_width: int = 1, seed: int = 0, pool: Sequence[str] | None = None,
           candidates_per_step: int | None = None, start: str = "",
           progress: bool = True) -> SearchResult:
    """Build a prompt by appending pool entries one at a time, keeping the `beam_width` best
    prompts by mean SCS over `train_prompts`, for at most `max_steps` steps or until no
    extension beats the best prompt so far.

    pool: the words and phrases to try (default: candidate_pool(train_prompts)).
    candidates_per_step: try only this many pool entries per step, drawn with `seed`
        (None: all of them; the result then depends on the seed only through tie order).
    start: the prompt to extend ("" starts from nothing); when no entry improves it, the result
        is `start` itself with an empty history.
    """
    truths = [t for t in train_prompts if isinstance(t, str) and t.strip()]
    if len(truths) != len(train_prompts) or not truths:
        raise LabError("train_prompts must be a non-empty list of non-blank strings")
    if max_steps < 1 or beam_width < 1:
        raise LabError(f"max_steps and beam_width must be at least 1, got {max_steps}, {beam_width}")
    pool = list(pool) if pool is not None else candidate_pool(truths)
    if not pool:
        raise LabError("the candidate pool is empty")
    rng = random.Random(seed)
    pool = sorted(pool)
    rng.shuffle(pool)                                          # tie order depends on the seed only
    truth_emb = encoder.embed(truths)                          # embedded once: (n, d)
    beam = [start.strip()]
    scores = _mean_scs(beam, truth_emb, encoder) if beam[0] else np.array([-1.0])
    best = (float(scores[0]), beam[0])
    history = []
    for step in (bar := tqdm(range(1, max_steps + 1), desc=f"mean prompt ({encoder.name})",
                             disable=not progress)):
        tried = pool if candidates_per_step is None else rng.sample(pool, min(candidates_per_step, len(pool)))
        children = sorted({f"{parent} {c}".strip() for parent in beam for c in tried} - set(beam))
        child_scores = _mean_scs(children, truth_emb, encoder)
        # parents stay candidates, so the best score of a step is never below the step before
        scored = [(float(s), p) for s, p in zip(scores, beam)] + \
                 [(float(s), c) for s, c in zip(child_scores, children)]
        scored.sort(key=lambda sp: (-sp[0], sp[1]))
        top = scored[:beam_width]
        if top[0][0] <= best[0]:
            break                                              # no extension helps: stop
        best = top[0]
        beam, scores = [p for _, p in top], np.array([s for s, _ in top])
        history.append({"step": step, "train_scs": best[0], "prompt": best[1],
                        "candidates": len(children)})
        bar.set_postfix_str(f"train SCS {best[0]:.4f}")
    if not best[1]:
        raise LabError("no candidate of the pool scored above -1: the pool or the truths are unusable")
    return SearchResult(prompt=best[1], train_scs=best[0], history=history, encoder=encoder.name,
                        seed=seed, beam_width=beam_width, pool_size=len(pool), n_train=len(truths))
