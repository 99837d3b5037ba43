"""The lab's llama.cpp backend against native llama.cpp (llama-bench), side by side in one run.

Builds `llama-bench` from the llama.cpp vendored in the same llama-cpp-python source release as
the installed package, with the same CMake arguments (read from the install record that
scripts/install_llama_cpp.sh leaves), and caches the binary under PRL_CACHE (first build: about
5-12 minutes on 2 cores). Then, for each model and thread count, alternating the two runtimes:

  - prefill (pp): tokens/s over a prompt of --prompt tokens from an empty context;
  - decode (tg): tokens/s of --gen tokens after that prompt (llama-bench `-d` = prompt length);

and prints both with the ratio lab / llama-bench (target: at least 0.95 for both), next to the
ratio with llama-cpp-python's own defaults (flash attention off, batch 512), which the lab used
before.

    .venv/bin/python benchmarks/llama_bench_compare.py [--models smollm2-135m-instruct gemma-3-270m]
        [--threads 1 2] [--prompt 256] [--gen 64] [--reps 5]
"""
import argparse
import hashlib
import json
import os
import shlex
import statistics
import subprocess
import sys
import tarfile
from pathlib import Path

from shared import machine
from shared.models import catalog, loading, timing


def llama_bench_binary() -> Path:
    """Build (once) llama-bench from the installed llama-cpp-python version's source release."""
    version = machine.version("llama_cpp_python")
    args = machine.llama_cpp_cmake_args()
    if not args:
        sys.exit("no install record: build llama-cpp-python with scripts/install_llama_cpp.sh first")
    key = hashlib.sha256(f"{version}\n{args}\n{machine.cpu_model()}".encode()).hexdigest()[:16]
    root = catalog.cache_dir() / "llama-bench" / f"{version}-{key}"
    binary = root / "build" / "bin" / "llama-bench"
    if binary.exists():
        return binary
    root.mkdir(parents=True, exist_ok=True)
    print(f"building llama-bench from llama-cpp-python {version} with {args} (cached in {root})",
          flush=True)
    sdist = next(root.glob("llama_cpp_python-*.tar.gz"), None)
    if sdist is None:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                        "-d", str(root), f"llama-cpp-python=={version}"], check=True)
        sdist = next(root.glob("llama_cpp_python-*.tar.gz"))
    src = root / "src"
    if not src.exists():
        with tarfile.open(sdist) as tar:
            tar.extractall(root / "src.tmp", filter="data")
        os.replace(next((root / "src.tmp").iterdir()), src)
    # the same arguments as the Python package's build, minus what only its CMakeLists knows
    cmake_args = [a for a in shlex.split(args) if not a.startswith("-DLLAVA_BUILD")]
    subprocess.run(["cmake", "-S", str(src / "vendor" / "llama.cpp"), "-B", str(root / "build"),
                    "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF",
                    "-DLLAMA_BUILD_SERVER=OFF", *cmake_args], check=True)
    subprocess.run(["cmake", "--build", str(root / "build"), "--target", "llama-bench",
                    "-j", str(machine.usable_cpus())], check=True)
    return binary


def native(binary: Path, gguf: Path, threads: int, prompt: int, gen: int) -> dict:
    """llama-bench's pp (prompt, depth 0) and tg (gen tokens at depth `prompt`) tokens/s, 1 rep."""
    out = {}
    for test, extra in (("pp", ["-p", str(prompt), "-n", "0"]),
                        ("tg", ["-p", "0", "-n", str(gen), "-d", str(prompt)])):
        res = subprocess.run([str(binary), "-m", str(gguf), "-t", str(threads), "-r", "1",
                              "-o", "json", *extra], check=True, capture_output=True, text=True)
        row = json.loads(res.stdout)[0]
        out[test] = row["avg_ts"]
        out["flash_attn"], out["n_batch"], out["n_ubatch"] = (row.get("flash_attn"),
                                                              row.get("n_batch"), row.get("n_ubatch"))
    return out


def lab(lm, prompt: int, gen: int) -> dict:
    """The backend's prefill and decode tokens/s for the same lengths (one timed call)."""
    ids = timing.filler_ids(lm, prompt)
    rec = timing.generate(lm, input_ids=ids, max_new_tokens=gen + 1, force_length=True)
    return {"pp": prompt / rec.prefill_s, "tg": rec.decode_tok_s}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["smollm2-135m-instruct", "gemma-3-270m"])
    parser.add_argument("--threads", nargs="+", type=int, default=sorted({1, machine.usable_cpus()}))
    parser.add_argument("--prompt", type=int, default=256)
    parser.add_argument("--gen", type=int, default=64)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    binary = llama_bench_binary()
    print(f"llama.cpp build: {machine.llama_cpp_build()}\nCMake arguments: "
          f"{machine.llama_cpp_cmake_args()}\nmachine: {machine.info()['machine']}\n")
    rows = []
    for model in args.models:
        gguf = catalog.resolve(catalog.get(model))
        for threads in args.threads:
            lm = loading.load(model, "llama_cpp", n_threads=threads)  # the lab's defaults
            # llama-cpp-python's own defaults, which the lab used before: flash attention off,
            # logical batch 512
            old = loading.load(model, "llama_cpp", n_threads=threads, flash_attn=False, n_batch=512)
            lab(lm, 16, 4), lab(old, 16, 4)  # warm-up (llama-bench warms up itself)
            samples = {"lab": [], "native": [], "old": []}
            for _ in range(args.reps):  # alternate, so drift on a shared machine hits all three
                samples["native"].append(native(binary, gguf, threads, args.prompt, args.gen))
                samples["lab"].append(lab(lm, args.prompt, args.gen))
                samples["old"].append(lab(old, args.prompt, args.gen))
            lm.close(), old.close()
            for test in ("pp", "tg"):
                n, b, o = (statistics.median(s[test] for s in samples[k]) for k in ("native", "lab", "old"))
                rows.append({"model": model, "threads": threads,
                             "test": f"{test}{args.prompt if test == 'pp' else args.gen}",
                             "llama-bench tok/s": round(n, 1), "lab tok/s": round(b, 1),
                             "lab / llama-bench": round(b / n, 3),
                             "fa off, batch 512 / llama-bench": round(o / n, 3),
                             "native fa/batch/ubatch": "{flash_attn}/{n_batch}/{n_ubatch}".format(
                                 **samples["native"][0]),
                             "lab fa/batch/ubatch": f"{lm.flash_attn}/{lm.n_batch}/{lm.n_ubatch}"})
    import pandas as pd
    df = pd.DataFrame(rows)
    print(df.to_markdown(index=False))
    for test in ("pp", "tg"):
        ratios = df[df["test"].str.startswith(test)]["lab / llama-bench"]
        print(f"{test}: median ratio {ratios.median():.3f}, min {ratios.min():.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
