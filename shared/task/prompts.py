"""Prompt-recovery strategies: templates as data (prompt_templates.yaml), run on any LoadedModel.

    row = recover(lm, "two_step", original, rewritten)
    row["prediction"], row["template_hash"]

A strategy is a fixed prediction, a chain of chat calls (each call with its own token budget
when the template gives one), or an ensemble: the predictions of other strategies concatenated
(`concat`); `append_mean_prompt` strategies add the mean prompt to the answer. Each template has a short hash that goes with every result, so a score can always be
traced to the exact wording that produced it. Only the LoadedModel interface (encode, decode,
timing.generate) is used, so every backend works; `reuse_prefix` (llama.cpp only) keeps the KV
state of a prompt prefix shared with the call before, as a real submission would for few-shot.

    rows = recover_batch(lm, "few_shot", [(original, rewritten), ...], batch_size=8)

runs several pairs through LoadedModel.generate_batch, one batched call per step of the chain.
"""
from __future__ import annotations

import functools
import hashlib
import json
import re

import yaml

from shared.models import timing
from shared.errors import LabError
from shared.machine import DATA

TEMPLATES_FILE = DATA / "prompt_templates.yaml"
STRATEGIES = ("fixed_prompt", "mean_prompt", "direct", "direct_mean", "two_step", "few_shot")  # required
KINDS = ("prediction", "steps", "concat")  # what a strategy is: constant, chain of calls, ensemble

# what small models put before the instruction itself: bullets, numbering, labels, markdown
_BULLET = re.compile(r"^\s*(?:[-*•>#]+|\d+[.)])\s*")
_LABEL = re.compile(r"^(?:the\s+)?(?:rewrite\s+)?(?:prompt|instruction)s?\s*(?:was|is)?\s*:\s*", re.I)
_QUOTES = "\"'`“”‘’*_ "


@functools.cache
def templates() -> dict[str, dict]:
    """The strategies of prompt_templates.yaml, by name (read once)."""
    entries = yaml.safe_load(TEMPLATES_FILE.read_text())
    missing = set(STRATEGIES) - set(entries)
    if missing:
        raise LabError(f"{TEMPLATES_FILE} lacks strategies {sorted(missing)}")
    for name, entry in entries.items():
        kinds = [k for k in KINDS if k in entry]
        if len(kinds) != 1:
            raise LabError(f"{TEMPLATES_FILE}: strategy {name} needs exactly one of {', '.join(KINDS)}, "
                           f"has {kinds or 'none'}")
        for part in entry.get("concat", []):
            if part not in entries or "concat" in entries[part]:
                raise LabError(f"{TEMPLATES_FILE}: ensemble {name} concatenates {part!r}, which is "
                               "not a strategy of the file (or is itself an ensemble)")
    return entries


def names() -> list[str]:
    """Every strategy of prompt_templates.yaml, ensembles included, in file order."""
    return list(templates())


def check_strategy(strategy: str) -> None:
    """LabError naming the known strategies when `strategy` is not one of them."""
    if strategy not in templates():
        raise LabError(f"unknown strategy {strategy!r}; choose one of {', '.join(names())} "
                       f"(templates in {TEMPLATES_FILE})")


def _template(strategy: str) -> dict:
    check_strategy(strategy)
    return templates()[strategy]


def needs_model(strategy: str) -> bool:
    """Whether the strategy calls a model (False for constant predictions). Every model call is
    a chat, so a strategy that needs a model needs one with a chat template (check_chat)."""
    entry = _template(strategy)
    return "steps" in entry or any(needs_model(p) for p in entry.get("concat", []))


def parts(strategy: str) -> list[str]:
    """The strategies an ensemble concatenates ([] for any other strategy)."""
    return list(_template(strategy).get("concat", []))


def check_chat(strategy: str, has_chat_template: bool, model: str) -> None:
    """LabError when `strategy` sends chat messages to a model without a chat template (a base
    model): every row would fail. Called with the catalog's `chat_template` before loading, and
    with the loaded model's own template (a path model) before its first call."""
    if needs_model(strategy) and not has_chat_template:
        constant = [n for n in names() if not needs_model(n)]
        raise LabError(f"strategy {strategy} sends chat messages, but {model} has no chat template "
                       f"(a base model); use an instruct model (chat_template: true in models.yaml) "
                       f"or a strategy without a model call ({', '.join(constant)})")


