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
# # Submission: the competition's test.csv in, submission.csv out
#
# The notebook Kaggle runs: offline (internet off), on its GPU, within the time limit of
# shared/data/kaggle.yaml. `make kaggle` puts it, with its `kernel-metadata.json`, into the
# upload folder next to the two datasets it reads (README: "A submission on Kaggle"): the
# wheelhouse (every wheel the lab needs, installed by the first cell with `pip --no-index`)
# and the model (a GGUF file). The defaults below are those folders under `/kaggle/input`,
# `device = "cuda"` (a wheelhouse without a CUDA build of llama.cpp then stops before loading
# instead of running the hidden set on Kaggle's CPU: the CUDA wheelhouse is built on Kaggle by
# `kaggle/build_gpu_wheels.ipynb`, README steps 5 and 6) and the competition's paths.
#
# It reads `test.csv`, recovers a prompt for every row with one strategy of
# `shared/data/prompt_templates.yaml`, and writes `submission.csv` where Kaggle takes it from.
# All the work is `shared.task.submit` (device choice, batches, the deadline guard, resuming, the
# score when the file has `rewrite_prompt`); it prints the device, the seconds a sample and the
# projection for the hidden test set's rows. In this repository (the lab installed), set
# `wheelhouse = ""`:
#
#     papermill iterations/01_biggest_model/submission.ipynb out.ipynb -p wheelhouse "" \
#         -p test_csv test.csv -p out submission.csv -p model smollm2-135m-instruct -p device auto

# %% tags=["parameters"]
input_dir = "/kaggle/input"                               # where Kaggle mounts the competition and the datasets (read-only)
wheelhouse = "prompt-recovery-lab-wheels"                 # the wheelhouse dataset's folder in input_dir ("": the lab is installed)
vllm_wheels = ""                                          # for backend vllm (T4 only): kaggle/build_gpu_wheels.ipynb's wheelhouse-vllm dataset
test_csv = "llm-prompt-recovery/test.csv"                 # the competition's file, in input_dir (or an absolute path)
out = "/kaggle/working/submission.csv"                    # where Kaggle takes the submission from
strategy = "few_shot"                                     # a strategy (or ensemble) of prompt_templates.yaml
model = "prompt-recovery-lab-model/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"  # a GGUF in input_dir, or a catalog name / path
backend = "llama_cpp"                                     # llama_cpp | transformers | vllm
device = "cuda"                                           # cuda (a Kaggle GPU session: stops if none is usable) | cpu | auto
batch_size = 1                                            # pairs per model call (transformers decodes them together)
n_threads = 0                                             # CPU threads (0: every core)
max_new_tokens = 32                                       # cap of each answer, in tokens
max_text_tokens = 384                                     # longer texts are cut to this many tokens
budget_hours = 0.0                                        # hours for the rows (0: kaggle.yaml's budget less its margin for install and load)
expected_rows = 0                                         # rows the budget is for (0: kaggle.yaml's; the file's count when larger)
encoder = ""                                              # for the score: empty picks sentence-t5-base if local
results_dir = ""                                          # when set, the run's summary is appended to <results_dir>/submissions.jsonl

# %%
# Install the lab from the wheelhouse dataset (offline: install.sh checks this Python, CPU and
# glibc against the wheels first, then runs pip --no-index on that folder only).
import importlib
import subprocess
import sys
from pathlib import Path


def in_input(name: str) -> Path:
    """`name` as a path: absolute as it is, else in input_dir, also one or two folders deeper
    (however Kaggle nests a dataset's mount), else in the working folder; an error naming what
    input_dir holds if it is nowhere."""
    path, base = Path(name), Path(input_dir)
    if path.is_absolute():
        return path
    for candidate in [base / name, *sorted(base.glob(f"*/{name}")), *sorted(base.glob(f"*/*/{name}")), path]:
        if candidate.exists():
            return candidate
    held = sorted(p.name for p in base.iterdir()) if base.is_dir() else f"nothing ({base} does not exist)"
    raise FileNotFoundError(f"{name} is not in {base} (it holds {held}): add the dataset to the notebook "
                            "(README: A submission on Kaggle) or pass the right path")


def install(command: list[str], what: str) -> None:
    """Run an offline install command; its last line, or an error with pip's own message."""
    done = subprocess.run(command, capture_output=True, text=True)
    print(f"{what}: {(done.stdout.strip().splitlines() or [''])[-1]}")
    if done.returncode:
        raise RuntimeError(f"{what} did not install (exit {done.returncode}):\n{done.stderr[-3000:]}")


if wheelhouse:
    install(["bash", str(in_input(wheelhouse) / "install.sh"), sys.executable], wheelhouse)
if vllm_wheels:
    folder = in_input(vllm_wheels)
    install([sys.executable, "-m", "pip", "install", "--no-index", "--find-links", str(folder),
             "-r", str(folder / "requirements.txt")], vllm_wheels)
importlib.invalidate_caches()

# %%
from shared import machine
from shared.task import submit

print(f"Python {sys.version.split()[0]} ({machine.shown(sys.executable)})")

model_path = str(in_input(model)) if model.endswith(".gguf") else model  # a catalog name stays a name
budget = budget_hours or submit.DEADLINE_HOURS
print(f"strategy {strategy}, model {Path(model_path).name} ({backend}), device {device}, "
      f"budget {budget:g} h for the rows")
summary = submit.run(in_input(test_csv), strategy, out, model=model_path, backend=backend,
                     n_threads=n_threads or None, device=device, batch_size=batch_size,
                     max_new_tokens=max_new_tokens, max_text_tokens=max_text_tokens,
                     budget_hours=budget, expected_rows=expected_rows or None,
                     encoder=encoder or None, progress=False)
print(submit.report(summary))

# %%
if results_dir:
    submit.record(summary, results_dir)
