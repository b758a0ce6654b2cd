"""What is in a song: one row per track (stem, program, notes, range) and a song summary (tempo, meter, length).

``song_info`` and ``song_summary`` return plain data (tests and scripts use them);
``print_info`` draws them as a rich table (``stemfill info``).
"""

from __future__ import annotations

from stemfill.song.song import Song
from stemfill.song.stems import classify_track

_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
MAX_LISTED = 4  # tempos / time signatures listed before "... (N changes)"


def note_name(pitch: int) -> str:
    """MIDI pitch -> name with octave, middle C = C4 (60 -> 'C4', 28 -> 'E1')."""
    return f"{_NAMES[pitch % 12]}{pitch // 12 - 1}"


def song_info(song: Song) -> list[dict]:
    """One dict per track: index, name, stem, program, drum, notes, low, high, range."""
    rows = []
    for i, t in enumerate(song.tracks):
        pitches = [n.pitch for n in t.notes]
        low, high = (min(pitches), max(pitches)) if pitches else (None, None)
        if low is None:
            span = ""
        elif t.is_drum:  # GM percussion keys, not pitches
            span = f"key {low}-{high}" if low != high else f"key {low}"
        else:
            span = f"{note_name(low)}-{note_name(high)}" if low != high else note_name(low)
        rows.append({
            "index": i,
            "name": t.name,
            "stem": t.stem or classify_track(t),
            "program": t.program,
            "drum": t.is_drum,
            "notes": len(t.notes),
            "low": low,
            "high": high,
            "range": span,
        })
    return rows


def song_summary(song: Song) -> dict:
    """Song-level facts: title, tempos (qpm), time signatures, bars, seconds, stems with notes."""
    from stemfill.song.stems import stems_present

    return {
        "title": song.title,
        "tempos": [(t.time, t.qpm) for t in song.tempos],
        "time_signatures": [(ts.time, f"{ts.numerator}/{ts.denominator}") for ts in song.time_signatures],
        "bars": song.n_bars,
        "seconds": song.seconds(song.end),
        "stems": stems_present(song),
        "tracks": len(song.tracks),
        "notes": sum(len(t.notes) for t in song.tracks),
    }


def _listed(values: list[str]) -> str:
    """'120' / '120, 140' / '120, 140, 96, 100 ... (12 changes)'; repeats after a change are kept in order."""
    shown = ", ".join(values[:MAX_LISTED])
    if len(values) > MAX_LISTED:
        shown += f" ... ({len(values) - 1} changes)"
    return shown


def summary_lines(summary: dict) -> list[str]:
    secs = summary["seconds"]
    tempos = _listed([f"{q:g}" if q == round(q) else f"{q:.1f}" for _, q in summary["tempos"]])
    return [
        f"tempo (qpm): {tempos}",
        f"time signature: {_listed([s for _, s in summary['time_signatures']])}",
        f"bars: {summary['bars']}   duration: {int(secs // 60)}:{secs % 60:04.1f} ({secs:.1f} s)",
        f"stems with notes: {', '.join(summary['stems']) or 'none'}",
    ]


def print_info(song: Song, source: str = "", console=None) -> None:
    """Print the track table and the summary with rich."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console or Console()
    summary = song_summary(song)
    title = source or song.title or "song"
    console.print(escape(f"{title}: {summary['tracks']} tracks, {summary['notes']} notes"), highlight=False)
    table = Table()
    for col, justify in (("#", "right"), ("name", "left"), ("stem", "left"), ("program", "right"),
                         ("drum", "center"), ("notes", "right"), ("range", "left")):
        table.add_column(col, justify=justify)
    for r in song_info(song):
        table.add_row(str(r["index"]), escape(r["name"]), r["stem"], str(r["program"]), "x" if r["drum"] else "",
                      str(r["notes"]), r["range"])
    console.print(table)
    for line in summary_lines(summary):
        console.print(escape(line), highlight=False)