def default_mean_prompt() -> str:
    """The mean prompt stored in prompt_templates.yaml (found with all-MiniLM-L6-v2)."""
    return templates()["mean_prompt"]["prediction"]


def _steps(entry: dict) -> list[tuple[list[dict], int | None]]:
    """(messages, own max_new_tokens or None) for each call of a chain."""
    out = []
    for step in entry["steps"]:
        if isinstance(step, dict):
            out.append((step["messages"], step.get("max_new_tokens")))
        else:
            out.append((step, None))
    return out


def template_hash(strategy: str, mean_prompt: str | None = None) -> str:
    """8 hex characters of sha1 over the strategy's prediction or steps (with their token
    budgets) and the mean prompt it appends, not its description. `mean_prompt` replaces the
    stored mean prompt, as in recover()."""
    entry = _template(strategy)
    body = {k: entry[k] for k in ("prediction", "steps", "append_mean_prompt") if k in entry}
    if "concat" in entry:  # an ensemble is its parts (each with the same mean prompt)
        body["concat"] = [template_hash(p, mean_prompt) for p in entry["concat"]]
    if mean_prompt is not None and strategy == "mean_prompt":
        body["prediction"] = mean_prompt
    if entry.get("append_mean_prompt"):
        body["mean_prompt"] = default_mean_prompt() if mean_prompt is None else mean_prompt
    return hashlib.sha1(json.dumps(body, sort_keys=True).encode()).hexdigest()[:8]


def clean_instruction(text: str) -> str:
    """One instruction from a model's answer: the first line left after stripping bullets,
    labels such as "Prompt:" or "Instruction:", and surrounding quotes or markdown, skipping
    bare headers ("Text A:"). Empty when nothing is left."""
    for line in text.splitlines():
        line = _BULLET.sub("", line.strip()).strip(_QUOTES)
        line = _LABEL.sub("", line).strip(_QUOTES)
        if line.endswith(":") and len(line.split()) <= 4:
            continue  # a header ("Text A:", "Rewrite:"), not an instruction
        if line:
            return line
    return ""


def append_mean(prediction: str, mean_prompt: str) -> str:
    """The seed's final recipe: a model's prediction followed by the mean prompt (the mean
    prompt alone when the prediction is blank)."""
    prediction = prediction.strip()
    if not prediction:
        return mean_prompt
    if prediction[-1] not in ".!?":
        prediction += "."
    return f"{prediction} {mean_prompt}"


def truncate(lm, text: str, max_tokens: int) -> tuple[str, bool]:
    """`text` cut to at most `max_tokens` of the model's tokens (a BOS token counts), and whether
    it was cut. The cut falls between whole characters: the result is always a prefix of `text`
    (never half an emoji, never U+FFFD), and it encodes to at most `max_tokens` tokens."""
    if max_tokens < 0:
        raise LabError(f"max_tokens must be 0 or more, got {max_tokens}")
    ids = lm.encode(prompt=text)
    if len(ids) <= max_tokens:
        return text, False
    for n in range(max_tokens, -1, -1):  # the first try fits unless the prefix encodes longer
        decoded = lm.decode(ids[:n])     # a character cut at the end is already left out
        size = next((i for i, (a, b) in enumerate(zip(text, decoded)) if a != b), min(len(text), len(decoded)))
        head = text[:size]               # the longest prefix of text the decoded tokens agree with
        if len(lm.encode(prompt=head)) <= max_tokens:
            return head, True
    return "", True


