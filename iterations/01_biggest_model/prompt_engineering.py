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
# # Prompt engineering with a small instruct model
#
# The seed found Gemma 2b-it "pretty dumb": it ignored instructions. It proposed a two-step
# chain: (1) list the differences between the texts, (2) summarise them into a prompt. Here
# four strategies on the lab's validation set, each scored with the competition metric
# (sharpened cosine similarity, mean and 95% CI), with seconds per sample and output tokens:
# a fixed mean prompt, direct recovery, the two-step chain, and few-shot. The templates are
# data (`shared/data/prompt_templates.yaml`); each score stores the template's hash and the
# encoder that produced it.

# %% tags=["parameters"]
model = "smollm2-135m-instruct"      # catalog name or path of an instruct model
backend = "llama_cpp"                 # transformers | llama_cpp
device = "cpu"                        # cpu | cuda
n_threads = 2                         # CPU threads
strategies = ["mean_prompt", "direct", "two_step", "few_shot"]  # see prompt_templates.yaml
validation_set = "validation_smollm2" # <results_dir>/<validation_set>.jsonl (make_validation_set)
n_samples = 24                        # pairs of the set to score
max_new_tokens = 48                   # cap of each model call
max_text_tokens = 384                 # longer texts are truncated (and counted)
encoder = ""                          # empty: sentence-t5-base if available, else all-MiniLM-L6-v2
results_dir = "res/01_biggest_model"  # relative to the repository root
redo = False                          # score strategies already done here

# %%
from IPython.display import Markdown, display

from shared import analysis, experiment, loading, metrics, plots, prompts, results
from shared.machine import REPO

RESULTS = REPO / results_dir
TABLE = RESULTS / "prompt_engineering.jsonl"
pairs = results.read(RESULTS / f"{validation_set}.jsonl")
pairs = pairs[pairs["error"].isna() & pairs["rewritten"].str.strip().ne("")].head(n_samples)
enc = metrics.load_encoder(encoder or None)
print(f"{len(pairs)} pairs from {validation_set}; encoder: {enc.name}")
lm = loading.load(model, backend, **loading.device_options(backend, device, n_threads))


def measure(config):
    rows = [prompts.recover(lm, config["strategy"], p.original, p.rewritten,
                            max_new_tokens=max_new_tokens, max_text_tokens=max_text_tokens)
            for p in pairs.itertuples()]
    preds, blanks = metrics.clean_predictions([r["prediction"] for r in rows])
    scores = metrics.scs(preds, pairs["prompt"].tolist(), enc)
    for r, p, pred, s in zip(rows, pairs.itertuples(), preds, scores):
        yield {**r, "prediction": pred, "blank_replaced": not r["prediction"].strip(),
               "truth": p.prompt, "pair": p.index, "scs": float(s), "encoder": enc.name,
               "validation_set": validation_set, "runtime": lm.runtime}


configs = experiment.grid(strategy=strategies, model=[model], backend=[backend], n_pairs=[len(pairs)])
df = experiment.run(configs, measure, TABLE, redo=redo, desc="strategies")
lm.close()

# %%
ok = df[df["status"].eq("ok") & df["model"].eq(model)]
display(Markdown(analysis.markdown(metrics.summarize(ok))))
display(Markdown(analysis.markdown(ok[["strategy", "truth", "prediction", "scs"]].head(12))))

# %%
plots.scs_bars(ok, RESULTS / "scs_by_strategy.png");
