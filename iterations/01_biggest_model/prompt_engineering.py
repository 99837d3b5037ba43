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
# # Prompt engineering: constant prompts against a model that follows instructions
#
# The seed found Gemma 2b-it "pretty dumb": it ignored instructions. It proposed a two-step
# chain: (1) list the differences between the texts, (2) summarise them into a prompt; its
# final recipe appended a fixed "mean prompt" to the model's guess. The competition's top teams
# went further: one optimized mean prompt, found by search, beat most models. Here, on the
# held-out split of the lab's validation set (prompts the mean-prompt search never saw), each
# scored with the competition metric (sharpened cosine similarity, mean and 95% CI over
# distinct pairs) with seconds per sample: the fixed "Improve this text.", the optimized mean
# prompt, direct recovery, the seed's two-step chain (its list of differences gets its own
# token budget), few-shot (its preamble's KV state reused across pairs, as a submission would),
# and direct recovery + mean prompt; then ensembles (the predictions of several strategies joined,
# optionally with the mean prompt, as the seed's and the winners' submissions were), and how much
# cutting the texts to `max_text_tokens` costs and saves for the best strategy. Templates are data
# (`shared/data/prompt_templates.yaml`); each score stores the template's hash and the encoder
# that produced it.

# %% tags=["parameters"]
model = "smollm2-135m-instruct"      # catalog name or path of an instruct model
backend = "llama_cpp"                 # transformers | llama_cpp
device = "cpu"                        # cpu | cuda
n_threads = 0                         # CPU threads (0: the CPUs this process may use)
strategies = ["fixed_prompt", "mean_prompt", "direct", "direct_mean", "two_step", "few_shot"]  # prompt_templates.yaml
validation_set = "validation_smollm2" # <results_dir>/<name>.jsonl (make_validation_set), or a competition CSV path
held_out_fraction = 0.5               # for a set without a split column (a CSV): share of prompts held out
split_seed = 0                        # which prompts are held out in that case
n_samples = 24                        # held-out pairs to score, at most
max_new_tokens = 32                   # cap of each final answer (a step with its own budget keeps it)
max_text_tokens = 384                 # longer texts are truncated (and counted)
reuse_prefix = True                   # llama.cpp: keep the KV state of a prefix shared with the call before
mean_prompt_steps = 20                # at most this many words / phrases appended by the search
mean_prompt_beam = 1                  # beam width of the search (1: greedy)
mean_prompt_seed = 0                  # seed of the search
encoder = ""                          # empty: sentence-t5-base if available, else all-MiniLM-L6-v2
results_dir = "res/01_biggest_model"  # relative to the repository root
redo = False                          # score strategies already done here
text_cut_strategy = ""                # strategy of the text-cut sweep; empty: the best mean SCS above
text_cut_tokens = [24, 48, 384]       # max_text_tokens values it scores ([]: no sweep)

# %%
from IPython.display import Markdown, display

from shared import machine, results
from shared.models import loading
from shared.report import tables, plots
from shared.run import experiment
from shared.task import mean_prompt, metrics, prompts, validation
from shared.machine import REPO
from shared.run.params import as_bools, as_lists

as_lists(globals(), "strategies", "text_cut_tokens")  # -p strategies NAME means a one-item list
as_bools(globals(), "reuse_prefix", "redo")           # -p redo false is the text "false": read it as no
RESULTS = REPO / results_dir
TABLE = RESULTS / "prompt_engineering.jsonl"
TEXT_CUT = RESULTS / "text_cut.jsonl"
pairs, set_name = validation.load_set(validation_set, RESULTS)  # a set name or a competition file
pairs = validation.with_split(pairs, held_out_fraction, split_seed)  # a CSV has no split column
pairs["pair"] = pairs["id"] if "id" in pairs else pairs["text_id"] + "__" + pairs["prompt_id"]
train = pairs[pairs["split"].eq("train")]
held_out = pairs[pairs["split"].eq("held_out")].head(n_samples)
assert not set(train["prompt"]) & set(held_out["prompt"]), "a held-out prompt is in the training split"
enc = metrics.load_encoder(encoder or None)
print(f"{set_name}: {len(train)} training pairs ({train['prompt'].nunique()} prompts), "
      f"{len(held_out)} held-out pairs ({held_out['prompt'].nunique()} other prompts); encoder: {enc.name}")

# %% [markdown]
# The optimized mean prompt: a greedy (or beam) search over words and phrases of the training
# prompts, scored on the training split only, then evaluated once on the held-out split.

