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
# The notebook Kaggle runs (offline, on its GPU, within the time limit of shared/data/kaggle.yaml). It reads the competition's
# `test.csv`, recovers a prompt for every row with one strategy of
# `shared/data/prompt_templates.yaml`, and writes `submission.csv` where Kaggle takes it from. All
# the work is `shared.submit` (device choice, batches, the deadline guard, resuming, the score
# when the file has `rewrite_prompt`); this notebook only passes the parameters. On Kaggle,
# install the lab from its wheelhouse first (README: "A submission on Kaggle").
#
#     papermill iterations/01_biggest_model/submission.ipynb out.ipynb -p test_csv test.csv -p out submission.csv

# %% tags=["parameters"]
test_csv = "/kaggle/input/llm-prompt-recovery/test.csv"  # the competition's file (Kaggle's input path)
out = "/kaggle/working/submission.csv"                    # where Kaggle takes the submission from
strategy = "few_shot"                                     # a strategy (or ensemble) of prompt_templates.yaml
model = "qwen2.5-coder-1.5b-instruct"                     # catalog name, or path of a GGUF file / transformers folder
backend = "llama_cpp"                                     # llama_cpp | transformers
device = "auto"                                           # auto (CUDA when the backend sees a GPU) | cpu | cuda
batch_size = 1                                            # pairs per model call (transformers decodes them together)
n_threads = 0                                             # CPU threads (0: every core)
max_new_tokens = 32                                       # cap of each answer, in tokens
max_text_tokens = 384                                     # longer texts are cut to this many tokens
budget_hours = 0.0                                        # hours for the rows (0: kaggle.yaml's budget less its margin for install and load)
expected_rows = 0                                         # rows the budget is for (0: kaggle.yaml's; the file's count when larger)
encoder = ""                                              # for the score: empty picks sentence-t5-base if local
results_dir = ""                                          # when set, the run's summary is appended to <results_dir>/submissions.jsonl

# %%
from shared import submit

summary = submit.run(test_csv, strategy, out, model=model, backend=backend, n_threads=n_threads or None,
                     device=device, batch_size=batch_size, max_new_tokens=max_new_tokens,
                     max_text_tokens=max_text_tokens, budget_hours=budget_hours or submit.DEADLINE_HOURS,
                     expected_rows=expected_rows or None, encoder=encoder or None, progress=False)
print(submit.report(summary))

# %%
if results_dir:
    submit.record(summary, results_dir)
