"""Quartz cron expressions as the Jobs API takes them (`0 0 6 * * ?`).

No maintained Python library parses Quartz syntax (`?`, `L`, `W`, `#`, seconds
and year fields); croniter is Unix cron. This checks what Databricks would reject.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    words: tuple[str, ...] = ()
    special: str = ""  # allowed extra forms: ? L W #


_FIELDS = (
    _Field("seconds", 0, 59),
    _Field("minutes", 0, 59),
    _Field("hours", 0, 23),
    _Field("day-of-month", 1, 31, special="?LW"),
    _Field("month", 1, 12, tuple(MONTHS)),
    _Field("day-of-week", 1, 7, tuple(DAYS), special="?L#"),
    _Field("year", 1970, 2099),
)


def check(expression: str) -> None:
    """Raise ValueError saying which field is wrong and what it accepts."""
    parts = expression.split()
    if len(parts) not in (6, 7):
        msg = (
            f"{expression!r} has {len(parts)} fields; expected quartz cron with 6 or 7: "
            "seconds minutes hours day-of-month month day-of-week [year], e.g. '0 0 6 * * ?'"
        )
        raise ValueError(msg)
    for field, text in zip(_FIELDS, parts, strict=False):
        for item in text.split(","):
            if not _item_ok(field, item.upper()):
                msg = (
                    f"{expression!r}: {field.name} field {text!r} is not valid; expected "
                    f"values {field.low}-{field.high}{_words(field)}, '*', ranges a-b, steps /n"
                    f"{_special(field)}"
                )
                raise ValueError(msg)
    dom, dow = parts[3], parts[5]
    if (dom == "?") == (dow == "?"):
        msg = f"{expression!r}: exactly one of day-of-month and day-of-week must be '?'"
        raise ValueError(msg)


def _words(field: _Field) -> str:
    return f" or {field.words[0]}-{field.words[-1]}" if field.words else ""


def _special(field: _Field) -> str:
    return f", or {' '.join(repr(c) for c in field.special)}" if field.special else ""


def _value(field: _Field, token: str) -> int | None:
    if token in field.words:
        return field.words.index(token) + (field.low if field.name == "month" else 1)
    if token.isdigit():
        value = int(token)
        return value if field.low <= value <= field.high else None
    return None


def _item_ok(field: _Field, item: str) -> bool:
    if item == "?":
        return "?" in field.special
    if "L" in field.special and (item in ("L", "LW") or re.fullmatch(r"L-\d{1,2}", item)):
        return "W" in field.special or item == "L"
    if "W" in field.special and re.fullmatch(r"\d{1,2}W", item):
        return _value(field, item[:-1]) is not None
    if "#" in field.special and "#" in item:
        day, _, nth = item.partition("#")
        return _value(field, day) is not None and nth in {"1", "2", "3", "4", "5"}
    if "L" in field.special and item.endswith("L") and field.name == "day-of-week":
        return _value(field, item[:-1]) is not None
    base, _, step = item.partition("/")
    if step and not (step.isdigit() and int(step) > 0):
        return False
    if base == "*":
        return True
    low, _, high = base.partition("-")
    if _value(field, low) is None:
        return False
    return not high or _value(field, high) is not None
