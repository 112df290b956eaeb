"""Gnocchi's resource search language -> a SQL WHERE fragment with bound parameters.

Two spellings of one language: the JSON form (``{"and": [{"=": {"host": "a"}}, ...]}``) and
the string form of ``?filter=`` (``host = 'a' and not ended_at != null``). Field names become
a fixed column or ``json_extract`` over the resource's attributes (never text pasted into SQL);
every value is a bound parameter. Pure functions, no I/O: the API and the alarm evaluator
share them.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

from appliance.index.resources import RESOURCE_COLUMNS

#: Operator spellings -> SQL comparison.
COMPARISONS = {
    "=": "=", "==": "=", "eq": "=",
    "!=": "!=", "≠": "!=", "ne": "!=",
    "<": "<", "lt": "<",
    "<=": "<=", "≤": "<=", "le": "<=",
    ">": ">", "gt": ">",
    ">=": ">=", "≥": ">=", "ge": ">=",
    "like": "LIKE",
}
BOOLEANS = {"and": "AND", "∧": "AND", "or": "OR", "∨": "OR"}
#: Fields stored as epoch seconds: clients compare them with ISO 8601 strings.
TIME_FIELDS = {"started_at", "ended_at", "revision_start"}
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
MAX_DEPTH = 32


class QueryError(ValueError):
    """The query is not valid; the message says what is wrong."""


def field_sql(name: Any) -> str:
    """The SQL expression for a field: a fixed column, or a JSON attribute by its name."""
    if not isinstance(name, str) or not _FIELD.match(name):
        raise QueryError(f"invalid field name {name!r}")
    if name in RESOURCE_COLUMNS:
        return RESOURCE_COLUMNS[name]
    return f"json_extract(attributes, '$.\"{name}\"')"


def _value(field: str, value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float) and not math.isfinite(value):
        raise QueryError(f"value for {field!r} must be finite")
    if not isinstance(value, str | int | float):
        raise QueryError(f"value for {field!r} must be a string, number, boolean or null")
    if field in TIME_FIELDS and isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise QueryError(f"{value!r} is not an ISO 8601 timestamp for {field!r}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return parsed.timestamp()
    return value


def _single(op: str, body: Any) -> tuple[str, Any]:
    if not isinstance(body, dict) or len(body) != 1:
        raise QueryError(f"{op!r} takes exactly one {{field: value}}")
    return next(iter(body.items()))


def compile_query(query: dict, _depth: int = 0) -> tuple[str, list]:
    """A JSON query -> ``(sql, params)``; an empty query matches everything."""
    if _depth > MAX_DEPTH:
        raise QueryError("query is nested too deeply")
    if not query:
        return "1", []
    if not isinstance(query, dict) or len(query) != 1:
        raise QueryError("each query node must be an object with exactly one operator")
    op, body = next(iter(query.items()))
    key = op.lower() if isinstance(op, str) else op
    if key in BOOLEANS:
        if not isinstance(body, list) or not body:
            raise QueryError(f"{op!r} takes a non-empty list of queries")
        parts = [compile_query(q, _depth + 1) for q in body]
        sql = f" {BOOLEANS[key]} ".join(f"({p})" for p, _ in parts)
        return sql, [v for _, args in parts for v in args]
    if key == "not":
        sql, args = compile_query(body, _depth + 1)
        return f"NOT ({sql})", args
    if key == "in":
        field, values = _single(op, body)
        if not isinstance(values, list) or not values:
            raise QueryError("'in' takes a non-empty list of values")
        col = field_sql(field)
        return (
            f"{col} IN ({', '.join('?' * len(values))})",
            [_value(field, v) for v in values],
        )
    if key in COMPARISONS:
        field, value = _single(op, body)
        col = field_sql(field)
        value = _value(field, value)
        sql_op = COMPARISONS[key]
        if value is None:
            if sql_op not in ("=", "!="):
                raise QueryError(f"null can only be compared with = or !=, not {op!r}")
            return f"{col} IS {'NOT ' if sql_op == '!=' else ''}NULL", []
        if sql_op == "!=":
            return f"({col} IS NULL OR {col} != ?)", [value]
        return f"{col} {sql_op} ?", [value]
    raise QueryError(f"unknown operator {op!r}")


# --- the string form ------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<op>==|!=|<=|>=|≠|≤|≥|=|<|>|∧|∨)
      | (?P<punct>[()\[\],])
      | (?P<word>[^\s()\[\],'"=!<>≠≤≥∧∨]+)
    )""",
    re.VERBOSE,
)
_WORD_OPS = {"eq", "ne", "lt", "le", "gt", "ge", "like", "in"}


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise QueryError(f"cannot parse filter at {text[pos:pos + 20]!r}")
        kind = match.lastgroup
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


class _Parser:
    """Recursive descent: or < and < not < comparison / parenthesised expression."""

    def __init__(self, text: str):
        self.tokens = _tokenize(text)
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise QueryError("filter ends too early")
        self.i += 1
        return token

    def is_word(self, *words: str) -> bool:
        token = self.peek()
        return token is not None and token[1].lower() in words and token[0] in ("word", "op")

    def parse(self) -> dict:
        node = self.or_()
        if self.peek() is not None:
            raise QueryError(f"unexpected {self.peek()[1]!r} in filter")
        return node

    def or_(self) -> dict:
        items = [self.and_()]
        while self.is_word("or", "∨"):
            self.take()
            items.append(self.and_())
        return items[0] if len(items) == 1 else {"or": items}

    def and_(self) -> dict:
        items = [self.not_()]
        while self.is_word("and", "∧"):
            self.take()
            items.append(self.not_())
        return items[0] if len(items) == 1 else {"and": items}

    def not_(self) -> dict:
        if self.is_word("not"):
            self.take()
            return {"not": self.not_()}
        if self.peek() == ("punct", "("):
            self.take()
            node = self.or_()
            if self.take() != ("punct", ")"):
                raise QueryError("missing ')' in filter")
            return node
        return self.comparison()

    def comparison(self) -> dict:
        kind, field = self.take()
        if kind != "word":
            raise QueryError(f"expected a field name, got {field!r}")
        kind, op = self.take()
        if not (kind == "op" or (kind == "word" and op.lower() in _WORD_OPS)):
            raise QueryError(f"expected an operator after {field!r}, got {op!r}")
        op = op.lower()
        if op == "in":
            return {"in": {field: self.value_list()}}
        return {op: {field: self.value()}}

    def value_list(self) -> list:
        opening = self.take()
        if opening not in (("punct", "("), ("punct", "[")):
            raise QueryError("'in' needs a parenthesised list of values")
        closing = ")" if opening[1] == "(" else "]"
        values = [self.value()]
        while self.peek() == ("punct", ","):
            self.take()
            values.append(self.value())
        if self.take() != ("punct", closing):
            raise QueryError(f"missing {closing!r} after the list of values")
        return values

    def value(self) -> Any:
        kind, text = self.take()
        if kind == "str":
            return re.sub(r"\\(.)", r"\1", text[1:-1])
        if kind != "word":
            raise QueryError(f"expected a value, got {text!r}")
        lowered = text.lower()
        if lowered in ("null", "none"):
            return None
        if lowered in ("true", "false"):
            return lowered == "true"
        try:
            return int(text)
        except ValueError:
            pass
        try:
            return float(text)
        except ValueError:
            return text


def parse_filter(text: str) -> dict:
    """The string form (``?filter=``) -> the JSON form."""
    if not text.strip():
        return {}
    return _Parser(text).parse()