# %%
search = mean_prompt.search(train["prompt"].tolist(), enc, max_steps=mean_prompt_steps,
                            beam_width=mean_prompt_beam, seed=mean_prompt_seed)
held_score = metrics.score([search.prompt] * len(held_out), held_out["prompt"].tolist(), enc)
searches = results.read(RESULTS / "mean_prompt.jsonl")
new = "checkout" not in searches or not (  # the same search by this checkout on this machine is recorded once
    searches["machine"].eq(machine.info()["machine"]) & searches["checkout"].eq(machine.info()["checkout"])
    & searches["validation_set"].eq(set_name)
    & searches["encoder"].eq(enc.name) & searches["prompt"].eq(search.prompt)
    & searches["seed"].eq(search.seed) & searches["beam_width"].eq(search.beam_width)
    & searches["n_held_out"].eq(held_score["n"])).any()
if new:
    results.append(RESULTS / "mean_prompt.jsonl", {
        "prompt": search.prompt, "train_scs": search.train_scs, "held_out_scs": held_score["scs_mean"],
        "held_out_ci_low": held_score["scs_ci_low"], "held_out_ci_high": held_score["scs_ci_high"],
        "n_train": search.n_train, "n_held_out": held_score["n"], "encoder": enc.name,
        "validation_set": set_name, "steps": len(search.history), "max_steps": mean_prompt_steps,
        "beam_width": search.beam_width, "seed": search.seed, "pool_size": search.pool_size,
        "history": search.history, **machine.info()},
        run_id=results.new_run_id())
print(f"mean prompt ({len(search.history)} steps, pool {search.pool_size}): {search.prompt!r}\n"
      f"train SCS {search.train_scs:.4f} ({enc.name}), held-out SCS {held_score['scs_mean']:.4f} "
      f"[{held_score['scs_ci_low']:.4f}, {held_score['scs_ci_high']:.4f}]")

# %% [markdown]
# The strategies, each on every held-out pair. `direct_mean` appends the mean prompt to the
# direct answers of the same run (no second model call; its seconds are direct's). An ensemble
# joins its parts' answers for the same pair (`prompts.combine`), taken from this run or from the
# parts' rows recorded by this checkout (same model, set, machine, template, token caps); only a part with no
# such row is run; its seconds are the sum of its parts'.

# %%
_lm, _rows = [], {}  # the model, loaded on first use (not at all when every strategy is done); rows by (strategy, pair)


def get_lm():
    if not _lm:
        _lm.append(loading.load(model, backend, **loading.device_options(backend, device, n_threads)))
    return _lm[0]


def recorded_row(strategy, pair):
    """This checkout's latest ok row of `strategy` on `pair` with the same template and caps, or None."""
    key = (strategy, pair)
    if key not in _recorded:
        return None
    row = dict(_recorded[key])
    if row.get("blank_replaced"):
        row["prediction"] = ""  # the part's own answer was blank: the ensemble leaves it out
    return row


def part_row(strategy, p, text_tokens=None):
    """A part's row for pair p: this run's, else a recorded one, else computed now. A text-cut
    row (text_tokens given) is always computed now, so the sweep's seconds come from one run."""
    if text_tokens is None:
        if (strategy, p.pair) in _rows:
            return _rows[(strategy, p.pair)]
        if (row := recorded_row(strategy, p.pair)) is not None:
            return row
    lm = get_lm() if prompts.needs_model(strategy) else None
    row = prompts.recover(lm, strategy, p.original, p.rewritten, max_new_tokens=max_new_tokens,
                          max_text_tokens=text_tokens or max_text_tokens, mean_prompt=search.prompt,
                          reuse_prefix=reuse_prefix and lm is not None and lm.backend == "llama_cpp")
    if text_tokens is None:
        _rows[(strategy, p.pair)] = row
    return row


def scored(rows, extra):
    """Rows with their SCS against the held-out truths, as result rows."""
    preds, _ = metrics.clean_predictions([r["prediction"] for r in rows])
    scores = metrics.scs(preds, held_out["prompt"].tolist(), enc)
    for r, p, pred, s in zip(rows, held_out.itertuples(), preds, scores):
        yield {**r, "prediction": pred, "blank_replaced": metrics.is_missing(r["prediction"]),
               "truth": p.prompt, "pair": p.pair, "kind": getattr(p, "kind", None),
               "split": "held_out", "scs": float(s), "encoder": enc.name,
               "validation_set": set_name, "mean_prompt": search.prompt,
               "max_new_tokens": max_new_tokens, "runtime": _lm[0].runtime if _lm else "none", **extra}


