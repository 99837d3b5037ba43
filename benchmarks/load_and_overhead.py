"""Foundation benchmark: what the GGUF cache saves, and what the timed call costs.

Prints, measured in one run on SmolLM2-135M-Instruct (transformers, CPU):
  (a) first load (GGUF conversion) vs cached load, and the ratio (target: at least 10x);
  (b) decode tokens/s of shared.models.timing.generate vs a bare model.generate with the same forced
      length, and the ratio (target: at least 0.95).
For (b) the bare decode rate is (N - 1) / (T(N) - T(1)), with T(n) the median time of a bare
generate of n forced tokens, so prefill cancels out. Runs alternate to share the noise.

    .venv/bin/python benchmarks/load_and_overhead.py [--tokens 64] [--reps 5]
"""
import argparse
import os
import statistics
import tempfile
import time

import torch

from shared import machine


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=machine.usable_cpus(),
                        help="default: the CPUs this process may use (its affinity)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as cache:
        os.environ["PRL_CACHE"] = cache  # a cold cache: the first load converts
        from shared.models import loading, timing

        def timed_load():
            t0 = time.perf_counter()
            lm = loading.load(args.model, n_threads=args.threads)
            return lm, time.perf_counter() - t0

        lm, t_first = timed_load()
        assert not lm.from_cache
        t_cached = []
        for _ in range(3):
            lm, seconds = timed_load()
            assert lm.from_cache
            t_cached.append(seconds)
    cached_s = statistics.median(t_cached)
    print(f"(a) load {args.model}: first (converts GGUF) {t_first:.1f} s, cached {cached_s:.2f} s "
          f"(median of 3) -> {t_first / cached_s:.0f}x faster")

    ids = timing.filler_ids(lm, 64)
    tensor = torch.tensor([ids])
    model, n = lm.model, args.tokens

    def bare(n_new):
        t0 = time.perf_counter()
        with torch.inference_mode():
            model.generate(input_ids=tensor, attention_mask=torch.ones_like(tensor), do_sample=False,
                           max_new_tokens=n_new, min_new_tokens=n_new, pad_token_id=lm.tokenizer.pad_token_id,
                           temperature=None, top_p=None, top_k=None)
        return time.perf_counter() - t0

    timing.generate(lm, input_ids=ids, max_new_tokens=4, force_length=True)  # warm-up
    bare(4)
    ours, bare_n, bare_1 = [], [], []
    for _ in range(args.reps):
        ours.append(timing.generate(lm, input_ids=ids, max_new_tokens=n, force_length=True).decode_tok_s)
        bare_n.append(bare(n))
        bare_1.append(bare(1))
    ours_rate = statistics.median(ours)
    bare_rate = (n - 1) / (statistics.median(bare_n) - statistics.median(bare_1))
    print(f"(b) decode {n} forced tokens, {args.reps} alternating runs: timed call "
          f"{ours_rate:.1f} tok/s, bare model.generate {bare_rate:.1f} tok/s -> ratio "
          f"{ours_rate / bare_rate:.3f}")


if __name__ == "__main__":
    main()
