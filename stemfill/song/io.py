"""read_song / write_song: pick the reader or writer by file extension; write atomically, never over an input."""

from __future__ import annotations

import os
from pathlib import Path

from stemfill.errors import ReadError, WriteError
from stemfill.files import atomic_path, check_output_path, ext_list
from stemfill.song.song import Song

GUITARPRO_EXTS = (".gp3", ".gp4", ".gp5", ".gpx", ".gp")
MIDI_EXTS = (".mid", ".midi", ".kar")
SONG_EXTS = GUITARPRO_EXTS + MIDI_EXTS
WRITE_EXTS = (".mid", ".midi", ".gp5")  # what write_song can write


def read_song(path: str | os.PathLike) -> Song:
    """Read a Guitar Pro or MIDI file into a Song. Raises GuitarProReadError / MidiReadError / ReadError."""
    p = Path(path)
    ext = p.suffix.lower()
    if not p.exists():
        raise ReadError(p, "no such file")
    if p.is_dir():
        raise ReadError(p, "is a directory, not a song file")
    if ext in GUITARPRO_EXTS:
        from stemfill.song.guitarpro import read_guitarpro

        return read_guitarpro(p)
    if ext in MIDI_EXTS:
        from stemfill.song.midi import read_midi

        return read_midi(p)
    raise ReadError(p, f"unsupported file type {ext or '(none)'!r}; expected one of {', '.join(SONG_EXTS)}")


def write_song(song: Song, path: str | os.PathLike, *, source: str | os.PathLike | None = None,
               report: list[str] | None = None) -> Path:
    """Write a Song as MIDI (.mid/.midi) or Guitar Pro 5 (.gp5), atomically.

    ``source``: the file the song was read from. It is never overwritten, and for a
    Guitar Pro source written to .gp5 the writer keeps the original tracks as they were
    in the tab (effects included) and appends the song's new tracks. ``report``: a list
    that gets the GP5 writer's one-line notes per track (tuning chosen, notes dropped or
    moved, beats whose times moved; see docs/guitarpro.md).
    """
    p = check_output_path(path, *([source] if source else []), exts=WRITE_EXTS)
    ext = p.suffix.lower()
    if ext in (".mid", ".midi"):
        from stemfill.song.midi import write_midi

        with atomic_path(p) as tmp:
            write_midi(song, tmp)
    elif ext == ".gp5":
        from stemfill.song.guitarpro import write_guitarpro

        with atomic_path(p) as tmp:
            said = write_guitarpro(song, tmp, source=source, shown=p)
        if report is not None:
            report.extend(said)
    else:
        raise WriteError(f"{p}: cannot write {ext or '(no extension)'!r}; use {ext_list(WRITE_EXTS)}")
    return p