def measure(config):
    strategy = config["strategy"]
    text_tokens = config.get("max_text_tokens")   # set in the text-cut sweep only
    rows = []
    for p in held_out.itertuples():
        if strategy == "direct_mean" and text_tokens is None and ("direct", p.pair) in _rows:
            base = _rows[("direct", p.pair)]
            rows.append({**base, "strategy": strategy, "derived_from": "direct",
                         "template_hash": prompts.template_hash(strategy, search.prompt),
                         "prediction": prompts.append_mean(base["prediction"], search.prompt)})
        elif prompts.parts(strategy):
            rows.append({**prompts.combine(strategy, [part_row(s, p, text_tokens) for s in prompts.parts(strategy)],
                                           search.prompt), "derived_from": "+".join(prompts.parts(strategy))})
        else:
            rows.append(part_row(strategy, p, text_tokens))
    yield from scored(rows, {"max_text_tokens": text_tokens or max_text_tokens})


def _latest_ok_rows():
    """This checkout's latest ok row per (strategy, pair) of this model, set and caps on this
    machine (rows a clone received were measured elsewhere: its run measures them again)."""
    df = results.read(TABLE)
    if df.empty or "checkout" not in df:
        return {}
    here = machine.info()
    df = df[df["status"].eq("ok") & df["model"].eq(model) & df["backend"].eq(backend)
            & df["validation_set"].eq(set_name) & df["machine"].eq(here["machine"])
            & df["checkout"].eq(here["checkout"]) & df["pair"].isin(held_out["pair"])]
    caps = df["step_max_new_tokens"].map(lambda b: not b or b[-1] == max_new_tokens)
    # rows written before max_text_tokens was recorded were made with the notebook's default, 384
    texts = df["max_text_tokens"].fillna(384) if "max_text_tokens" in df else 384
    df = df[caps & (texts == max_text_tokens)]
    same = df["template_hash"] == df["strategy"].map(lambda s: prompts.template_hash(s, search.prompt)
                                                     if s in prompts.templates() else None)
    return {(r["strategy"], r["pair"]): r for r in df[same].to_dict("records")}


_recorded = _latest_ok_rows()
configs = experiment.grid(strategy=strategies, model=[model], backend=[backend],
                          validation_set=[set_name], n_pairs=[len(held_out)], encoder=[enc.name])
settings = dict(device=device, n_threads=n_threads, held_out_fraction=held_out_fraction, split_seed=split_seed,
                max_new_tokens=max_new_tokens, reuse_prefix=reuse_prefix, mean_prompt=search.prompt)  # part of "already measured"
df = experiment.run(configs, measure, TABLE, redo=redo, desc="strategies", isolate=False,
                    settings={**settings, "max_text_tokens": max_text_tokens})  # measure uses lm, loaded in this process

# %%
ok = df[df["status"].eq("ok") & df["model"].eq(model) & df["split"].eq("held_out")
        & df["validation_set"].eq(set_name)]
ok = ok[ok["machine"].eq(ok["machine"].iloc[-1])] if len(ok) else ok          # this machine's rows
ok = ok.drop_duplicates(["strategy", "pair"], keep="last")                     # each pair counts once
display(Markdown(tables.markdown(metrics.summarize(ok))))
display(Markdown(tables.markdown(ok[["strategy", "truth", "prediction", "scs"]].head(12))))

# %%
plots.scs_bars(ok, RESULTS / "scs_by_strategy.png");

# %% [markdown]
# The text cut: the best strategy (by mean SCS above, unless `text_cut_strategy` names one) with
# each text cut to `max_text_tokens` values, with the seconds a sample takes. Rows in
# `text_cut.jsonl`.

# %%
best = text_cut_strategy or (metrics.summarize(ok).sort_values("scs_mean").iloc[-1]["strategy"] if len(ok) else "")
cut_configs = experiment.grid(strategy=[best] if best else [], max_text_tokens=text_cut_tokens, model=[model],
                              backend=[backend], validation_set=[set_name], n_pairs=[len(held_out)],
                              encoder=[enc.name])
cuts = experiment.run(cut_configs, measure, TEXT_CUT, redo=redo, desc="text cut", isolate=False, settings=settings)
for lm in _lm:
    lm.close()
if len(cuts):
    cut_ok = cuts[cuts["status"].eq("ok") & cuts["model"].eq(model) & cuts["validation_set"].eq(set_name)
                  & cuts["machine"].eq(machine.info()["machine"])]
    cut_ok = cut_ok.drop_duplicates(["strategy", "max_text_tokens", "pair"], keep="last")
    display(Markdown(tables.markdown(metrics.summarize(cut_ok, by="max_text_tokens"))))
