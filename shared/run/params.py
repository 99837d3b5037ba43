"""Notebook parameters as papermill passes them: a one-item list given on the command line.

`papermill speed.ipynb out.ipynb -p models smollm2-135m-instruct` injects the string
"smollm2-135m-instruct" where the notebook expects a list, and a loop over it runs over its
letters ("unknown model 's'"). The cell after each notebook's parameters cell calls

    params.as_lists(globals(), "models", "backends", "quantizations", mappings=["quantizations_by_model"])

which turns a single value into a one-item list (also as the values of a dict parameter) and
refuses what cannot be read as one. A yes/no parameter comes the same way: `-p redo false`
arrives as the text "false" (papermill reads only True and False as booleans), which Python
counts as true; `params.as_bools(globals(), "redo")` reads true/false, yes/no, 1/0 in any letter
case (and on/off) and stops, naming the parameter, at anything else.
"""
from __future__ import annotations

from typing import Mapping, MutableMapping, Sequence

from shared.errors import LabError


def as_list(name: str, value) -> list:
    """`value` as a list: a list stays, a tuple becomes one, a single string or number becomes a
    one-item list. LabError for anything else (None, a bool, a dict), an empty string, and a
    string written like a list ("[a, b]"), which papermill's -p passes as text; the message shows
    the -y form that passes a real list."""
    example = f"-y '{name}: [...]'"
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise LabError(f"parameter {name!r} is an empty string; give one value (-p {name} VALUE) "
                           f"or a list ({example})")
        if text.startswith("[") or text.endswith("]"):
            raise LabError(f"parameter {name!r} is the text {value!r}, which looks like a list: "
                           f"-p passes text; pass a list with papermill's {example}, e.g. "
                           f"-y '{name}: [{text.strip('[]')}]'")
        return [value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [value]
    raise LabError(f"parameter {name!r} must be a list (papermill {example}) or a single value "
                   f"(-p {name} VALUE), got {type(value).__name__} {value!r}")


def as_lists(namespace: MutableMapping, *names: str, mappings: Sequence[str] = ()) -> None:
    """Replace each named parameter in `namespace` (a notebook's globals()) by as_list of it, and
    each value of the dict parameters named in `mappings` (e.g. {model: [quantizations]}) too."""
    for name in [*names, *mappings]:
        if name not in namespace:
            raise LabError(f"no parameter named {name!r} to read as a list")
    for name in names:
        namespace[name] = as_list(name, namespace[name])
    for name in mappings:
        value = namespace[name]
        if not isinstance(value, Mapping):
            raise LabError(f"parameter {name!r} must be a mapping (papermill -y '{name}: {{key: [...]}}'), "
                           f"got {type(value).__name__} {value!r}")
        namespace[name] = {k: as_list(f"{name}[{k!r}]", v) for k, v in value.items()}


TRUE = ("true", "yes", "on", "1")
FALSE = ("false", "no", "off", "0")


def as_bool(name: str, value) -> bool:
    """`value` as a bool: a bool stays; the numbers 1 and 0; the texts of TRUE and FALSE in any
    letter case, spaces around them ignored. LabError naming the parameter for anything else
    (None, 2, "maybe", an empty text)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in TRUE + FALSE:
        return value.strip().lower() in TRUE
    raise LabError(f"parameter {name!r} is yes or no: give True or False (papermill -p {name} True), "
                   f"or true/false, yes/no, 1/0; got {type(value).__name__} {value!r}")


def as_bools(namespace: MutableMapping, *names: str) -> None:
    """Replace each named parameter in `namespace` (a notebook's globals()) by as_bool of it."""
    for name in names:
        if name not in namespace:
            raise LabError(f"no parameter named {name!r} to read as yes or no")
    for name in names:
        namespace[name] = as_bool(name, namespace[name])
