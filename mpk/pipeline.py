"""Textual pass pipelines that mix mpk's Python passes with upstream MLIR passes.

`builtin.module(mpk-partition{num-sms=66},canonicalize,gpu.module(cse))`:
top-level elements naming a registered mpk pass become that pass with its
options; every other element goes to upstream MLIR's own pipeline parser
(`PassManager.add`), nested pipelines included.
"""

from __future__ import annotations

import dataclasses

from mlir import ir
from mlir.passmanager import PassManager

from mpk import lowering
from mpk.lowering import analyses


class PipelineError(ValueError):
    pass


def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split at `sep` outside (), {}, [] and quotes."""
    parts, depth, quote, start = [], 0, None, 0
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "({[":
            depth += 1
        elif ch in ")}]":
            depth -= 1
            if depth < 0:
                raise PipelineError(f"unbalanced '{ch}' in pipeline '{text}'")
        elif ch == sep and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    if depth or quote:
        raise PipelineError(f"unbalanced brackets or quotes in pipeline '{text}'")
    tail = text[start:].strip()
    if tail or parts:
        parts.append(tail)
    return [p for p in parts if p]


def parse_elements(pipeline: str) -> list[str]:
    """The top-level elements of `builtin.module(...)` (or of a bare list)."""
    text = pipeline.strip()
    if text.startswith("builtin.module(") and text.endswith(")"):
        text = text[len("builtin.module("):-1]
    return split_top_level(text)


def _option_value(field: dataclasses.Field, raw: str, pass_name: str):
    kind = field.type
    if isinstance(kind, str):        # under `from __future__ import annotations`
        kind = {"int": int, "float": float, "bool": bool, "str": str}[kind]
    raw = raw.strip().strip("'\"")
    try:
        if kind is bool:
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return raw.lower() in ("true", "1")
        return kind(raw)
    except ValueError:
        raise PipelineError(f"option '{field.name.replace('_', '-')}' of '{pass_name}' expects "
                            f"{getattr(kind, '__name__', kind)}, got '{raw}'") from None


def instantiate(element: str) -> lowering.ModulePass | None:
    """An mpk pass for `name{opt=v ...}`, or None if `name` is not an mpk pass."""
    name, _, rest = element.partition("{")
    name = name.strip()
    cls = lowering.lookup(name)
    if cls is None:
        return None
    if rest and not rest.rstrip().endswith("}"):
        raise PipelineError(f"malformed options in '{element}'")
    fields = {cls.option_name(f): f for f in cls.options()}
    values = {}
    for item in split_top_level(rest.rstrip()[:-1], sep=" ") if rest else []:
        key, eq, raw = item.partition("=")
        if key not in fields:
            known = ", ".join(fields) or "none"
            raise PipelineError(f"'{name}' has no option '{key}' (options: {known})")
        if not eq:
            raise PipelineError(f"option '{key}' of '{name}' needs a value ('{key}=...')")
        values[fields[key].name] = _option_value(fields[key], raw, name)
    return cls(**values)


def build(pipeline: str, context: ir.Context | None = None) -> tuple[PassManager, list[str]]:
    """A PassManager for `pipeline`, and its top-level element names."""
    pm = PassManager("builtin.module", context=context)
    names = []
    for element in parse_elements(pipeline):
        p = instantiate(element)
        if p is not None:
            pm.add(p, name=p.name)
            names.append(p.name)
        else:
            try:
                pm.add(element)
            except Exception as e:  # upstream's parser reports through MLIRError/ValueError
                raise PipelineError(f"in pipeline element '{element}': {_message(e)}") from None
            names.append(element.split("{")[0].split("(")[0].strip())
    return pm, names


def _message(e: Exception) -> str:
    """The useful line of upstream's parser error (it adds a source echo and caret)."""
    lines = [l.strip() for l in str(e).splitlines() if l.strip() and l.strip() != "^"]
    for line in lines:
        if "error: " in line:
            return line.split("error: ", 1)[1]
    return "; ".join(lines) or type(e).__name__


def run(module: ir.Module, pipeline: str) -> None:
    """Run `pipeline` on `module`; raises MLIRError with diagnostics on failure."""
    pm, _ = build(pipeline, module.context)
    with analyses.session():
        pm.run(module.operation)
