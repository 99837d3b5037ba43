"""Prompt-recovery strategies: templates as data (prompt_templates.yaml), run on any LoadedModel.

    row = recover(lm, "two_step", original, rewritten)
    row["prediction"], row["template_hash"]

A strategy is a fixed prediction or a chain of chat calls; each template has a short hash that
goes with every result, so a score can always be traced to the exact wording that produced it.
Only the LoadedModel interface (encode, decode, timing.generate) is used, so every backend works.
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
STRATEGIES = ("mean_prompt", "direct", "two_step", "few_shot")

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


def _template(strategy: str) -> dict:
    if strategy not in STRATEGIES:
        raise LabError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)} "
                       f"(templates in {TEMPLATES_FILE})")
    return templates()[strategy]


def template_hash(strategy: str) -> str:
    """8 hex characters of sha1 over the strategy's prediction or messages (not its description)."""
    entry = _template(strategy)
    body = {k: entry[k] for k in ("prediction", "steps") if k in entry}
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


def truncate(lm, text: str, max_tokens: int) -> tuple[str, bool]:
    """`text` cut to `max_tokens` of the model's tokens, and whether it was cut."""
    ids = lm.encode(prompt=text)
    if len(ids) <= max_tokens:
        return text, False
    return lm.decode(ids[:max_tokens]), True


def recover(lm, strategy: str, original: str, rewritten: str, max_new_tokens: int = 48,
            max_text_tokens: int = 384) -> dict:
    """Guess the prompt that turned `original` into `rewritten` with `strategy`.

    Returns one result row (step_outputs keeps each call's raw text). A failure inside a model
    call is recorded in `error` with an empty prediction (metrics.clean_predictions fills
    blanks), so a long run is never stopped by one pair.
    """
    entry = _template(strategy)
    row = {"strategy": strategy, "template_hash": template_hash(strategy), "prediction": "",
           "raw_output": "", "model_calls": 0, "output_tokens": 0, "seconds": 0.0,
           "truncated": False, "error": None, "step_outputs": []}
    if "prediction" in entry:
        return {**row, "prediction": entry["prediction"], "raw_output": entry["prediction"]}
    try:
        original, cut_a = truncate(lm, original, max_text_tokens)
        rewritten, cut_b = truncate(lm, rewritten, max_text_tokens)
        row["truncated"] = cut_a or cut_b
        fields = {"original": original, "rewritten": rewritten, "differences": ""}
        for step in entry["steps"]:
            messages = [{"role": m["role"], "content": m["content"].format_map(fields)} for m in step]
            rec = timing.generate(lm, messages=messages, max_new_tokens=max_new_tokens)
            row["model_calls"] += 1
            row["output_tokens"] += rec.output_tokens
            row["seconds"] += rec.total_s
            fields["differences"] = rec.text.strip()
            row["step_outputs"].append(rec.text)
        row["raw_output"] = fields["differences"]
        row["prediction"] = clean_instruction(row["raw_output"])
    except Exception as e:  # recorded per row; the caller's loop goes on
        row["error"] = f"{type(e).__name__}: {e}"
    return row
