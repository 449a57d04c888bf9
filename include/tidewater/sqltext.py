"""SQL text built from values: the one place literals and identifiers are quoted, and errors that may quote a
secret are redacted.

Parameters come first (DuckDB's ``?``/``$name``, psycopg's ``%s`` and ``psycopg.sql``): values they can carry
never enter SQL text. What takes no parameter (DuckDB's ATTACH and CREATE SECRET options, a table function's
catalog name, identifiers) goes through `literal` and `identifier`, which make any text inert data: a quote in it
is doubled, so it cannot end the literal or identifier and start another statement. Both refuse a NUL character,
which SQL text cannot hold.

Errors of DuckDB and libpq repeat the statement or the connection string they failed on (a parse error prints
the line, a failed ATTACH the whole conninfo with its password), so a statement holding a secret runs under
`redacting`: the error raised from it has every form the secret takes in SQL text replaced by ``***``, and
any libpq ``password=…`` masked too, before it can reach a log line or an alert email.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

MASK = "***"
_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)")


def _no_nul(text: str, what: str) -> str:
    if "\x00" in text:
        raise ValueError(f"a SQL {what} cannot hold a NUL character (at position {text.index(chr(0))})")
    return text


def literal(value: object) -> str:
    """A SQL string literal of ``str(value)`` for DuckDB and PostgreSQL (standard strings: a backslash is just a
    character, a quote is doubled)."""
    return "'" + _no_nul(str(value), "string literal").replace("'", "''") + "'"


def identifier(name: str) -> str:
    """A quoted SQL identifier (one name part: a catalog, schema, table or column), any text allowed but NUL."""
    if not name:
        raise ValueError("a SQL identifier cannot be empty")
    return '"' + _no_nul(name, "identifier").replace('"', '""') + '"'


def mask_passwords(text: str) -> str:
    """`text` with the password of every libpq conninfo in it masked (``password='…'`` or ``password=…``)."""
    return _PASSWORD.sub(rf"\1{MASK}", text)


def redact(text: str, *secrets: str | None) -> str:
    """`text` without the secrets: each as is, as a SQL literal's content (quotes doubled) and as libpq quotes it
    (backslash-escaped), longest first; then `mask_passwords`. Empty secrets are skipped."""
    forms = {form for secret in secrets if secret
             for form in (secret, secret.replace("'", "''"), secret.replace("\\", "\\\\").replace("'", "\\'"))}
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, MASK)
    return mask_passwords(text)


def redacted(error: BaseException, *secrets: str | None) -> BaseException:
    """An exception like `error` (the same class where it can be built from one message, else RuntimeError) whose
    message is `redact`-ed. Raise it ``from None``: the original, which holds the secret, must not be chained."""
    message = redact(str(error), *secrets)
    try:
        return type(error)(message)
    except Exception:  # a class whose constructor wants more than a message
        return RuntimeError(f"{type(error).__name__}: {message}")


@contextmanager
def redacting(*secrets: str | None) -> Iterator[None]:
    """Runs the block; an exception from it is re-raised `redacted` (without its secret-holding original)."""
    try:
        yield
    except Exception as error:
        raise redacted(error, *secrets) from None  # tracebacks (logging's, structlog's) omit the original
