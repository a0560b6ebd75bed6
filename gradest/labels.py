"""Labels: an estimator or task variant as text, and back — the one place with these rules.

A *label* names a variant as `GradientEstimator.label` writes it: ``name`` or
``name[key=value,...]`` with the keys sorted, e.g. ``reinforce[baseline=loo]``. It is what
result rows, asv parameters and report legends show. A *spec* is what a user types on the
command line: ``name`` (every declared variant) or ``name:key=value,key=value`` (one variant).

Values, both ways, follow one rule (`parse_value`): JSON where the text parses as JSON
(numbers, ``true``/``false``, ``null``, lists such as ``[200,200]``), Python's ``True`` /
``False`` / ``None`` as `str` writes them, anything else the string itself. `format_value`
writes what `parse_value` reads back, so ``parse_label(make_label(n, o)) == (n, o)`` for
options of numbers, booleans, strings without ``,=[]`` and lists of numbers.
"""
from __future__ import annotations

import json
from typing import Any

__all__ = ["make_label", "parse_label", "parse_spec", "parse_value", "format_value", "split_items"]


def format_value(value: Any) -> str:
    """``value`` as label text: ``str`` for scalars (``True``, ``0.5``), compact JSON for lists."""
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value), separators=(",", ":"))
    return str(value)


def make_label(name: str, options: dict | None = None) -> str:
    """``name`` or ``name[key=value,...]`` with the options sorted by key."""
    if not options:
        return name
    return f"{name}[{','.join(f'{k}={format_value(v)}' for k, v in sorted(options.items()))}]"


def parse_value(text: str):
    """An option value typed as text (see the module docstring for the rule)."""
    if text in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[text]
    try:
        return json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return text


def split_items(text: str) -> list[str]:
    """``a=1,b=[2,3]`` -> ``["a=1", "b=[2,3]"]``: commas inside brackets do not split."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return [item for item in (s.strip() for s in items) if item]


def _options(inner: str, where: str, example: str) -> dict:
    options = {}
    for item in split_items(inner):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"option {item!r} in {where} is not of the form key=value (e.g. {example})")
        if key.strip() in options:  # the last would win silently: the user meant one of them
            raise ValueError(f"option {key.strip()!r} given twice in {where}: keep one value (one variant per "
                             f"spec; name the variant twice to run both)")
        options[key.strip()] = parse_value(value.strip())
    return options


def parse_label(label: str) -> tuple[str, dict]:
    """The inverse of `make_label`: ``(name, options)``."""
    if not isinstance(label, str) or not label:
        raise ValueError(f"a label is a non-empty string such as 'reinforce[baseline=loo]', got {label!r}")
    if "[" not in label:
        return label, {}
    if not label.endswith("]"):
        raise ValueError(f"malformed label {label!r}: options go in brackets, e.g. 'reinforce[baseline=loo]'")
    name, _, inner = label[:-1].partition("[")
    return name, _options(inner, f"label {label!r}", "reinforce[baseline=loo]")


def parse_spec(text: str) -> tuple[str, dict | None]:
    """A command-line spec: ``"name"`` -> (name, None: every declared variant);
    ``"name:k=v,k=v"`` -> (name, options) for one variant. A label (``name[k=v]``) is
    accepted too."""
    text = text.strip()
    if "[" in text and text.endswith("]") and ":" not in text:
        return parse_label(text)
    name, _, rest = text.partition(":")
    name = name.strip()
    if not rest:
        return name, None
    return name, _options(rest, f"{text!r}", "reinforce:baseline=loo")
