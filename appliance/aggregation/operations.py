"""Gnocchi's ``/v1/aggregates`` operation language: parse and validate it into a tree.

An operation is an S-expression string ``(aggregate mean (metric ID mean))`` or the same as
nested JSON lists. The tree is checked once here, so evaluation never meets a malformed node.
"""

from __future__ import annotations

import math
import re
from typing import Any

from appliance.aggregation.reducers import REDUCERS

BINARY = ("+", "-", "*", "/", "**", "add", "sub", "mul", "div", "truediv", "pow")
UNARY = ("abs", "neg", "absolute", "negative")
MAX_DEPTH = 32
MAX_NODES = 10_000


class OperationError(ValueError):
    """The operations are not valid; the message says what is wrong."""


_TOKEN = re.compile(r"\s*(\(|\)|\"[^\"]*\"|'[^']*'|[^\s()]+)")


def _parse_sexpr(text: str) -> list:
    pos, stack, out = 0, [], None
    text = text.strip()
    if not text:
        raise OperationError("operations are empty")
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            break
        token = match.group(1)
        pos = match.end()
        if token == "(":
            stack.append([])
        elif token == ")":
            if not stack:
                raise OperationError("unbalanced ')' in operations")
            node = stack.pop()
            if stack:
                stack[-1].append(node)
            elif out is None:
                out = node
            else:
                raise OperationError("operations must be one expression")
        else:
            if not stack:
                raise OperationError(f"unexpected {token!r} outside parentheses")
            stack[-1].append(token.strip("\"'"))
    if stack or out is None or text[pos:].strip():
        raise OperationError("unbalanced '(' in operations")
    return out


def parse(operations: Any) -> list:
    """Validate ``operations`` (string or lists); return the normalised tree."""
    tree = _parse_sexpr(operations) if isinstance(operations, str) else operations
    count = [0]
    node = _node(tree, 0, count)
    if not isinstance(node, list):
        raise OperationError("operations must be an operation, not a number")
    if not references(node):
        raise OperationError("at least one 'metric' is required")
    return node


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    if not math.isfinite(number):
        raise OperationError(f"{value!r} is not a finite number")
    return number


def _reducer(name: Any) -> str:
    if name not in REDUCERS:
        raise OperationError(
            f"unknown aggregation method {name!r} (one of {', '.join(sorted(REDUCERS))})"
        )
    return name


def _node(node: Any, depth: int, count: list[int]) -> Any:
    count[0] += 1
    if depth > MAX_DEPTH or count[0] > MAX_NODES:
        raise OperationError("operations are too large or nested too deeply")
    number = _number(node)
    if number is not None:
        return number
    if not isinstance(node, list) or not node or not isinstance(node[0], str):
        raise OperationError(f"invalid operation {node!r}")
    op, args = node[0], node[1:]
    if op == "metric":
        return ["metric", *_metric_refs(args)]
    if op == "aggregate":
        if len(args) != 2:
            raise OperationError("'aggregate' takes a method and one operation")
        return ["aggregate", _reducer(args[0]), _node(args[1], depth + 1, count)]
    if op == "resample":
        if len(args) != 3:
            raise OperationError("'resample' takes a method, a granularity and one operation")
        granularity = _number(args[1])
        if granularity is None or granularity <= 0:
            raise OperationError(f"resample granularity {args[1]!r} must be positive seconds")
        return ["resample", _reducer(args[0]), granularity, _node(args[2], depth + 1, count)]
    if op == "rolling":
        if len(args) != 3:
            raise OperationError("'rolling' takes a method, a window size and one operation")
        window = _number(args[1])
        if window is None or window < 1 or window != int(window):
            raise OperationError(f"rolling window {args[1]!r} must be a positive integer")
        return ["rolling", _reducer(args[0]), int(window), _node(args[2], depth + 1, count)]
    if op in BINARY:
        if len(args) != 2:
            raise OperationError(f"{op!r} takes two operands")
        return [op, _node(args[0], depth + 1, count), _node(args[1], depth + 1, count)]
    if op in UNARY:
        if len(args) != 1:
            raise OperationError(f"{op!r} takes one operand")
        return [op, _node(args[0], depth + 1, count)]
    raise OperationError(f"unknown operation {op!r}")


def _metric_refs(args: list) -> list[tuple[str, str]]:
    """``(metric REF AGG)`` or ``(metric (REF AGG) (REF AGG) ...)``."""
    if len(args) == 2 and all(isinstance(a, str) for a in args):
        pairs = [args]
    elif args and all(isinstance(a, list) for a in args):
        pairs = args
    else:
        raise OperationError("'metric' takes REF AGGREGATION or a list of (REF AGGREGATION)")
    out = []
    for pair in pairs:
        if len(pair) != 2 or not all(isinstance(p, str) and p for p in pair):
            raise OperationError(f"invalid metric reference {pair!r}")
        out.append((pair[0], pair[1]))
    return out


def references(tree: Any) -> list[tuple[str, str]]:
    """Every ``(ref, aggregation)`` the tree reads, in first-seen order."""
    seen: dict[tuple[str, str], None] = {}

    def walk(node: Any) -> None:
        if not isinstance(node, list):
            return
        if node[0] == "metric":
            seen.update((ref, None) for ref in node[1:])
        else:
            for child in node[1:]:
                walk(child)

    walk(tree)
    return list(seen)
