"""File helpers shared by every command: output-path checks, atomic writes, one-line error text.

Outputs are checked before any expensive work (``check_output_path``), written to a temp file
beside the target and renamed onto it (``atomic_path``, ``atomic_write_bytes``), and never
written over an input. Every failure is a ``WriteError`` that names the path the user gave.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable

from stemfill.errors import WriteError


def one_line(what: BaseException | str, limit: int = 300, *, with_type: bool = False) -> str:
    """An exception (or any text) as one line of at most ``limit`` characters, for error messages."""
    text = " ".join(str(what).split())
    if isinstance(what, BaseException):
        text = text or type(what).__name__
        if with_type and not text.startswith(type(what).__name__):
            text = f"{type(what).__name__}: {text}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def ext_list(exts: Iterable[str]) -> str:
    """('.mid', '.midi', '.gp5') -> '.mid, .midi or .gp5'."""
    exts = list(exts)
    return exts[0] if len(exts) == 1 else f"{', '.join(exts[:-1])} or {exts[-1]}"


def _existing_ancestor(p: Path) -> Path:
    """The nearest of ``p``'s parents that exists (``p``'s folder, or one above it)."""
    a = p.parent if str(p.parent) else Path(".")
    while not a.exists() and a != a.parent:
        a = a.parent
    return a


def _check_can_create_in(user_path: Path, folder: Path) -> None:
    """Refuse ``user_path`` unless a file can be created in ``folder`` (or in the folders to be made there)."""
    a = folder if folder.exists() else _existing_ancestor(folder / "x")
    if not a.is_dir():
        raise WriteError(f"{user_path}: cannot write there: {a} is a file, not a folder")
    try:  # the honest test: os.access says yes to root even where nothing can be created
        fd, probe = tempfile.mkstemp(dir=a, prefix=".stemfill-probe.")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise WriteError(f"{user_path}: cannot create files in {a} ({e.strerror or one_line(e)})") from None


def check_output_path(out: str | os.PathLike, *inputs: str | os.PathLike,
                      exts: Iterable[str] | None = None) -> Path:
    """Check an output file before any work: not an input, a known extension, not a folder, writable.

    ``exts``: the extensions the writer can write (lower case, with the dot); None accepts any.
    Raises ``WriteError`` naming ``out`` as the user gave it.
    """
    o = Path(out)
    for i in inputs:
        ip = Path(i)
        if o.resolve() == ip.resolve() or (o.exists() and ip.exists() and os.path.samefile(o, ip)):
            raise WriteError(f"{o}: output path is the input file; choose another -o (inputs are never overwritten)")
    exts = tuple(exts) if exts is not None else None
    if o.is_dir():
        raise WriteError(f"{o}: is a folder; give a file name (e.g. {o / ('out' + (exts[0] if exts else ''))})")
    if exts is not None and o.suffix.lower() not in exts:
        raise WriteError(f"{o}: cannot write {o.suffix or '(no extension)'!r}; use {ext_list(exts)}")
    _check_can_create_in(o, o.parent if str(o.parent) else Path("."))
    return o


def check_output_folder(out: str | os.PathLike, *inputs: str | os.PathLike) -> Path:
    """Check an output folder before any work: not a file, not an input, and files can be created in it."""
    o = Path(out)
    if o.exists() and not o.is_dir():
        raise WriteError(f"{o}: is a file; the output must be a folder")
    for i in inputs:
        if Path(i).exists() and Path(i).resolve() == o.resolve():
            raise WriteError(f"{o}: output folder is an input; choose another -o (inputs are never overwritten)")
    _check_can_create_in(o, o)
    return o


def default_file_mode() -> int:
    """The mode a plain open() would give a new file (mkstemp's temp files are 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _make_parent(p: Path) -> None:
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WriteError(f"{p}: cannot create its folder: {e.strerror or one_line(e)}") from None


_READ: dict = {}


def read_once(path: str | os.PathLike, load, *args):
    """``load(path, *args)``, kept per process while the file is unchanged (same resolved path and mtime)."""
    p = Path(path)
    key = (str(p.resolve()), p.stat().st_mtime_ns, load, args)
    if key not in _READ:
        _READ[key] = load(p, *args)
    return _READ[key]


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write bytes to a temp file in the target folder, then rename over the target."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


class atomic_path:
    """Context manager giving a temp path beside ``path``; renamed onto it on success, removed on error.

    with atomic_path("out.mid") as tmp: write_something(tmp)

    An OSError inside or at the rename becomes a WriteError that names ``path``, not the temp file.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __enter__(self) -> Path:
        _make_parent(self.path)
        try:
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.stem}.", suffix=self.path.suffix)
        except OSError as e:
            raise WriteError(f"{self.path}: cannot write: {e.strerror or one_line(e)}") from None
        os.close(fd)
        self.tmp = Path(tmp)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                os.chmod(self.tmp, default_file_mode())
                os.replace(self.tmp, self.path)
                return
            except OSError as e:
                self.tmp.unlink(missing_ok=True)
                raise WriteError(f"{self.path}: cannot write: {e.strerror or one_line(e)}") from None
        self.tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, WriteError):
            raise WriteError(f"{self.path}: cannot write: {exc.strerror or one_line(exc)}") from exc
