"""Avro values of pgferry's records -> the column's PostgreSQL text form.

The contract (docs/records.md, "Types") fixes the text forms as PostgreSQL prints them with
DateStyle = ISO, YMD; TimeZone = UTC; IntervalStyle = postgres; extra_float_digits = 3;
bytea_output = hex. Values decoded from the Avro primitive (fastavro without logical types, see
`strip_logical_types`) are rendered here into exactly that text, so a rebuilt row compares
equal, byte for byte, with `SELECT col::text` on the source under those settings.

Logical types are read here, not by fastavro, because Python's date and datetime cover only the
years 1 to 9999, while PostgreSQL dates run from 4713 BC to 5874897 AD and pgferry sends every
finite timestamp up to the year 294247 as local-timestamp-micros.
"""

from __future__ import annotations

import math
import struct
from decimal import Decimal
from typing import Any

MICROS_PER_DAY = 86_400_000_000


def strip_logical_types(schema: Any) -> Any:
    """A copy of an Avro schema (parsed JSON) without any "logicalType" property."""
    if isinstance(schema, dict):
        return {k: strip_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [strip_logical_types(s) for s in schema]
    return schema


def _civil_from_days(z: int) -> tuple[int, int, int]:
    """Proleptic Gregorian (astronomical year: 0 is 1 BC) of days since 1970-01-01 (Hinnant)."""
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (1 if m <= 2 else 0), m, d


def _ymd(days: int) -> tuple[str, str]:
    y, m, d = _civil_from_days(days)
    bc = y <= 0
    year = 1 - y if bc else y
    return f"{year:04d}-{m:02d}-{d:02d}", " BC" if bc else ""


def date_text(days: int) -> str:
    ymd, bc = _ymd(days)
    return ymd + bc


def timestamp_text(micros: int) -> str:
    days, rest = divmod(micros, MICROS_PER_DAY)
    secs, frac = divmod(rest, 1_000_000)
    hh, rem = divmod(secs, 3600)
    mm, ss = divmod(rem, 60)
    ymd, bc = _ymd(days)
    fraction = f".{frac:06d}".rstrip("0") if frac else ""
    return f"{ymd} {hh:02d}:{mm:02d}:{ss:02d}{fraction}{bc}"


def _shortest_float32_digits(v: float) -> str:
    """The shortest decimal (in %e form) that reads back as the same float32 value."""
    bits = struct.pack(">f", v)
    for precision in range(0, 9):
        text = f"{v:.{precision}e}"
        if struct.pack(">f", float(text)) == bits:
            return text
    return f"{v:.8e}"


def _pg_float(sci: str, fixed_below: int) -> str:
    """PostgreSQL's shortest float output (Ryu, extra_float_digits > 0) from a %e/repr text.

    Fixed notation when the decimal exponent is in [-4, fixed_below), else d.ddde+XX with at
    least two exponent digits: float4 uses 6, float8 15 (src/common/f2s.c and d2s.c).
    """
    sign, digits, exponent = Decimal(sci).as_tuple()
    ds = "".join(map(str, digits)).rstrip("0") or "0"
    neg = "-" if sign else ""
    if ds == "0":
        return neg + "0"
    # Decimal exponent of the first significant digit.
    e = len("".join(map(str, digits)).lstrip("0")) - 1 + exponent
    if -4 <= e < fixed_below:
        if e >= 0:
            whole = ds[: e + 1].ljust(e + 1, "0")
            frac = ds[e + 1 :]
            return neg + whole + ("." + frac if frac else "")
        return neg + "0." + "0" * (-e - 1) + ds
    mantissa = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
    return f"{neg}{mantissa}e{'-' if e < 0 else '+'}{abs(e):02d}"


def float_text(v: float, single: bool) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    if v == 0:
        return "-0" if math.copysign(1.0, v) < 0 else "0"
    if single:
        return _pg_float(_shortest_float32_digits(v), 6)
    return _pg_float(repr(v), 15)


def decimal_text(unscaled: bytes, scale: int) -> str:
    """Avro decimal bytes (two's complement, big-endian unscaled value) -> numeric text."""
    n = int.from_bytes(unscaled, "big", signed=True) if unscaled else 0
    neg = n < 0
    digits = str(-n if neg else n).rjust(scale + 1, "0")
    text = f"{digits[:-scale]}.{digits[-scale:]}" if scale else digits
    return ("-" if neg else "") + text


# Python type of a decoded value -> the Avro primitive names it can come from.
_BRANCHES = {
    bool: ("boolean",),
    int: ("int", "long"),
    float: ("float", "double"),
    str: ("string",),
    bytes: ("bytes",),
}


def _type_name(t: Any) -> str:
    return t if isinstance(t, str) else t.get("type") if isinstance(t, dict) else "union"


def _branch(t: Any, value: Any) -> Any:
    """The union branch a decoded value came from (the mapping never mixes int and long)."""
    if not isinstance(t, list):
        return t
    names = _BRANCHES.get(type(value), ())
    for b in t:
        if _type_name(b) in names:
            return b
    raise TypeError(f"a {type(value).__name__} value matches no branch of the union {t}")


def render(t: Any, value: Any, where: str) -> str | None:
    """The PostgreSQL text of `value`, decoded for the field type `t` (the writer schema's)."""
    if value is None:
        return None
    b = _branch(t, value)
    name = _type_name(b)
    logical = b.get("logicalType") if isinstance(b, dict) else None
    if name == "boolean":
        return "t" if value else "f"
    if name == "int":
        return date_text(value) if logical == "date" else str(value)
    if name == "long":
        return timestamp_text(value) if logical == "local-timestamp-micros" else str(value)
    if name in ("float", "double"):
        return float_text(value, single=name == "float")
    if name == "bytes":
        if logical == "decimal":
            return decimal_text(value, int(b.get("scale", 0)))
        return "\\x" + value.hex()
    if name == "string":
        return value
    raise TypeError(
        f"{where}: Avro type {b!r} is not in the contract's type table (docs/records.md); "
        "teach contract/pg_text.py its PostgreSQL text form"
    )
