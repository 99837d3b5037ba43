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
# candidate x quantization x GPU (`shared/speed/roofline.py`, `shared/speed/calibration.py`,
# `shared/speed/predictor.py`).

# %% tags=["parameters"]
hardware = ["P100", "T4", "2xT4"]                     # hardware.yaml labels or keys: the table's GPUs
candidates = ["phi-2", "llama-2-7b-chat"]            # catalog names with architecture facts
quantizations = ["fp16", "Q4_K_M"]                   # keys of shared/data/quantization.yaml
ladder = ["smollm2-135m-instruct"]                   # this CPU's models
budget_hours = 0.0                                   # hours for the whole submission (0: shared/data/kaggle.yaml)
samples = 0                                          # hidden test set rows (0: shared/data/kaggle.yaml)
input_tokens = 600                                   # a typical original + rewrite + instruction
long_input_tokens = 3500                             # the seed's longest hidden-test inputs: the second workload
output_tokens = 0                                    # tokens a call generates; 0: the lab's own median
n_ctx = 0                                            # KV cache per sequence; 0: input + output tokens
batch_sizes = [1]                                    # sequences decoded together (batched rows need > 1)
max_ppl_delta = 1.0                                  # the quantization floor: largest published PPL increase
threads = 0                                          # threads for this machine's peaks (0: the CPUs this process may use, as the lab's runs)
peak_array_mb = 512                                  # MB per array of the bandwidth kernel (far above the caches)
results_dir = "res/01_biggest_model"                 # relative to the repository root
redo = False                                         # measure this machine's peaks again

# %%
import pandas as pd
from IPython.display import Markdown, display

from shared import results
from shared.report import tables
from shared.speed import calibration, peaks, predictor
from shared.report.report import iteration_module
from shared.task import competition
from shared.machine import REPO, info
from shared.run.params import as_bools, as_lists

answer = iteration_module(REPO / "iterations" / "01_biggest_model", "answer")   # Iteration 1's answer tables

as_lists(globals(), "hardware", "candidates", "quantizations", "ladder", "batch_sizes")
as_bools(globals(), "redo")  # -p redo false is the text "false": read it as no
budget_hours, samples = competition.budget(budget_hours, samples)  # 0: the competition's (kaggle.yaml)
RESULTS = REPO / results_dir
output_tokens = output_tokens or answer.lab_output_tokens(RESULTS) or answer.lab_output_tokens()
n_ctx = n_ctx or None
print(f"workload: {input_tokens} input + {output_tokens} output tokens a call, n_ctx {n_ctx or 'input + output'}; "
      f"budget {budget_hours:g} h / {samples} samples = {budget_hours * 3600 / samples:.1f} s a sample")
peak_rows = peaks.ensure(RESULTS / predictor.PEAKS_TABLE, threads=threads, redo=redo, array_mb=peak_array_mb)
display(Markdown(tables.markdown(
    pd.DataFrame(peak_rows)[["machine", "threads", "copy_gb_s", "triad_gb_s", "matmul_fp32_tflops",
                             "matmul_library", "load_avg_1min"]])))

# %% [markdown]
# ## Calibration and its held-out errors
#
# Leave one configuration out (this CPU), one card out and one source out (the published GPU
# rows): each is predicted from constants fitted without it.

# %%
model = predictor.Predictor(RESULTS, hardware)
for line in model.skipped:
    print("not used:", line)
display(Markdown(tables.markdown(predictor.loo_summary(model), floatfmt=".1f")))
display(Markdown(tables.markdown(predictor.held_out_summary(model), floatfmt=".1f")))
display(Markdown(tables.markdown(model.columns, floatfmt=".1f")))
display(Markdown(tables.markdown(model.batch_check, floatfmt=".3g")))  # batched rows from batch-1 constants