def recover(lm, strategy: str, original: str, rewritten: str, max_new_tokens: int = 48,
            max_text_tokens: int = 384, mean_prompt: str | None = None,
            reuse_prefix: bool = False) -> dict:
    """Guess the prompt that turned `original` into `rewritten` with `strategy`.

    max_new_tokens: cap of the final answer and of every step without its own budget in the
    template (the row's `step_max_new_tokens` lists what each call got). mean_prompt: replaces
    the stored mean prompt (strategies `mean_prompt` and `direct_mean`). reuse_prefix: keep the
    KV state of the prompt prefix shared with the model's previous call (llama.cpp only); the
    row's `reused_tokens` counts the prompt tokens not prefilled again.

    Returns one result row (step_outputs keeps each call's raw text). A failure inside a model
    call is recorded in `error` with an empty prediction (metrics.clean_predictions fills
    blanks), so a long run is never stopped by one pair.
    """
    entry = _template(strategy)
    if lm is not None:
        check_chat(strategy, lm.has_chat_template, lm.name)
    mean = default_mean_prompt() if mean_prompt is None else mean_prompt
    row = _empty_row(strategy, mean_prompt, reuse_prefix)
    if "concat" in entry:
        return combine(strategy, [recover(lm, p, original, rewritten, max_new_tokens, max_text_tokens,
                                          mean_prompt, reuse_prefix) for p in entry["concat"]], mean_prompt)
    if "prediction" in entry:
        prediction = mean if strategy == "mean_prompt" else entry["prediction"]
        return {**row, "prediction": prediction, "raw_output": prediction}
    try:
        original, cut_a = truncate(lm, original, max_text_tokens)
        rewritten, cut_b = truncate(lm, rewritten, max_text_tokens)
        row["truncated"] = cut_a or cut_b
        fields = {"original": original, "rewritten": rewritten, "differences": ""}
        options = {"reuse_prefix": True} if reuse_prefix else {}
        for step, budget in _steps(entry):
            messages = [{"role": m["role"], "content": m["content"].format_map(fields)} for m in step]
            budget = budget or max_new_tokens
            rec = timing.generate(lm, messages=messages, max_new_tokens=budget, **options)
            row["model_calls"] += 1
            row["output_tokens"] += rec.output_tokens
            row["input_tokens"] += rec.input_tokens
            row["reused_tokens"] += getattr(rec, "reused_tokens", 0)
            row["seconds"] += rec.total_s
            row["step_max_new_tokens"].append(budget)
            fields["differences"] = rec.text.strip()
            row["step_outputs"].append(rec.text)
        row["raw_output"] = fields["differences"]
        row["prediction"] = clean_instruction(row["raw_output"])
        if entry.get("append_mean_prompt"):
            row["prediction"] = append_mean(row["prediction"], mean)
    except Exception as e:  # recorded per row; the caller's loop goes on
        row["error"] = f"{type(e).__name__}: {e}"
    return row


def _empty_row(strategy: str, mean_prompt: str | None, reuse_prefix: bool = False) -> dict:
    return {"strategy": strategy, "template_hash": template_hash(strategy, mean_prompt),
            "prediction": "", "raw_output": "", "model_calls": 0, "output_tokens": 0,
            "input_tokens": 0, "reused_tokens": 0, "seconds": 0.0, "truncated": False,
            "error": None, "step_outputs": [], "step_max_new_tokens": [],
            "reuse_prefix": reuse_prefix}


def join_predictions(predictions: list[str]) -> str:
    """Several predictions as one text, each ended with a full stop, blanks left out (the seed's
    and the winners' concatenation of several models' answers)."""
    out = []
    for p in (p.strip() for p in predictions):
        if p:
            out.append(p if p[-1] in ".!?" else p + ".")
    return " ".join(out)


def combine(strategy: str, part_rows: list[dict], mean_prompt: str | None = None) -> dict:
    """An ensemble's row from its parts' rows (in the order of its `concat`): the predictions
    joined (join_predictions), the mean prompt appended when the template says so; seconds,
    model calls and tokens are the sums of the parts'; `error` names the parts that failed
    (their blank predictions are left out). Used live by recover and on recorded rows by
    prompt_engineering.ipynb, so a scored ensemble costs no second run of its parts."""
    entry = _template(strategy)
    names_ = entry["concat"]
    if [r["strategy"] for r in part_rows] != names_:
        raise LabError(f"ensemble {strategy} needs rows of {names_} in that order, got "
                       f"{[r['strategy'] for r in part_rows]}")
    row = _empty_row(strategy, mean_prompt, any(bool(r.get("reuse_prefix")) for r in part_rows))
    for key in ("model_calls", "output_tokens", "input_tokens", "reused_tokens", "seconds"):
        row[key] = sum(r.get(key) or 0 for r in part_rows)
    row["truncated"] = any(bool(r.get("truncated")) for r in part_rows)
    row["step_outputs"] = [o for r in part_rows for o in (r.get("step_outputs") or [])]
    row["step_max_new_tokens"] = [b for r in part_rows for b in (r.get("step_max_new_tokens") or [])]
    errors = [f"{r['strategy']}: {r['error']}" for r in part_rows if isinstance(r.get("error"), str)]
    row["error"] = "; ".join(errors) or None
    row["parts"] = {r["strategy"]: r["prediction"] for r in part_rows}
    row["raw_output"] = join_predictions([r["prediction"] for r in part_rows])
    row["prediction"] = row["raw_output"]
    if entry.get("append_mean_prompt"):
        row["prediction"] = append_mean(row["prediction"],
                                        default_mean_prompt() if mean_prompt is None else mean_prompt)
    return row


