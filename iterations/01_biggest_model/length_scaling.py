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

# %%

# %% [markdown]
# # Length scaling: time and memory against input tokens, output tokens and batch size
#
# The seed plotted inference time against input length (input_length_vs_inference_time.png).
# Here three sweeps per model and runtime, each point timed `repetitions` times after a
# warm-up: prefill time and peak memory against input tokens (output fixed), total time and
# memory against output tokens (input fixed, EOS ignored), and throughput and memory against
# batch size (transformers only: llama.cpp is timed one sequence at a time). A straight line is
# fitted to each curve; its slope is the cost of one more token (or sequence).

# %% tags=["parameters"]
models = ["smollm2-135m-instruct"]        # catalog names or paths
backends = ["transformers", "llama_cpp"]  # runtimes
quantization = "none"                     # transformers: none | 8bit | 4bit
device = "cpu"                            # cpu | cuda
n_threads = 0                             # CPU threads (0: the CPUs this process may use)
input_lengths = [64, 128, 256, 512]       # prompt tokens, input sweep
output_lengths = [8, 16, 32, 64]          # forced new tokens, output sweep
batch_sizes = [1, 2, 4, 8]                # sequences per call, batch sweep (transformers)
fixed_input_tokens = 64                   # input length of the output and batch sweeps
fixed_output_tokens = 8                   # output length of the input and batch sweeps
repetitions = 2                           # timed runs per point
results_dir = "res/01_biggest_model"      # relative to the repository root
redo = False                              # measure configurations already done here

# %%
from IPython.display import Markdown, display

from shared.models import loading, timing
from shared.report import tables, plots
from shared.run import experiment
from shared.machine import REPO
from shared.run.params import as_bools, as_lists

as_lists(globals(), "models", "backends", "input_lengths", "output_lengths", "batch_sizes")  # -p models NAME means a one-item list
as_bools(globals(), "redo")  # -p redo false is the text "false": read it as no
RESULTS = REPO / results_dir
TABLE = RESULTS / "length_scaling.jsonl"
configs = experiment.model_configs(models, backends, [quantization])


def measure(config):
    lm = loading.load(**config, **loading.device_options(config["backend"], device, n_threads))
    points = ([("input", n, fixed_output_tokens, 1) for n in input_lengths]
              + [("output", fixed_input_tokens, n, 1) for n in output_lengths]
              + [("batch", fixed_input_tokens, fixed_output_tokens, b) for b in batch_sizes
                 if b == 1 or config["backend"] == "transformers"])
    try:
        warm = timing.generate(lm, input_ids=timing.filler_ids(lm, fixed_input_tokens),
                               max_new_tokens=fixed_output_tokens, force_length=True, phase="warmup")
        yield warm.row(sweep="warmup")
        for sweep, n_in, n_out, batch in points:
            for rec in timing.benchmark(lm, input_ids=timing.filler_ids(lm, n_in), max_new_tokens=n_out,
                                        batch_size=batch, repetitions=repetitions, warmup=0):
                yield rec.row(sweep=sweep)
    finally:
        lm.close()


settings = dict(device=device, n_threads=n_threads, input_lengths=input_lengths, output_lengths=output_lengths,
                batch_sizes=batch_sizes, fixed_input_tokens=fixed_input_tokens,
                fixed_output_tokens=fixed_output_tokens, repetitions=repetitions)  # part of "already measured"
df = experiment.run(configs, measure, TABLE, redo=redo, desc="length scaling", settings=settings)

# %% [markdown]
# ## Fitted lines (slope per token, or per sequence for batch size)

# %%
display(Markdown(tables.markdown(tables.scaling_fits(df))))

# %%
for sweep, name in [("input", "time_memory_vs_input_tokens.png"),
                    ("output", "time_memory_vs_output_tokens.png"),
                    ("batch", "throughput_memory_vs_batch_size.png")]:
    plots.scaling(df, sweep, RESULTS / name)
