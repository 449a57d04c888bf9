"""`python -m tidewater.gate sync`: rebuilds the GX files in great_expectations/ from tidewater.gate.suites now (the
gate builds them itself when they are missing or older than the code; they are never committed)."""

from __future__ import annotations

import sys

from tidewater.config import Settings


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args != ["sync"]:
        raise SystemExit("usage: python -m tidewater.gate sync")
    from tidewater.gate import context

    settings = Settings.from_env()
    context.sync(settings)
    print(f"[gate] suites, validation definitions and checkpoints written to {settings.gx_context_dir}")


if __name__ == "__main__":
    main()
