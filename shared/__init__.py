"""Helpers of the prompt-recovery lab: notebooks orchestrate, these modules do the work.

The package is split by role (issue 22); the import direction is a test (tests/test_layers.py):
the ground imports nothing above it; models/ only the ground; speed/, task/ and report/ the
ground and models/, never each other; run/ may import everything; nothing in shared/ imports an
iteration's code (an iteration's own tables live beside its notebooks).

    python -m shared {run, plan, report, submit, shards} ...   (shared/__main__.py)

ground (shared/*.py)
  errors    LabError and every kind of error a user can fix (imports nothing of the lab)
  machine   machine, versions and commit for every row; machine_label; REPO and DATA (shared/data/)
  results   append-only JSON-lines tables read back as DataFrames; settings_hash; the row pickers
            latest_run, ok_timed, numeric

models/  the LLMs: catalog, loading (the only importer of the backends), the interface, the backends, generation timing; imports only the ground.
  catalog   models.yaml and where each model's files are (embedded packages, hub, paths)
  loading   load(name, backend=...) -> LoadedModel, with every argument checked first
  model     LoadedModel, the interface every backend implements (generate_batch included)
  hf        the transformers backend (GGUF converted once and cached, bitsandbytes 8/4-bit)
  llamacpp  the llama.cpp backend (GGUF as LM Studio runs it)
  vllm_engine  the vLLM backend: batches of prompts through vLLM (GGUF via hf's cached conversion)
  tokens    rules every backend shares: one stop set, literal prompt text, whole characters, empty input
  timing    generate(), benchmark() and generate_batch(): one record per call, prefill and decode apart
  envs      which Python runs a backend: vLLM's own environment (.venv-vllm), layered on the lab's

speed/  how fast a model runs on a machine: roofline, calibration on rows, the predictor, model files, this machine's peaks; reusable by any iteration.
  roofline  the roofline model: bytes and FLOPs per token, decode and prefill time, memory, fits
  calibration  the roofline's efficiencies fitted on measured and published rows; leave-one-out
  predictor  the calibrated roofline for a folder of speed rows (Predictor): any model x quantization x card, CPU ladder
  modelfiles  a model's files: published sizes and the seconds to read them
  peaks     this machine's measured memory bandwidth and matmul FLOP/s (STREAM-like, torch)

task/  the competition: its facts, data format, metric, prompts, mean prompt, validation set, submission and shards.
  competition  the competition's facts (shared/data/kaggle.yaml): budget, samples, with sources
  dataio    the competition's CSV format both ways (pairs in, submissions out), every bad cell named
  metrics   the competition's SCS metric (sentence-t5-base, or the embedded MiniLM stand-in)
  prompts   prompt-recovery strategies as data (prompt_templates.yaml), run on any model
  mean_prompt  an optimized constant prompt: greedy or beam search over words of training prompts
  validation  the lab's validation set: reproducible (text, prompt) pairs, their rewrites, a split by prompt
  submit    python -m shared submit: a resumable submission.csv, its speed projection and score
  shards    --shard i/n of a submission and python -m shared shards, the merge of the parts by id

report/  rows into tables, figures and generated report blocks.
  report    generated blocks of an iteration report, refreshed from results (and checked);
            iteration_module loads a module beside an iteration's notebooks
  reproduction  the main job's closing table: this run's headline metrics against the earlier rows
  plots     seaborn figures saved to res/
  tables    speed tables, the budget verdict, line fits, markdown tables

run/  running an iteration: parameters, experiments, process lifetime, notebooks, pre-flight, the runbook, the GPU plan; may import every wing.
  params    notebook parameters from papermill: -p models NAME is a one-item list
  experiment  run a list of configurations into a table: failures recorded, done ones (same
            settings_hash) skipped; the speed notebook's configurations expanded once
  lifetime  a run's processes end with the run, whatever signal ends it
  notebooks  a paired notebook runs only in sync with its .py, and only with parameters it has
  preflight  can this machine run the job? every configuration checked before the first starts
  runbook   the main job: an iteration's notebooks under papermill, then its report
  gpuplan   the plan before a GPU run: predicted memory and time of each configuration, and fits

Importing this package loads no model and does no work.
"""
