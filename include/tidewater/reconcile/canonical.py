r"""One text form per value and one hash per row, computed identically by PostgreSQL and by DuckDB.

Each column becomes text by its PostgreSQL type (the warehouse side reads the same column under its
warehouse name):

  integers, booleans, text, uuid   their text ('true'/'false' for booleans)
  char(n)                          without trailing blanks
  numeric                          without trailing fractional zeros ('12.50' → '12.5', '3.00' → '3');
                                   'NaN' / 'Infinity' / '-Infinity' as PostgreSQL spells them (the
                                   warehouse keeps them in the `<column>_special` companion column)
  date                             days since 1970-01-01; 'infinity' / '-infinity'
  timestamp, timestamptz           microseconds since the epoch (UTC), so no time zone or text style
                                   matters; 'infinity' / '-infinity'
  json, jsonb                      PostgreSQL's own text form (what Debezium sends, kept as text)
  anything else                    its text

A row's text is its columns' texts in the table's column order, each with '\' and '|' escaped, NULL as
'\N', joined by '|' (so NULL and '' differ and no two rows share a text). Its hash is the first 60 bits
of the text's MD5 as a bigint; a table's checksum is the exact sum of its rows' hashes, which does not
depend on row order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

SPECIAL_SUFFIX = "_special"  # staging's name for a NUMERIC's companion column (`<column>__special` in the lake)


@dataclass(frozen=True)
class Column:
    name: str  # in PostgreSQL
    pg_type: str  # format_type() of the column, e.g. 'numeric(12,2)', 'timestamp with time zone'
    warehouse_name: str
    has_special: bool = False  # the warehouse has `<warehouse_name>_special`

    @property
    def kind(self) -> str:
        return kind_of(self.pg_type)


def kind_of(pg_type: str) -> str:
    """The canonical form a PostgreSQL type takes (see the module docstring)."""
    base = pg_type.split("(", 1)[0].strip()
    if base in ("smallint", "integer", "bigint", "boolean", "text", "character varying", "uuid", "json", "jsonb"):
        return "text"
    if base == "character":
        return "bpchar"
    if base == "numeric":
        return "numeric"
    if base == "date":
        return "date"
    if base in ("timestamp with time zone", "timestamp without time zone"):
        return "timestamp"
    return "text"


def _trim_zeros(text: str) -> str:
    # strpos, not LIKE '%.%': the SQL is also run through psycopg, where '%' starts a placeholder.
    return f"case when strpos({text}, '.') > 0 then rtrim(rtrim({text}, '0'), '.') else {text} end"


def pg_value(column: Column, ident: str) -> str:
    """PostgreSQL SQL for a column's canonical text; `ident` is the quoted column name."""
    text = f"{ident}::text"
    match column.kind:
        case "bpchar":
            return f"rtrim({text}, ' ')"
        case "numeric":
            return _trim_zeros(text)
        case "date":
            return f"case when isfinite({ident}) then ({ident} - date '1970-01-01')::text else {text} end"
        case "timestamp":
            return (f"case when isfinite({ident}) then (extract(epoch from {ident}) * 1000000)::bigint::text "
                    f"else {text} end")
    return text


def duck_value(column: Column, ident: str, special_ident: str | None = None) -> str:
    """DuckDB SQL for the same canonical text of the warehouse column `ident`."""
    text = f"{ident}::varchar"
    match column.kind:
        case "bpchar":
            return f"rtrim({text}, ' ')"
        case "numeric":
            trimmed = _trim_zeros(text)
            return f"coalesce({special_ident}, {trimmed})" if special_ident else trimmed
        case "date":
            return f"case when isfinite({ident}) then ({ident} - date '1970-01-01')::varchar else {text} end"
        case "timestamp":
            return f"case when isfinite({ident}) then epoch_us({ident})::varchar else {text} end"
    return text


def _row_text(values: Sequence[str]) -> str:
    escaped = [f"coalesce(replace(replace({value}, '\\', '\\\\'), '|', '\\|'), '\\N')" for value in values]
    return " || '|' || ".join(escaped)


def pg_row_hash(values: Sequence[str]) -> str:
    """PostgreSQL SQL: the row hash (bigint, 0 <= h < 2^60) of canonical column texts."""
    return f"('x' || lpad(substr(md5({_row_text(values)}), 1, 15), 16, '0'))::bit(64)::bigint"


def duck_row_hash(values: Sequence[str]) -> str:
    """DuckDB SQL: the same row hash."""
    return f"('0x' || substr(md5({_row_text(values)}), 1, 15))::bigint"
