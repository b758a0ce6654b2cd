"""The `stemfill` command line: a thin Typer layer over the library's functions.

Heavy modules are imported inside each command so that `stemfill --help` is fast.
Every StemfillError becomes one line on stderr and exit code 1.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import List, Optional

import typer

from stemfill.errors import StemfillError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Add a missing instrument stem to a song.")


def friendly(fn):
    """Turn the project's errors (and missing files) into a one-line message and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except StemfillError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(1)
        except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
            typer.echo(f"error: {e.filename or ''}: {e.strerror or e}", err=True)
            raise typer.Exit(1)

    return wrapper


# === symbolic: info / plot / convert (foundation) ===========================

# === symbolic: midi / train (model) =========================================

# === evaluation =============================================================

# === audio ==================================================================


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
