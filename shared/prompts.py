"""Prompt-recovery strategies: templates as data (prompt_templates.yaml), run on any LoadedModel.

    row = recover(lm, "two_step", original, rewritten)
    row["prediction"], row["template_hash"]

A strategy is a fixed prediction or a chain of chat calls, each call with its own token budget
when the template gives one; `append_mean_prompt` strategies add the mean prompt to the model's
answer. Each template has a short hash that goes with every result, so a score can always be
traced to the exact wording that produced it. Only the LoadedModel interface (encode, decode,
timing.generate) is used, so every backend works; `reuse_prefix` (llama.cpp only) keeps the KV
state of a prompt prefix shared with the call before, as a real submission would for few-shot.
"""
from __future__ import annotations

import functools
import hashlib
import json
import re
from pathlib import Path

import yaml

from . import timing
from .catalog import LabError

TEMPLATES_FILE = Path(__file__).with_name("data") / "prompt_templates.yaml"
STRATEGIES = ("fixed_prompt", "mean_prompt", "direct", "direct_mean", "two_step", "few_shot")

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
    return entries


def check_strategy(strategy: str) -> None:
    """LabError naming the known strategies when `strategy` is not one of them."""
    if strategy not in STRATEGIES:
        raise LabError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)} "
                       f"(templates in {TEMPLATES_FILE})")


def _template(strategy: str) -> dict:
    check_strategy(strategy)
    return templates()[strategy]


def needs_model(strategy: str) -> bool:
    """Whether the strategy calls a model (False for constant predictions)."""
    return "steps" in _template(strategy)


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
    mean = default_mean_prompt() if mean_prompt is None else mean_prompt
    row = {"strategy": strategy, "template_hash": template_hash(strategy, mean_prompt),
           "prediction": "", "raw_output": "", "model_calls": 0, "output_tokens": 0,
           "input_tokens": 0, "reused_tokens": 0, "seconds": 0.0, "truncated": False,
           "error": None, "step_outputs": [], "step_max_new_tokens": [],
           "reuse_prefix": reuse_prefix}
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