def recover_batch(lm, strategy: str, pairs, max_new_tokens: int = 48, max_text_tokens: int = 384,
                  mean_prompt: str | None = None) -> list[dict]:
    """recover() for several (original, rewritten) pairs at once, one row each in input order.

    Each step of the chain is one lm.generate_batch call over the pairs still running (a
    pair whose texts cannot be encoded drops out with its error); when that call fails, the
    step runs one pair at a time, so one bad pair costs only its own row. A row's `seconds`
    is its share of the batched calls (call time / pairs in the call) plus its own
    tokenization; `batch_size` is the number of pairs in its calls. Ensembles run each part
    batched. Raises LabError before any call for a chat strategy on a model without a chat
    template (check_chat).
    """
    import time

    pairs = [tuple(p) for p in pairs]
    entry = _template(strategy)
    if lm is not None:
        check_chat(strategy, lm.has_chat_template, lm.name)
    if "concat" in entry:
        runs = [recover_batch(lm, p, pairs, max_new_tokens, max_text_tokens, mean_prompt)
                for p in entry["concat"]]
        return [combine(strategy, list(rows), mean_prompt) for rows in zip(*runs)]
    if "prediction" in entry or not pairs:
        return [{**recover(lm, strategy, o, r, max_new_tokens, max_text_tokens, mean_prompt),
                 "batch_size": len(pairs)} for o, r in pairs]
    rows, fields = [], []
    for original, rewritten in pairs:
        row = {**_empty_row(strategy, mean_prompt), "batch_size": len(pairs)}
        t0 = time.perf_counter()
        try:
            original, cut_a = truncate(lm, original, max_text_tokens)
            rewritten, cut_b = truncate(lm, rewritten, max_text_tokens)
            row["truncated"] = cut_a or cut_b
            fields.append({"original": original, "rewritten": rewritten, "differences": ""})
        except Exception as e:
            row["error"] = f"{type(e).__name__}: {e}"
            fields.append(None)
        row["seconds"] += time.perf_counter() - t0
        rows.append(row)
    for step, budget in _steps(entry):
        budget = budget or max_new_tokens
        live, ids = [], []
        for i, f in enumerate(fields):
            if f is None:
                continue
            t0 = time.perf_counter()
            try:
                messages = [{"role": m["role"], "content": m["content"].format_map(f)} for m in step]
                prompt = lm.encode(messages=messages)
                lm.check_context(len(prompt), budget, advice="lower max_text_tokens")
                live.append(i)
                ids.append(prompt)
            except Exception as e:
                rows[i]["error"] = f"{type(e).__name__}: {e}"
                fields[i] = None
            rows[i]["seconds"] += time.perf_counter() - t0
        if not live:
            break
        t0 = time.perf_counter()
        try:
            answers = lm.generate_batch(ids, budget)
            shares = [(time.perf_counter() - t0) / len(live)] * len(live)
        except Exception:  # the batch failed: each pair alone, so only a bad one is lost
            answers, shares = [], []
            for prompt in ids:
                t1 = time.perf_counter()
                try:
                    answers.append(lm.generate_batch([prompt], budget)[0])
                except Exception as e:
                    answers.append(e)
                shares.append(time.perf_counter() - t1)
        for i, prompt, answer, share in zip(live, ids, answers, shares):
            row = rows[i]
            row["seconds"] += share
            if isinstance(answer, Exception):
                row["error"] = f"{type(answer).__name__}: {answer}"
                fields[i] = None
                continue
            new, _ = answer
            text = lm.decode(new)
            row["model_calls"] += 1
            row["output_tokens"] += len(new)
            row["input_tokens"] += len(prompt)
            row["step_max_new_tokens"].append(budget)
            row["step_outputs"].append(text)
            fields[i]["differences"] = text.strip()
    for row, f in zip(rows, fields):
        if f is None:
            continue
        row["raw_output"] = f["differences"]
        row["prediction"] = clean_instruction(row["raw_output"])
        if entry.get("append_mean_prompt"):
            row["prediction"] = append_mean(row["prediction"],
                                            default_mean_prompt() if mean_prompt is None else mean_prompt)
    return rows
