"""llama.cpp benchmark: the backend's greedy decode against a bare loop of one-token evals.

Prints, measured in one run on the same model, prompt and threads (default SmolLM2-135M Q4_1,
every usable CPU as threads): decode tokens/s of
  - a bare loop of `Llama.eval([token])` calls, feeding a fixed token (no logits read at all);
  - the same loop with greedy argmax on the logits (the least a greedy decoder must do);
  - shared.models.timing.generate on the llama_cpp backend (forced length);
  - llama-cpp-python's high-level generate() with greedy sampling, for reference;
and the ratio of the backend to the bare eval loop (target: at least 0.9). Runs alternate.

    .venv/bin/python benchmarks/llama_decode.py [--tokens 128] [--reps 5]
"""
import argparse
import statistics
import time

import numpy as np

from shared import machine
from shared.models import loading, timing


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=machine.usable_cpus(),
                        help="default: the CPUs this process may use (its affinity)")
    args = parser.parse_args()
    lm = loading.load(args.model, "llama_cpp", n_threads=args.threads)
    llm, n = lm.llm, args.tokens
    ids = timing.filler_ids(lm, 32)

    def eval_loop(argmax: bool) -> float:
        llm.reset()
        llm._ctx.kv_cache_clear()
        llm.eval(ids)
        token = ids[-1]
        t0 = time.perf_counter()
        for _ in range(n - 1):
            llm.eval([token])
            if argmax:
                token = int(np.argmax(np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(lm.n_vocab,))))
        return (n - 1) / (time.perf_counter() - t0)

    def high_level() -> float:
        llm.reset()
        llm._ctx.kv_cache_clear()
        t_first, count = None, 0
        for _ in llm.generate(ids, top_k=1, temp=0.0, reset=True):
            count += 1
            if count == 1:
                t_first = time.perf_counter()
            if count == n:
                break
        return (n - 1) / (time.perf_counter() - t_first)

    runs = {"bare eval loop": lambda: eval_loop(False),
            "eval loop + argmax": lambda: eval_loop(True),
            "backend (timing.generate)": lambda: timing.generate(lm, input_ids=ids, max_new_tokens=n,
                                                                 force_length=True).decode_tok_s,
            "llama-cpp-python generate()": high_level}
    for fn in runs.values():  # warm-up
        fn()
    rates = {name: [] for name in runs}
    for _ in range(args.reps):
        for name, fn in runs.items():
            rates[name].append(fn())
    med = {name: statistics.median(v) for name, v in rates.items()}
    print(f"{args.model} ({lm.runtime}), {args.threads} threads, {n} tokens, median of {args.reps}:")
    for name, rate in med.items():
        spread = statistics.pstdev(rates[name])
        print(f"  {name:30s} {rate:7.1f} ± {spread:.1f} tok/s")
    print(f"ratio backend / bare eval loop: {med['backend (timing.generate)'] / med['bare eval loop']:.3f}")
    print(f"ratio backend / llama-cpp-python generate(): "
          f"{med['backend (timing.generate)'] / med['llama-cpp-python generate()']:.2f}")


if __name__ == "__main__":
    main()
