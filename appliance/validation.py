"""Pydantic building blocks for input checked at the edge: request bodies and alarm definitions.

A model states each constraint once; the API validates with it and the OpenAPI document is
generated from it. The field types here carry their JSON-schema bound (``minimum``, ``enum``)
and, where a failure needs to read better than pydantic's default, an error written as a
predicate of the field's path ("must be a positive integer"), so :func:`describe` turns any
validation failure into one sentence that names the field: ``definition[0].points must be
between 1 and 1000000``. Pure: no Flask, no I/O, usable from the alarm evaluator too.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
)
from pydantic_core import PydanticCustomError

#: The error type of :func:`fail`: its message is already a predicate (or, at the root, a
#: whole sentence).
CUSTOM = "appliance"


class Body(BaseModel):
    """A request body: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


def fail(predicate: str) -> PydanticCustomError:
    """An error for the field being validated; ``predicate`` follows its path in the message."""
    return PydanticCustomError(CUSTOM, predicate)


def tag(name: str) -> str:
    """The tag of a union member chosen by a callable discriminator.

    Pydantic puts the tag into the error location; the brackets let :func:`describe` leave it
    out, so a path reads ``composite_rule.and[0].threshold``, as the client wrote it.
    """
    return f"<{name}>"


#: Predicates for pydantic's own error types (the rest are quoted after "is invalid").
_PREDICATES = {
    "missing": "is required",
    "extra_forbidden": "is an unknown field",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "list_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "string_too_short": "must not be empty",
    "string_too_long": "must be at most {max_length} characters",
    "too_short": "must have at least {min_length} item(s)",
    "too_long": "must have at most {max_length} item(s)",
    "greater_than_equal": "must be at least {ge}",
    "greater_than": "must be greater than {gt}",
    "less_than_equal": "must be at most {le}",
    "literal_error": "must be one of {expected}",
    "uuid_parsing": "is not a UUID",
    "uuid_type": "is not a UUID",
}


def path_of(loc: tuple[int | str, ...]) -> str:
    """``("definition", 0, "points")`` -> ``definition[0].points`` (union tags left out)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not (part.startswith("<") and part.endswith(">")):
            out += f".{part}" if out else part
    return out


def describe(exc: ValidationError, prefix: str = "") -> str:
    """The first failure of ``exc`` as one sentence naming the field path."""
    error = exc.errors(include_url=False, include_input=False)[0]
    path = path_of((prefix, *error["loc"]) if prefix else error["loc"])
    if error["type"] == CUSTOM:
        message = error["msg"]
        return f"{path} {message}" if path else message
    template = _PREDICATES.get(error["type"])
    if template is None:
        predicate = f"is invalid ({error['msg']})"
    else:
        predicate = template.format(**error.get("ctx", {}))
    return f"{path or 'the body'} {predicate}"


# --- field types ----------------------------------------------------------------------------

def _no_bool(value: Any) -> Any:
    """JSON ``true`` is not a number, though Python's bool is an int."""
    if isinstance(value, bool):
        raise fail("must be a number")
    return value


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise fail("must be a finite number")
    return value


def _positive_int(value: Any) -> int:
    """``60``, ``60.0`` and ``"60"`` alike; never ``true``."""
    try:
        number = float(_no_bool(value))
    except (TypeError, ValueError, PydanticCustomError):
        number = math.nan
    if not math.isfinite(number) or number != int(number) or number < 1:
        raise fail("must be a positive integer")
    return int(number)


def _non_negative(value: float) -> float:
    if value < 0:
        raise fail("must not be negative")
    return value


def _non_blank(value: str) -> str:
    if not value.strip():
        raise fail("must be a non-empty string")
    return value


def _uuid(value: Any) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise fail(f"is not a UUID: {value!r}") from None


#: A finite number (a JSON number, or a string holding one).
Number = Annotated[float, BeforeValidator(_no_bool), AfterValidator(_finite)]
#: A whole number >= 1.
PositiveInt = Annotated[int, BeforeValidator(_positive_int), Field(ge=1)]
NonNegative = Annotated[float, BeforeValidator(_no_bool), AfterValidator(_finite),
                        AfterValidator(_non_negative), Field(ge=0)]
#: A string with something besides white space in it.
Text = Annotated[str, Field(min_length=1), AfterValidator(_non_blank)]
#: A UUID in its canonical lower-case form.
UUIDText = Annotated[str, Field(json_schema_extra={"format": "uuid"}),
                     BeforeValidator(_uuid)]
StrictBool = Annotated[bool, Strict()]


def checked(test: Callable[[Any], bool], predicate: str) -> BeforeValidator:
    """Fails with ``predicate`` unless ``test(value)``: one message for every way to be wrong
    (the ``Field`` bounds beside it are for the schema and then always hold)."""

    def check(value: Any) -> Any:
        if not test(value):
            raise fail(predicate)
        return value

    return BeforeValidator(check)


#: A name as paths use it: 1..255 characters, no '/'.
Name = Annotated[str, Field(min_length=1, max_length=255, pattern="^[^/]+$"), checked(
    lambda v: isinstance(v, str) and 0 < len(v) <= 255 and "/" not in v,
    "must be a non-empty string without '/' (at most 255 characters)")]
#: A free-form label: 1..255 characters.
Label = Annotated[str, Field(min_length=1, max_length=255), checked(
    lambda v: isinstance(v, str) and 0 < len(v) <= 255,
    "must be a non-empty string of at most 255 characters")]


def one_of(*options: str) -> Any:
    """A ``Literal`` of ``options`` (built from a table, so the table stays the source)."""
    return Literal[options]  # type: ignore[valid-type]
