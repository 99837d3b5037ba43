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
# # Roofline: which candidate is fast enough on which Kaggle GPU
#
# No GPU and no 7B weights here, but batch-1 decode is bound by memory bandwidth (bytes read
# per token) and prefill by compute, so a roofline model calibrated on measured rows can
# answer Iteration 1's question for every candidate. This notebook measures this machine's
# bandwidth and matmul peak (once per machine, like every configuration), fits the runtime
# efficiencies and overheads on this lab's rows and on published rows
# (`shared/data/published_speeds.yaml`), checks them by leave-one-out, and predicts every
# candidate x quantization x GPU (`shared/roofline.py`, `shared/calibration.py`,
# `shared/fastenough.py`).

# %% tags=["parameters"]
hardware = ["P4", "P100", "T4", "2xT4"]              # hardware.yaml labels or keys: the table's GPUs
candidates = ["phi-2", "gemma-2b-it", "llama-2-7b-chat", "mistral-7b-instruct-v0.2", "gemma-7b-it",
              "llama-2-13b-chat", "mixtral-8x7b-instruct-v0.1"]  # catalog names with architecture facts
quantizations = ["fp16", "bnb-8bit", "bnb-4bit", "Q8_0", "Q4_K_M"]  # keys of shared/data/quantization.yaml
ladder = ["smollm2-135m-instruct", "gemma-3-270m", "qwen2.5-coder-1.5b-instruct"]  # this CPU's models
budget_hours = 9.0                                   # Kaggle limit for the whole submission
samples = 1300                                       # hidden test set size
input_tokens = 600                                   # a typical original + rewrite + instruction
output_tokens = 100                                  # the prompt length we would like to generate
threads = 2                                          # threads for this machine's peaks (as the lab's runs)
peak_array_mb = 512                                  # MB per array of the bandwidth kernel (far above the caches)
results_dir = "res/01_biggest_model"                 # relative to the repository root
redo = False                                         # measure this machine's peaks again

# %%
import pandas as pd
from IPython.display import Markdown, display

from shared import analysis, calibration, fastenough, peaks
from shared.machine import REPO
from shared.params import as_lists

as_lists(globals(), "hardware", "candidates", "quantizations", "ladder")  # -p hardware T4 means a one-item list
RESULTS = REPO / results_dir
peak_rows = peaks.ensure(RESULTS / fastenough.PEAKS_TABLE, threads=threads, redo=redo, array_mb=peak_array_mb)
display(Markdown(analysis.markdown(
    pd.DataFrame(peak_rows)[["machine", "threads", "copy_gb_s", "triad_gb_s", "matmul_fp32_tflops",
                             "matmul_library", "load_avg_1min"]])))

# %% [markdown]
# ## Calibration and its leave-one-out error
#
# Each configuration (model x quantization x runtime x hardware) is left out in turn and
# predicted from constants fitted on the rest.

# %%
model = fastenough.Model(RESULTS)
for line in model.skipped:
    print("not used:", line)
display(Markdown(analysis.markdown(fastenough.loo_summary(model), floatfmt=".1f")))

# %%
cols = ["dataset", "config", "input_tokens", "output_tokens", "decode_tok_s_measured", "decode_tok_s_predicted",
        "decode_tok_s_err_pct", "prefill_s_measured", "prefill_s_predicted", "memory_gb_measured", "memory_gb_predicted"]
display(Markdown(analysis.markdown(model.loo[cols], floatfmt=".3g")))

# %% [markdown]
# ## Fast enough? Every candidate x quantization x GPU
#
# Cell: verdict, predicted decode tok/s, seconds per sample of `input_tokens` + `output_tokens`,
# memory (weights + KV cache + calibrated runtime overhead). ✗ = does not fit in memory.

# %%
table = fastenough.fast_enough(model, candidates, quantizations, hardware, input_tokens, output_tokens,
                               budget_hours, samples)
display(Markdown(analysis.markdown(fastenough.fast_enough_grid(table))))
display(Markdown(analysis.markdown(fastenough.calibrations(model, table))))
display(Markdown(fastenough.biggest_sentences(table)))

# %% [markdown]
# ## This CPU's ladder, measured (and predicted where not measured)

# %%
display(Markdown(analysis.markdown(fastenough.cpu_ladder(model, ladder, input_tokens, output_tokens,
                                                          budget_hours, samples), floatfmt=".3g")))

# %% [markdown]
# ## The seed's speed table against physics

# %%
check = calibration.seed_check(model.calibrator)
print(f"highest implied efficiency of any published llama.cpp row: {check.attrs['efficiency_ceiling']:.2f}")
display(Markdown(analysis.markdown(calibration.seed_verdicts(check), floatfmt=".2f")))

# %%
fastenough.roofline_figure(model, hardware, RESULTS / "roofline_decode.png");
