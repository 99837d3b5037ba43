"""Token rules both backends share, so one model behaves the same under transformers and llama.cpp.

    lm.eos_ids == end_of_generation(gguf_end_of_generation(path), template_end_of_turn(...))
    ids = encode_chat(chat_pieces(render, messages), control, literal)
    text = whole_characters(decoded)
    check_input(prompt, messages, input_ids); ids = check_ids(ids, n_vocab)

The rules:

- End of generation. A model's stop set is the ids llama.cpp marks as end-of-generation in the
  model's GGUF vocabulary (`llama_vocab_is_eog`: the GGUF's eos, eot and eom ids, and tokens
  llama.cpp recognises by text, such as `<|endoftext|>` or `<end_of_turn>`), plus the token the
  chat template writes right after an assistant's answer (`<|im_end|>`, `<end_of_turn>`, `</s>`).
  Generation stops on any of them, and a forced length bans all of them. A model without a GGUF
  file gets the same rule from its tokenizer: its eos ids and the vocabulary tokens whose text is
  in EOG_TEXTS (llama.cpp's lists). SmolLM2-135M-Instruct: {0, 2, 4} (`<|endoftext|>`,
  `<|im_end|>`, and `<reponame>`, its fill-in-the-middle repository token); Gemma 3 270M:
  {1, 106, 212} (`<eos>`, `<end_of_turn>`, `</s>`); the same on both backends.
- Literal text. Text passed as `prompt=` or as a message's content is tokenized as text: a string
  such as "<|im_end|>" inside it becomes the tokens of those characters, never the control token.
  Only the chat template's own text yields control tokens. Input token counts and outputs then
  agree across runtimes. The control tokens are llama.cpp's (its CONTROL tokens, which include
  every end-of-generation token), and transformers' special tokens, with every end-of-generation
  token made special too: the same set on both backends. A chat is rendered with placeholders for the contents, and each run of
  text between two of the template's control tokens is tokenized in one call, as llama.cpp and
  transformers split a whole text; without control-token text in the contents the ids equal
  both libraries' own tokenization of the rendered chat (tests/test_tokens_and_text.py).
- Whole characters. Decoded text never ends in a character cut in half: when the ids end inside
  a multi-byte character (an answer cut at max_new_tokens in the middle of an emoji, a prompt
  truncated to n tokens), the incomplete character is left out. A tokenizer shows it as U+FFFD,
  so a trailing U+FFFD is dropped; a U+FFFD inside the text stays. Characters are code points:
  a cut may fall between the code points of one emoji sequence (a flag, a ZWJ family).
- Empty input. An empty or whitespace-only prompt, an empty chat or one whose contents are all
  blank, and an empty id list are refused with a LabError before any compute, on both backends,
  even where the tokenizer would add a BOS token: generating from BOS alone is asked for
  explicitly with input_ids=[bos_id], which works on both backends alike.
"""
from __future__ import annotations

import operator
import re
from typing import Callable, Mapping, Sequence

from shared.errors import LabError, ModelFileError

# the texts llama.cpp (src/llama-vocab.cpp of llama-cpp-python 0.3.36) marks as end-of-generation:
# end-of-turn texts, then its fill-in-the-middle pad / repository / file-separator tokens
EOG_TEXTS = ("<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
             "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
             "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
             "<｜end▁of▁sentence｜>", "[e~[",
             "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]",
             "<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", "<|file_sep|>")

# private-use characters that stand for message i while a chat template is rendered
_MARK = "\ue000{}\ue001"
_MARK_RE = re.compile("\ue000(\\d+)\ue001")

Render = Callable[[list, bool], str]  # (messages, add_generation_prompt) -> the template's text


# ---- end of generation ---------------------------------------------------------------------

def llama_eog_ids(vocab) -> set[int]:
    """The ids llama.cpp marks as end-of-generation in a loaded vocabulary (a llama_vocab_p)."""
    import llama_cpp
    n = llama_cpp.llama_vocab_n_tokens(vocab)
    return {t for t in range(n) if llama_cpp.llama_vocab_is_eog(vocab, t)}


