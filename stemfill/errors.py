"""The project's own error types. Every message names the file (or field) and the problem in one line."""

from __future__ import annotations


class StemfillError(Exception):
    """Base of every error stemfill raises on bad input; the CLI prints it as one line and exits 1."""


class SongError(StemfillError, ValueError):
    """A song, track or note failed validation; the message names the field."""


class ReadError(StemfillError):
    """A file could not be read as a song."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class GuitarProReadError(ReadError):
    pass


class MidiReadError(ReadError):
    pass


class WriteError(StemfillError):
    pass


class ModelError(StemfillError):
    """A checkpoint is missing, corrupt, or of another shape."""


class AudioError(StemfillError):
    pass
