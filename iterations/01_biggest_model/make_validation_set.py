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
# # A validation set the lab makes itself
#
# The competition's data is hidden, so the lab writes its own: original texts written for this
# repository (emails, stories, recipes, news, code comments...) and rewrite prompts of the
# kinds seen in the challenge (tone, style, audience, format, genre), both in
# `shared/data/validation_sources.yaml`. An instruct model rewrites each (text, prompt) pair
# through the helper, in the competition's form (prompt, blank line, text). Every row keeps its
# provenance: generator, runtime, parameters, machine, commit, date. Gemma 7b-it on a GPU box
# would match the competition; SmolLM2 is what this CPU can afford.

# %% tags=["parameters"]
generator = "smollm2-135m-instruct"  # catalog name or path of an instruct model
backend = "llama_cpp"                 # transformers | llama_cpp
device = "cpu"                        # cpu | cuda
n_threads = 2                         # CPU threads
n_samples = 24                        # (text, prompt) pairs
seed = 0                              # which pairs
max_new_tokens = 160                  # cap of each rewrite
set_name = "validation_smollm2"       # the set is <results_dir>/<set_name>.jsonl
results_dir = "res/01_biggest_model"  # relative to the repository root
redo = False                          # make the set again even if it exists

# %%
from IPython.display import Markdown, display

from shared import analysis, loading, results, validation
from shared.machine import REPO

TABLE = REPO / results_dir / f"{set_name}.jsonl"
existing = results.read(TABLE)
if not redo and len(existing) >= n_samples:
    print(f"{TABLE} already holds {len(existing)} rows: reused (redo=True to make it again)")
    rows = existing
else:
    if redo:
        TABLE.unlink(missing_ok=True)
    lm = loading.load(generator, backend, **loading.device_options(backend, device, n_threads))
    results.append(TABLE, validation.make_rows(lm, n_samples, seed, max_new_tokens))
    lm.close()
    rows = results.read(TABLE)

# %%
print(f"{len(rows)} rows; {rows['error'].notna().sum()} failed; "
      f"{(rows['stop_reason'] == 'length').sum()} rewrites hit the {max_new_tokens}-token cap")
display(Markdown(analysis.markdown(rows.groupby(["genre"]).size().rename("pairs").reset_index())))
display(Markdown(analysis.markdown(rows[["prompt", "original", "rewritten"]].head(4))))
