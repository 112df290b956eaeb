"""PromQL text -> a small tree of plain nodes, or an error naming what is not supported.

Parsing is ``promql-parser``'s (the Rust parser of the ``promql-parser`` crate, as used by
GreptimeDB): this module only walks its AST and keeps what the appliance can answer from
pre-aggregated RRD buckets, so the evaluator never meets a construct it does not know.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import promql_parser as pp


class QueryError(ValueError):
    """The query cannot be parsed, or is wrong for a reason Prometheus also rejects."""


class Unsupported(QueryError):
    """Valid PromQL outside the appliance's subset; the message names the construct."""


#: The parser's match operators are not hashable: compared in turn.
MATCH_OPS = ((pp.MatchOp.Equal, "="), (pp.MatchOp.NotEqual, "!="), (pp.MatchOp.Re, "=~"),
             (pp.MatchOp.NotRe, "!~"))
#: Functions over a range vector, by what they read (``rate`` family: counters only).
RATE_FUNCTIONS = ("rate", "irate", "increase")
OVER_TIME = ("avg_over_time", "min_over_time", "max_over_time", "sum_over_time",
             "count_over_time", "last_over_time")
#: Functions over instant vectors or scalars: name -> (min args, max args).
INSTANT_FUNCTIONS = {"abs": (1, 1), "round": (1, 2), "clamp": (3, 3), "clamp_min": (2, 2),
                     "clamp_max": (2, 2), "scalar": (1, 1), "vector": (1, 1), "time": (0, 0)}
AGGREGATIONS = ("sum", "avg", "min", "max", "count", "topk", "bottomk")
ARITHMETIC = ("+", "-", "*", "/", "%", "^")
COMPARISONS = ("==", "!=", ">", "<", ">=", "<=")


@dataclass(frozen=True, slots=True)
class Matcher:
    label: str
    op: str  # = != =~ !~
    value: str

    def matches(self, value: str) -> bool:
        """Prometheus' rule: regexes are anchored; an absent label is the empty string."""
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        hit = _regex(self.value).fullmatch(value) is not None
        return hit if self.op == "=~" else not hit


def _regex(pattern: str) -> re.Pattern:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise QueryError(f"invalid regular expression {pattern!r}: {exc}") from None


@dataclass(frozen=True, slots=True)
class Selector:
    matchers: tuple[Matcher, ...]
    offset: float = 0.0
    range: float | None = None  # seconds, for a range vector (only as a function argument)


@dataclass(frozen=True, slots=True)
class Number:
    value: float


@dataclass(frozen=True, slots=True)
class Call:
    func: str
    args: tuple


@dataclass(frozen=True, slots=True)
class Aggregate:
    op: str
    expr: object
    by: tuple[str, ...] | None = None
    without: tuple[str, ...] | None = None
    param: object | None = None


@dataclass(frozen=True, slots=True)
class Binary:
    op: str
    lhs: object
    rhs: object
    on: tuple[str, ...] | None = None
    ignoring: tuple[str, ...] = ()
    bool: bool = False


@dataclass(frozen=True, slots=True)
class Negate:
    expr: object


@functools.lru_cache(maxsize=512)
def parse(text: str) -> object:
    """The plan of one PromQL expression; :class:`QueryError` or :class:`Unsupported`.

    Kept per text (plans are frozen, so sharing one is safe; an error is not kept): a
    dashboard sends the same few queries at every refresh.
    """
    try:
        ast = pp.parse(text)
    except ValueError as exc:
        raise QueryError(f"parse error: {exc}") from None
    return _node(ast)


def format_query(text: str) -> str:
    """The parser's pretty-printed form (``/api/v1/format_query``)."""
    try:
        return pp.parse(text).prettify()
    except ValueError as exc:
        raise QueryError(f"parse error: {exc}") from None


def _node(e: object) -> object:
    kind = type(e).__name__
    if kind == "ParenExpr":
        return _node(e.expr)
    if kind == "NumberLiteral":
        return Number(float(e.val))
    if kind == "UnaryExpr":
        return Negate(_node(e.expr))
    if kind == "VectorSelector":
        return _selector(e, None)
    if kind == "MatrixSelector":
        return _selector(e.vector_selector, e.range.total_seconds())
    if kind == "Call":
        return _call(e)
    if kind == "AggregateExpr":
        return _aggregate(e)
    if kind == "BinaryExpr":
        return _binary(e)
    what = {"SubqueryExpr": "subqueries", "StringLiteral": "string literals"}.get(kind, kind)
    raise Unsupported(f"{what} are not supported")


def _selector(vs: pp.VectorSelector, range_: float | None) -> Selector:
    if vs.at is not None:
        raise Unsupported("the @ modifier is not supported")
    if vs.matchers.or_matchers:
        raise Unsupported("'or' inside label matchers is not supported")
    matchers = [Matcher(m.name, next(op for o, op in MATCH_OPS if o == m.op), m.value)
                for m in vs.matchers.matchers]
    if vs.name:
        matchers.insert(0, Matcher("__name__", "=", vs.name))
    offset = vs.offset.total_seconds() if vs.offset is not None else 0.0
    return Selector(tuple(matchers), offset, range_)


def _call(e: pp.Call) -> Call:
    name = e.func.name
    args = tuple(_node(a) for a in e.args)
    if name in RATE_FUNCTIONS or name in OVER_TIME:
        if not (len(args) == 1 and isinstance(args[0], Selector) and args[0].range):
            raise Unsupported(f"{name}() needs a range vector selector, such as x[5m]")
        return Call(name, args)
    if name not in INSTANT_FUNCTIONS:
        raise Unsupported(f"function {name}() is not supported")
    lo, hi = INSTANT_FUNCTIONS[name]
    if not lo <= len(args) <= hi:
        raise QueryError(f"{name}() takes {lo} to {hi} arguments, got {len(args)}")
    for arg in args:
        if isinstance(arg, Selector) and arg.range:
            raise QueryError(f"{name}() expects an instant vector, got a range vector")
    return Call(name, args)


def _aggregate(e: pp.AggregateExpr) -> Aggregate:
    op = str(e.op)
    if op not in AGGREGATIONS:
        raise Unsupported(f"aggregation {op}() is not supported")
    by = without = None
    if e.modifier is not None:
        labels = tuple(e.modifier.labels)
        if e.modifier.type == pp.AggModifierType.By:
            by = labels
        else:
            without = labels
    param = None
    if op in ("topk", "bottomk"):
        param = _node(e.param)
    return Aggregate(op, _instant(_node(e.expr), op), by, without, param)


def _binary(e: pp.BinaryExpr) -> Binary:
    op = str(e.op)
    if op not in ARITHMETIC + COMPARISONS:
        raise Unsupported(f"binary operator {op!r} is not supported")
    on, ignoring, return_bool = None, (), False
    m = e.modifier
    if m is not None:
        if m.card not in (pp.VectorMatchCardinality.OneToOne,):
            raise Unsupported("group_left/group_right (many-to-one matching) is not supported")
        return_bool = bool(m.return_bool)
        if m.matching is not None:
            labels = tuple(m.matching.labels)
            if m.matching.type == pp.LabelModifierType.Include:
                on = labels
            else:
                ignoring = labels
    if return_bool and op not in COMPARISONS:
        raise QueryError("bool modifier can only be used on comparison operators")
    return Binary(op, _instant(_node(e.lhs), op), _instant(_node(e.rhs), op), on, ignoring,
                  return_bool)


def _instant(node: object, where: str) -> object:
    if isinstance(node, Selector) and node.range:
        raise QueryError(f"{where}: expected an instant vector, got a range vector")
    return node
