"""Helpers of the prompt-recovery lab: notebooks orchestrate, these modules do the work.

errors    LabError and every kind of error a user can fix (the ground: imports nothing of the lab)
catalog   models.yaml and where each model's files are (embedded packages, hub, paths)
loading   load(name, backend=...) -> LoadedModel, with every argument checked first
model     LoadedModel, the interface every backend implements (generate_batch included)
hf        the transformers backend (GGUF converted once and cached, bitsandbytes 8/4-bit)
llamacpp  the llama.cpp backend (GGUF as LM Studio runs it)
vllm_engine  the vLLM backend: batches of prompts through vLLM (GGUF via hf's cached conversion)
envs      which Python runs a backend: vLLM's own environment (.venv-vllm), layered on the lab's
tokens    rules every backend shares: one stop set, literal prompt text, whole characters, empty input
timing    generate(), benchmark() and generate_batch(): one record per call, prefill and decode apart
results   append-only JSON-lines tables, read back as DataFrames
machine   machine, versions and commit for every row; machine_label, its short name (ground)
experiment  run a list of configurations into a table: failures recorded, done ones (same
          settings_hash) skipped; the speed notebook's configurations expanded once
lifetime  a run's processes end with the run, whatever signal ends it
notebooks  a paired notebook runs only in sync with its .py, and only with parameters it has
preflight  can this machine run the job? every configuration checked before the first starts
gpuplan   the plan before a GPU run: predicted memory and time of each configuration, and fits
reproduction  the main job's closing table: this run's headline metrics against the earlier rows
analysis  speed tables, the budget verdict, line fits, markdown tables
plots     seaborn figures saved to res/
report    generated blocks of an iteration report, refreshed from results (and checked)
runbook   the main job: an iteration's notebooks under papermill, then its report
params    notebook parameters from papermill: -p models NAME is a one-item list
metrics   the competition's SCS metric (sentence-t5-base, or the embedded MiniLM stand-in)
prompts   prompt-recovery strategies as data (prompt_templates.yaml), run on any model
validation  the lab's validation set: reproducible (text, prompt) pairs, their rewrites, a split by prompt
dataio    the competition's CSV format both ways (pairs in, submissions out), every bad cell named
mean_prompt  an optimized constant prompt: greedy or beam search over words of training prompts
submit    python -m shared submit: a resumable submission.csv, its speed projection and score
shards    --shard i/n of a submission and python -m shared shards, the merge of the parts by id
competition  the competition's facts (shared/data/kaggle.yaml): budget, samples, with sources
modelfiles  a model's files: published sizes and the seconds to read them
roofline  the roofline model: bytes and FLOPs per token, decode and prefill time, memory, fits
calibration  the roofline's efficiencies fitted on measured and published rows; leave-one-out
peaks     this machine's measured memory bandwidth and matmul FLOP/s (STREAM-like, torch)
fastenough  Iteration 1's answer: every candidate x quantization x GPU, the CPU ladder, figure

Importing this package loads no model and does no work.
"""