def gguf_end_of_generation(path) -> set[int]:
    """llama.cpp's end-of-generation ids of a GGUF file, reading its vocabulary only (no weights).

    Raises ModelFileError when llama.cpp cannot read the file."""
    import llama_cpp
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    with _quiet_llama():
        model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
    if not model:
        raise ModelFileError(f"llama.cpp cannot read the vocabulary of {path}")
    try:
        return llama_eog_ids(llama_cpp.llama_model_get_vocab(model))
    finally:
        llama_cpp.llama_model_free(model)


def tokenizer_end_of_generation(tokenizer, generation_config=None) -> set[int]:
    """The same rule for a transformers tokenizer without a GGUF file: its eos ids and the
    vocabulary tokens whose text llama.cpp treats as end-of-generation (EOG_TEXTS)."""
    eos = getattr(generation_config, "eos_token_id", None)
    ids = set(eos if isinstance(eos, (list, tuple)) else [] if eos is None else [eos])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    vocab = tokenizer.get_vocab()
    return ids | {vocab[t] for t in EOG_TEXTS if t in vocab}


def template_end_of_turn(render: Render, control: "ControlTokens") -> int | None:
    """The control token a chat template writes right after an assistant's answer, or None
    (no such token, or the template cannot render a user-assistant exchange)."""
    mark = _MARK.format(0)
    try:
        text = render([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": mark}], False)
    except Exception:  # a template that refuses this exchange simply adds nothing
        return None
    if mark not in text:
        return None
    after = control.split(text.split(mark, 1)[1].lstrip())
    return after[0] if after and isinstance(after[0], int) else None


def end_of_generation(eog_ids: set[int], end_of_turn: int | None) -> set[int]:
    """The stop set: the vocabulary's end-of-generation ids plus the template's end of turn."""
    return set(eog_ids) | ({end_of_turn} if end_of_turn is not None else set())


# ---- literal text in chats -----------------------------------------------------------------

class ControlTokens:
    """The texts a tokenizer matches as whole tokens before tokenizing the rest (control and
    user-defined tokens), by text, and a splitter that finds them (longest text first)."""

    def __init__(self, ids_by_text: Mapping[str, int]):
        self.ids = {t: i for t, i in ids_by_text.items() if t}
        texts = sorted(self.ids, key=len, reverse=True)
        self.pattern = re.compile("|".join(map(re.escape, texts))) if texts else None

    def split(self, text: str) -> list[str | int]:
        """`text` as a list of plain strings and control-token ids, in order."""
        if self.pattern is None:
            return [text] if text else []
        out, pos = [], 0
        for m in self.pattern.finditer(text):
            if m.start() > pos:
                out.append(text[pos:m.start()])
            out.append(self.ids[m.group()])
            pos = m.end()
        if pos < len(text):
            out.append(text[pos:])
        return out


def chat_pieces(render: Render, messages: Sequence[dict]) -> list[tuple[str, bool]]:
    """The chat as its template renders it (with the generation prompt), in (text, is_content)
    pieces: the template's own text, and each message's content verbatim.

    The template is rendered once with each content replaced by a placeholder, which shows
    where the contents go, and once with the real contents, which the pieces must join back
    to (a template that trims contents is followed). Raises LabError for an empty chat or one
    whose contents are all blank, and for a template that changes contents otherwise."""
    messages = check_messages(messages)
    real = render(messages, True)
    marked = render([{**m, "content": _MARK.format(i)} for i, m in enumerate(messages)], True)
    for clean in (lambda s: s, str.strip):
        parts = _MARK_RE.split(marked)  # text, index, text, index, ..., text
        pieces = [(p, i % 2 == 1) for i, p in enumerate(parts)]
        pieces = [(clean(messages[int(p)]["content"]), True) if is_content else (p, False)
                  for p, is_content in pieces]
        pieces = [(p, c) for p, c in pieces if p]
        if "".join(p for p, _ in pieces) == real:
            return pieces
    raise LabError("the chat template changes message contents beyond trimming them, so they "
                   "cannot be kept as literal text; pass prompt= with the chat rendered as text")


def encode_chat(pieces: list[tuple[str, bool]], control: ControlTokens,
                literal: Callable[[str], list[int]]) -> list[int]:
    """Token ids of a rendered chat. Control-token texts in the template's own pieces become
    their ids; everything else, message contents included, is tokenized by `literal` (text only,
    no BOS), one call per run of text between two control tokens, as a tokenizer does with a
    whole text."""
    ids, run = [], []
    for text, is_content in pieces:
        for part in [text] if is_content else control.split(text):
            if isinstance(part, int):
                if run:
                    ids += literal("".join(run))
                    run = []
                ids.append(part)
            else:
                run.append(part)
    if run:
        ids += literal("".join(run))
    return ids


# ---- whole characters ----------------------------------------------------------------------

def whole_characters(text: str) -> str:
    """Decoded text without a character cut in half at its end (shown as U+FFFD)."""
    return text.rstrip("\ufffd")


# ---- input checks --------------------------------------------------------------------------

_ASK = ("pass prompt= some text, messages= a chat with some content, or input_ids= token ids "
        "(input_ids=[bos_id] starts from the BOS token alone)")


def check_input(prompt=None, messages=None, input_ids=None) -> None:
    """Refuse an input that cannot be generated from, before any compute: not exactly one of
    prompt/messages/input_ids, a prompt that is not text or only whitespace, an empty chat or
    one with only blank contents, an empty or malformed id list (LabError, saying what to pass)."""
    if sum(x is not None for x in (prompt, messages, input_ids)) != 1:
        raise LabError("give exactly one of prompt= (raw text), messages= (chat) or input_ids=")
    if prompt is not None:
        check_prompt(prompt)
    if messages is not None:
        check_messages(messages)
    if input_ids is not None:
        check_ids(input_ids)


def check_prompt(prompt) -> str:
    if not isinstance(prompt, str):
        raise LabError(f"prompt= must be text (str), got {type(prompt).__name__}; {_ASK}")
    if not prompt.strip():
        what = "empty" if not prompt else f"only whitespace ({prompt!r})"
        raise LabError(f"prompt= is {what}; {_ASK}")
    return prompt


def check_messages(messages) -> list[dict]:
    """The chat as a list of {"role": str, "content": str} dicts, with some non-blank content."""
    if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Sequence):
        raise LabError(f"messages= must be a list of {{'role': ..., 'content': ...}} dicts, got "
                       f"{type(messages).__name__}; for raw text pass prompt=")
    messages = list(messages)
    for m in messages:
        if not (isinstance(m, Mapping) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)):
            raise LabError(f"each message must be a dict with a 'role' and a text 'content', got {m!r}")
    if not any(m["content"].strip() for m in messages):
        what = "empty" if not messages else "without content (every content is blank)"
        raise LabError(f"messages= is {what}; {_ASK}")
    return messages


def check_ids(input_ids, n_vocab: int | None = None) -> list[int]:
    """`input_ids` as a list of ints in [0, n_vocab); LabError when empty or malformed."""
    if isinstance(input_ids, (str, bytes)):
        raise LabError(f"input_ids= must be a list of token ids, got text {input_ids!r}; pass it as prompt=")
    try:
        ids = [operator.index(t) for t in input_ids]
    except TypeError:
        raise LabError(f"input_ids= must be a list of integer token ids, got {input_ids!r:.80}") from None
    if not ids:
        raise LabError(f"input_ids= is empty; {_ASK}")
    bad = [t for t in ids if t < 0 or (n_vocab is not None and t >= n_vocab)]
    if bad:
        raise LabError(f"input_ids= holds ids outside the vocabulary [0, {n_vocab}): {bad[:5]}")
    return ids


class _quiet_llama:
    """Silence llama.cpp's log lines while a vocabulary is read (as Llama(verbose=False) does)."""

    def __enter__(self):
        from llama_cpp._utils import suppress_stdout_stderr
        self._s = suppress_stdout_stderr(disable=False)
        return self._s.__enter__()

    def __exit__(self, *exc):
        return self._s.__exit__(*exc)
