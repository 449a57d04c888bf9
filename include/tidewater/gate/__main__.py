"""`python -m tidewater.gate sync`: rewrites the GX files in great_expectations/ from tidewater.gate.suites."""

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
