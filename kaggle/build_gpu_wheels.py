# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The CUDA wheels, built where the submission runs: on Kaggle
#
# Kaggle's convention for an offline submission that needs a compiled package: a notebook run
# on Kaggle with the internet and a GPU builds it, and its output becomes the dataset the
# offline notebook installs from. Run this one on Kaggle (Settings: Internet on, Accelerator
# GPU T4 x2 or P100) with the CPU wheelhouse dataset of `make kaggle` (prompt-recovery-lab-wheels)
# added as input; `make kaggle` writes it with its `kernel-metadata.json` to
# `kaggle-upload/build-gpu/` (README: "A submission on Kaggle", the GPU steps).
#
# It builds llama-cpp-python (the version of the CPU wheelhouse's wheel) with Kaggle's own
# CUDA toolkit for the P100 (compute capability 6.0) and the T4 (7.5), portable on the CPU side
# (`-DGGML_NATIVE=OFF`), and writes `/kaggle/working/wheelhouse-gpu/`: the CPU wheelhouse with its
# llama.cpp wheel replaced by the CUDA one and `BUILD.json` written again (the CMake arguments,
# the CUDA architectures, the CPU features, the glibc), checked by `install.sh` like the CPU one.
# With `vllm_package` set it also downloads vLLM with every dependency for this Python into
# `/kaggle/working/wheelhouse-vllm/` (T4 only: vLLM needs compute capability 7.0 or newer).
#
# Each output folder gets its `dataset-metadata.json` (slugs prompt-recovery-lab-wheels-gpu and
# prompt-recovery-lab-vllm), so that `kaggle kernels output` then `kaggle datasets create -p` make
# the datasets (or, on the web: the version's Output, "New Dataset"); `make kaggle
# KAGGLE_WHEELS=prompt-recovery-lab-wheels-gpu` then points the submission notebook at the first.

# %% tags=["parameters"]
user = ""                                          # your Kaggle username (make kaggle sets it): the outputs' dataset-metadata.json
input_dir = "/kaggle/input"                        # where Kaggle mounts the datasets
wheelhouse = "prompt-recovery-lab-wheels"          # the CPU wheelhouse dataset (make kaggle) in input_dir
out_dir = "/kaggle/working/wheelhouse-gpu"         # the CUDA wheelhouse: this notebook's output
cuda_architectures = "60;75"                       # P100 (6.0) and T4 (7.5)
llama_cpp_version = ""                             # "": the CPU wheelhouse's llama-cpp-python version
vllm_package = "vllm==0.32.0"                      # downloaded with its dependencies for the T4 ("": skip); scripts/install_vllm.sh's version
vllm_dir = "/kaggle/working/wheelhouse-vllm"       # where the vLLM wheels go

# %%
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

nvcc = shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc"
release = re.search(r"release (\d+)\.(\d+)", subprocess.run([nvcc, "--version"], capture_output=True,
                                                          text=True, check=True).stdout)
cuda = tuple(int(x) for x in release.groups())
print(subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout.strip())
archs = [a for a in cuda_architectures.split(";") if a]
if cuda >= (13, 0) and "60" in archs:  # CUDA 13 compiles for compute capability 7.5 and newer only
    archs.remove("60")
    print(f"nvcc {cuda[0]}.{cuda[1]} cannot compile for the P100 (6.0): building for {archs} only")
print(f"nvcc {cuda[0]}.{cuda[1]}, Python {sys.version.split()[0]}, building for compute capability {archs}")

# %%
found = [p for p in [Path(input_dir) / wheelhouse, *Path(input_dir).glob(f"*/{wheelhouse}"),
                     *Path(input_dir).glob(f"*/*/{wheelhouse}")] if (p / "install.sh").exists()]
if not found:
    raise FileNotFoundError(f"no {wheelhouse}/install.sh in {input_dir}: add the CPU wheelhouse dataset (make kaggle) as input")
src, out = found[0], Path(out_dir)
build = json.loads((src / "BUILD.json").read_text())
if build["python"] != "%d.%d" % sys.version_info[:2]:
    print(f"note: the CPU wheelhouse is for Python {build['python']}, this image has {sys.version.split()[0]}: "
          "make kaggle KAGGLE_PYTHON=... for this image")
shutil.rmtree(out, ignore_errors=True)
shutil.copytree(src, out, ignore=shutil.ignore_patterns("llama_cpp_python-*.whl", "dataset-metadata.json", "BUILD.json"))
version = llama_cpp_version or re.match(r"llama_cpp_python-([^-]+)-", build["llama_cpp"]["wheel"]).group(1)

# %%
cmake_args = f"-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES={';'.join(archs)} -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF"
start = time.time()
built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir",
                        "--no-binary", "llama-cpp-python", "--config-settings=wheel.py-api=py3",
                        "-w", str(out), f"llama-cpp-python=={version}"],
                       env={**os.environ, "CMAKE_ARGS": cmake_args,
                            "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count())},
                       capture_output=True, text=True)
print(f"llama-cpp-python {version} ({cmake_args}): exit {built.returncode} after {time.time() - start:.0f} s")
if built.returncode:
    raise RuntimeError(built.stdout[-3000:] + built.stderr[-3000:])

# %%
# BUILD.json for the CUDA wheel, then the same check install.sh makes before installing
for step in (["write", str(out), "--python", build["python"], "--cmake-args", cmake_args], ["check", str(out)]):
    done = subprocess.run([sys.executable, str(out / "build_info.py"), *step], capture_output=True, text=True)
    print(done.stdout.strip(), done.stderr.strip())
    if done.returncode:
        raise RuntimeError(f"build_info.py {step[0]} failed: {done.stderr[-2000:]}")
wheels = sorted(out.glob("*.whl"))
print(f"{out}: {len(wheels)} wheels, {sum(w.stat().st_size for w in wheels) / 1e6:.0f} MB")


def dataset_metadata(folder, slug: str, title: str) -> None:
    """The folder's dataset-metadata.json (Kaggle/kaggle-api docs/datasets_metadata.md)."""
    if user:
        Path(folder, "dataset-metadata.json").write_text(json.dumps(
            {"title": title, "id": f"{user}/{slug}", "licenses": [{"name": "other"}],
             "description": f"Built on Kaggle by build_gpu_wheels.ipynb: {cmake_args}"}, indent=2))


dataset_metadata(out, "prompt-recovery-lab-wheels-gpu", "Prompt recovery lab wheels GPU")

# %%
if vllm_package:
    shutil.rmtree(vllm_dir, ignore_errors=True)
    start = time.time()
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--only-binary", ":all:",
                    "-d", vllm_dir, vllm_package], check=True)
    Path(vllm_dir, "requirements.txt").write_text(vllm_package + "\n")
    dataset_metadata(vllm_dir, "prompt-recovery-lab-vllm", "Prompt recovery lab vLLM wheels")
    vllm_wheels = sorted(Path(vllm_dir).glob("*.whl"))
    print(f"{vllm_dir}: {len(vllm_wheels)} wheels, {sum(w.stat().st_size for w in vllm_wheels) / 1e9:.1f} GB, "
          f"{time.time() - start:.0f} s; install offline: pip install --no-index --find-links {vllm_dir} "
          f"-r {vllm_dir}/requirements.txt")
