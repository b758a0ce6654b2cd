"""read_song / write_song: pick the reader or writer by file extension; write atomically, never over an input."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from stemfill.errors import ReadError, WriteError
from stemfill.pianoroll.song import Song

GUITARPRO_EXTS = (".gp3", ".gp4", ".gp5", ".gpx", ".gp")
MIDI_EXTS = (".mid", ".midi", ".kar")
SONG_EXTS = GUITARPRO_EXTS + MIDI_EXTS


def read_song(path: str | os.PathLike) -> Song:
    """Read a Guitar Pro or MIDI file into a Song. Raises GuitarProReadError / MidiReadError / ReadError."""
    p = Path(path)
    ext = p.suffix.lower()
    if not p.exists():
        raise ReadError(p, "no such file")
    if p.is_dir():
        raise ReadError(p, "is a directory, not a song file")
    if ext in GUITARPRO_EXTS:
        from stemfill.pianoroll.guitarpro import read_guitarpro

        return read_guitarpro(p)
    if ext in MIDI_EXTS:
        from stemfill.pianoroll.midi import read_midi

        return read_midi(p)
    raise ReadError(p, f"unsupported file type {ext or '(none)'!r}; expected one of {', '.join(SONG_EXTS)}")


def check_output_path(out: str | os.PathLike, *inputs: str | os.PathLike) -> Path:
    """Refuse an output path that is one of the inputs (same file, also through links)."""
    o = Path(out)
    for i in inputs:
        ip = Path(i)
        if o.resolve() == ip.resolve() or (o.exists() and ip.exists() and os.path.samefile(o, ip)):
            raise WriteError(f"{o}: output path is the input file; choose another -o (inputs are never overwritten)")
    return o


def default_file_mode() -> int:
    """The mode a plain open() would give a new file (mkstemp's temp files are 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write bytes to a temp file in the target folder, then rename over the target."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class atomic_path:
    """Context manager giving a temp path beside ``path``; renamed onto it on success, removed on error.

    with atomic_path("out.mid") as tmp: write_something(tmp)
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.stem}.", suffix=self.path.suffix)
        os.close(fd)
        self.tmp = Path(tmp)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            os.chmod(self.tmp, default_file_mode())
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


def write_song(song: Song, path: str | os.PathLike, *, source: str | os.PathLike | None = None) -> Path:
    """Write a Song as MIDI (.mid/.midi) or Guitar Pro 5 (.gp5), atomically.

    ``source``: the file the song was read from. It is never overwritten, and for a
    Guitar Pro source written to .gp5 the writer keeps the original tracks as they were
    in the tab (effects included) and appends the song's new tracks.
    """
    p = check_output_path(path, *([source] if source else []))
    ext = p.suffix.lower()
    if ext in (".mid", ".midi"):
        from stemfill.pianoroll.midi import write_midi

        with atomic_path(p) as tmp:
            write_midi(song, tmp)
    elif ext == ".gp5":
        from stemfill.pianoroll.guitarpro import write_guitarpro

        with atomic_path(p) as tmp:
            write_guitarpro(song, tmp, source=source)
    else:
        raise WriteError(f"{p}: cannot write {ext or '(no extension)'!r}; use .mid or .gp5")
    return p