# %% [markdown]
# ## Fast enough? Every candidate x quantization x GPU x batch size
#
# Cell: verdict, predicted decode tok/s, seconds a call of `input_tokens` + `output_tokens`,
# calls a sample that fit the budget after the model is loaded once (its file read at the
# Kaggle read rate of a public load time, `shared/data/load_times.yaml`), memory margin a GPU
# on its visible capacity, and whether the weights are a published GGUF file's size (file,
# `shared/data/gguf_files.yaml`) or an estimate (bpw est., params).

# %%
table = predictor.fast_enough(model, candidates, quantizations, hardware, input_tokens, output_tokens,
                               budget_hours, samples, batch_sizes, n_ctx, splits=True)
# the second workload: the seed's long inputs, batch 1 (which answers survive them)
long_table = predictor.fast_enough(model, candidates, quantizations, hardware, long_input_tokens, output_tokens,
                                    budget_hours, samples, [1], None, splits=True)
print(answer.load_summary(table))
print(answer.weights_summary(table))
display(Markdown(tables.markdown(answer.fast_enough_grid(table))))
display(Markdown(tables.markdown(answer.calibrations(table))))
if max(batch_sizes) > 1:  # per GPU, the configurations that fit memory: batch sizes side by side
    display(Markdown(answer.BATCH_CAPTION))
    fitting = table[table["fits_memory"] != False]  # noqa: E712
    for label in dict.fromkeys(table["hardware"]):
        display(Markdown(f"**{label}**\n\n" + tables.markdown(answer.batched_table(fitting, label))))
display(Markdown(answer.biggest_sentences(table)))
display(Markdown(answer.biggest_sentences(table, min_bits=0, max_ppl_delta=max_ppl_delta)))

# %% [markdown]
# ## This CPU's ladder, measured (and predicted where not measured)

# %%
ladder_table = predictor.cpu_ladder(model, ladder, input_tokens, output_tokens, budget_hours, samples)
display(Markdown(tables.markdown(ladder_table, floatfmt=".3g")))

# %% [markdown]
# ## The seed's speed table against physics and the seed's own labels

# %%
check = calibration.seed_check(model.calibrator)
verdicts = calibration.seed_verdicts(check)
print(f"highest implied efficiency of any published llama.cpp row: {check.attrs['efficiency_ceiling']:.2f}")
display(Markdown(tables.markdown(verdicts, floatfmt=".2f")))

# %% [markdown]
# ## Every prediction as a row
#
# One run of this notebook appends its tables to `roofline.jsonl` (column `table`), with the
# machine and commit of the run; the report reads the latest run.

# %%
run = results.new_run_id()
common = {**info(), "max_ppl_delta": max_ppl_delta}
results.append(RESULTS / answer.PREDICTIONS_TABLE,
               [common | {"table": "prediction"} | r for r in table.to_dict("records")]
               + [common | {"table": "prediction_long"} | r for r in long_table.to_dict("records")]
               + [common | {"table": "column_error"} | r for r in model.columns.to_dict("records")]
               + [common | {"table": "held_out"} | r for r in predictor.held_out_summary(model).to_dict("records")]
               + [common | {"table": "loo_summary"} | r for r in predictor.loo_summary(model).to_dict("records")]
               + [common | {"table": "batch_check"} | r for r in model.batch_check.to_dict("records")]
               + [common | {"table": "cpu_ladder", "budget_hours": budget_hours, "samples": samples,
                            "input_tokens": input_tokens, "output_tokens": output_tokens} | r
                  for r in ladder_table.to_dict("records")]
               + [common | {"table": "seed_verdict", "efficiency_ceiling": check.attrs["efficiency_ceiling"]} | r
                  for r in verdicts.to_dict("records")], run_id=run)
print(f"appended run {run} to {answer.PREDICTIONS_TABLE}: {len(table)} predictions")

# %%
answers = pd.concat([answer.answer(table), answer.answer(table, min_bits=0, max_ppl_delta=max_ppl_delta)])
answer.roofline_figure(model, hardware, RESULTS / "roofline_decode.png", predicted=answers);
