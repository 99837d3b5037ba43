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
# # Speed: tokens per second for each model x runtime x quantization
#
# Iteration 1 asks which LLM is the biggest one fast enough for a submission. This notebook
# times greedy generation of a forced length after one warm-up call, prefill (time to first
# token) and decode apart, and appends one row per call to `speed.jsonl`. Configurations
# already measured on this machine are skipped (set `redo = True` to measure again); a
# configuration that fails is recorded with its reason.

# %% tags=["parameters"]
models = ["smollm2-135m-instruct", "gemma-3-270m"]  # catalog names (shared/data/models.yaml) or paths
backends = ["transformers", "llama_cpp"]             # runtimes to time
quantizations = ["none", "8bit", "4bit"]             # transformers: none (dtype below) or bitsandbytes
quantizations_by_model = {}                          # model: its own transformers quantizations; []: llama.cpp only
skip_configs = []                                    # "model backend quantization" (or "batch model backend quantization size") to leave out: make run, predicted not to fit the GPU
device = "cpu"                                       # cpu | cuda (device_map auto, all layers on GPU)
dtype = ""                                           # transformers dtype; empty: float32 on CPU, float16 on CUDA
n_threads = 0                                        # CPU threads, llama.cpp and torch (0: the CPUs this process may use)
input_text = ""                                      # typical input; empty: input_tokens of real prose
input_tokens = 300                                   # a typical original + rewrite + instruction
max_new_tokens = 32                                  # forced length of the timed generation
repetitions = 3                                      # timed runs after one warm-up
budget_hours = 0.0                                   # hours for the whole submission (0: shared/data/kaggle.yaml)
samples = 0                                          # hidden test set rows (0: shared/data/kaggle.yaml)
output_tokens = 100                                  # the prompt length we would like to generate
results_dir = "res/01_biggest_model"                 # relative to the repository root
redo = False                                         # measure configurations already done here
batch_sizes = []                                     # prompts handed over at once; []: no batch section
batch_models = []                                    # models timed on batches; []: the models above
batch_backends = ["llama_cpp", "vllm"]               # vllm batches; transformers and llama.cpp run one by one
batch_backends_by_model = {}                         # model: its own batch backends
batch_sizes_by_backend = {}                          # backend: its own batch sizes (one by one, 32 adds nothing)
batch_max_new_tokens = 64                            # forced answer length in a batch (input: input_tokens)

# %%
from IPython.display import Markdown, display

from shared.models import loading, timing
from shared.report import tables, plots
from shared.run import experiment
from shared.task import competition
from shared.machine import REPO
from shared.run.params import as_bools, as_lists

as_lists(globals(), "models", "backends", "quantizations", "skip_configs", "batch_sizes", "batch_models", "batch_backends",
         mappings=["quantizations_by_model", "batch_sizes_by_backend", "batch_backends_by_model"])  # -p models NAME: [NAME]
as_bools(globals(), "redo")  # -p redo false is the text "false": read it as no
budget_hours, samples = competition.budget(budget_hours, samples)  # 0: the competition's (kaggle.yaml)
RESULTS = REPO / results_dir
TABLE = RESULTS / "speed.jsonl"
configs = experiment.speed_configs(globals())  # model x backend x quantization: the plan and pre-flight expand the same


def measure(config):
    lm = loading.load(**config, **loading.device_options(config["backend"], device, n_threads, dtype))
    try:
        ids = lm.encode(prompt=input_text) if input_text else timing.filler_ids(lm, input_tokens)
        for rec in timing.benchmark(lm, input_ids=ids, max_new_tokens=max_new_tokens,
                                    repetitions=repetitions, warmup=1):
            yield rec.row(load_s=lm.load_s, from_cache=lm.from_cache, budget_hours=budget_hours,
                          samples=samples, target_output_tokens=output_tokens)
    finally:
        lm.close()


settings = dict(device=device, dtype=dtype, n_threads=n_threads, input_text=input_text,  # what else changes
                input_tokens=input_tokens, max_new_tokens=max_new_tokens, repetitions=repetitions)  # a row: its identity
df = experiment.run(configs, measure, TABLE, redo=redo, desc="speed", settings=settings)

# %% [markdown]
# ## Decode tokens/s (median ± std over the timed repetitions)

# %%
display(Markdown(tables.markdown(tables.speed_table(df, "decode_tok_s"), index=True)))
fails = tables.failures(df)
if not fails.empty:
    display(Markdown("Failed configurations:\n\n" + tables.markdown(fails)))

# %% [markdown]
# ## Memory: the model's share of the process (MB, medians)
#
# The process RSS before loading, what loading added (`model_rss_mb`), the peak of a timed
# generation minus the RSS before loading (`peak_model_rss_mb`: weights, KV cache and
# activations) and the process peak (`peak_rss_mb`). Mapped weights count once read: see
# `LoadedModel.model_rss_mb`.

# %%
display(Markdown(tables.markdown(tables.memory_table(df))))

# %% [markdown]
# ## Fast enough? The per-sample budget against measured prefill and decode

# %%
verdict = tables.verdict(df, budget_hours, samples, output_tokens)
print(f"budget per sample: {verdict.attrs['budget_s']:.1f} s; wanted output: {output_tokens} tokens")
display(Markdown(tables.markdown(verdict)))

# %%
plots.speed_bars(df, RESULTS / "tokens_per_s_by_model.png");

# %% [markdown]
# ## Batches: samples per second with many prompts at once (`batch_sizes`, e.g. PARAMS=cpu_full)
#
# A submission is the hidden test set's independent prompts (`samples`), an offline batch. Each backend gets `batch_size`
# different prompts of `input_tokens` tokens at once and answers each with exactly
# `batch_max_new_tokens` tokens; vLLM runs them together (continuous batching), llama.cpp and
# transformers one after another. One load per model and backend serves all its batch sizes
# (the first after one warm-up batch of its size); its load time, the engine's start-up for
# vLLM, is its own column. vLLM's prefix cache is off here, so that no prompt is served from
# an earlier one's KV blocks (a submission keeps it on for its shared few-shot preamble).
# Rows go to `batch.jsonl`.

# %%
BATCH_TABLE = RESULTS / "batch.jsonl"


batch_configs = experiment.batch_configs(globals())  # sizes of skip_configs ("batch model backend quantization size") left out


def measure_batch(config):
    backend = config["backend"]
    opts = loading.device_options(backend, device, n_threads, dtype)
    if backend == "vllm":
        opts["enable_prefix_caching"] = False  # every prompt computed: a batch measures compute, not the cache
    lm = loading.load(config["model"], backend, config["quantization"], **opts)
    try:
        for k, size in enumerate(int(b) for b in config["batch_sizes"].split()):
            for rec in timing.benchmark_batch(lm, config["input_tokens"], size, repetitions=1,
                                              max_new_tokens=config["batch_max_new_tokens"], warmup=int(k == 0)):
                yield rec.row(from_cache=lm.from_cache)
    finally:
        lm.close()


if batch_configs:
    bdf = experiment.run(batch_configs, measure_batch, BATCH_TABLE, redo=redo, desc="batches",
                         settings=dict(device=device, dtype=dtype, n_threads=n_threads))
    display(Markdown(tables.markdown(tables.batch_table(bdf), floatfmt=".3g")))
