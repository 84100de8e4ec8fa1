"""Which catalogue keys the code uses: every string literal passed to a :class:`Texts`
(``t("…")``, ``texts("…")``, ``ctx.texts(turn)("…")``, ``t.plural("…", "…", n)``) or marked
with ``N_("…")``, found by reading the source (used by the catalogue tests)."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

TEXTS_NAMES = frozenset({"t", "texts", "N_"})


def _is_texts_call(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id in TEXTS_NAMES
    if isinstance(func, ast.Call):  # ctx.texts(turn)("…")
        inner = func.func
        return isinstance(inner, ast.Attribute) and inner.attr == "texts"
    return False


def _literals(call: ast.Call, count: int) -> Iterator[str]:
    for arg in call.args[:count]:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            yield arg.value


def keys_in_source(source: str) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        if _is_texts_call(node.func):
            out.update(_literals(node, 1))
        elif isinstance(node.func, ast.Attribute) and node.func.attr == "plural":
            out.update(_literals(node, 2))
    return out


def keys_in(paths: Iterable[Path]) -> set[str]:
    """Every catalogue key used in the Python files under ``paths``."""
    out: set[str] = set()
    for root in paths:
        files = [root] if root.is_file() else sorted(root.rglob("*.py"))
        for f in files:
            out |= keys_in_source(f.read_text(encoding="utf-8"))
    return out
