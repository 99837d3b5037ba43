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
# # EOS: does generation stop when the model says it is done?
#
# The seed found a PyTorch implementation that did not stop at EOS, so every answer ran to
# the maximum length and cost the maximum time. Side by side, for the same chat prompts: the
# helper's default (stop at EOS, or at an end-of-turn token) and a loop that ignores EOS.

# %% tags=["parameters"]
models = ["smollm2-135m-instruct", "gemma-3-270m"]  # catalog names or paths
backends = ["transformers", "llama_cpp"]             # runtimes
device = "cpu"                                       # cpu | cuda
n_threads = 0                                        # CPU threads (0: the CPUs this process may use)
questions = [                                        # short chat prompts with short answers
    "What is the capital of France? Answer in one word.",
    "Rewrite this sentence more formally: hey, can u send me the file?",
    "Give one synonym for 'happy'.",
]
max_new_tokens = 64                                  # the cap an EOS-blind loop always reaches
results_dir = "res/01_biggest_model"                 # relative to the repository root
redo = False                                         # measure configurations already done here

# %%
from IPython.display import Markdown, display

from shared.models import loading, timing
from shared.report import tables, plots
from shared.run import experiment
from shared.machine import REPO
from shared.run.params import as_bools, as_lists

as_lists(globals(), "models", "backends", "questions")  # -p models NAME means a one-item list
as_bools(globals(), "redo")  # -p redo false is the text "false": read it as no
RESULTS = REPO / results_dir
TABLE = RESULTS / "eos.jsonl"
configs = experiment.model_configs(models, backends, ["none"])


def measure(config):
    lm = loading.load(**config, **loading.device_options(config["backend"], device, n_threads))
    try:
        timing.generate(lm, prompt="Hello", max_new_tokens=4)  # warm-up, not recorded
        for i, question in enumerate(questions):
            # a base model has no chat template: it gets the question as plain text
            ask = (dict(messages=[{"role": "user", "content": question}]) if lm.has_chat_template
                   else dict(prompt=f"Question: {question}\nAnswer:"))
            for mode, force in [("stop at EOS", False), ("ignore EOS", True)]:
                rec = timing.generate(lm, max_new_tokens=max_new_tokens, force_length=force, **ask)
                yield rec.row(mode=mode, question=i, chat=lm.has_chat_template)
    finally:
        lm.close()


settings = dict(device=device, n_threads=n_threads, questions=questions, max_new_tokens=max_new_tokens)
df = experiment.run(configs, measure, TABLE, redo=redo, desc="eos", settings=settings)  # settings: part of "already measured"

# %%
display(Markdown(tables.markdown(tables.eos_summary(df))))
ok = df[df["status"].eq("ok") & df["mode"].eq("stop at EOS")]
display(Markdown(tables.markdown(ok[["model", "runtime", "question", "text"]])))

# %%
plots.eos_bars(df, RESULTS / "eos_output_tokens_and_time.png");
