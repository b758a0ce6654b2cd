"""The one ``--bars`` syntax every command shares: 'A' (one bar), 'A-B' (A to B), 'A-' (A to the end).

Bars count from 1 and B is inclusive. ``parse_bars`` checks the text alone (before any file is
read); ``bar_span`` places the range in a song, in ticks.
"""

from __future__ import annotations

from dataclasses import dataclass

from stemfill.errors import StemfillError

SYNTAX = "A-B, A- (to the end) or A; bars count from 1, B is included"


@dataclass(frozen=True)
class BarRange:
    first: int  # 1-based
    last: int | None  # 1-based, inclusive; None: to the song's end
    text: str

    def resolve(self, n_bars: int) -> tuple[int, int]:
        """(first, last) within a song of ``n_bars`` bars; StemfillError where the range starts past its end."""
        if n_bars < 1 or self.first > n_bars:
            raise StemfillError(f"--bars {self.text}: the song has {n_bars} bar{'s' if n_bars != 1 else ''}")
        last = n_bars if self.last is None else self.last
        if last > n_bars:
            raise StemfillError(f"--bars {self.text}: the song has {n_bars} bars; use {self.first}- for "
                                f"bar {self.first} to the end")
        return self.first, last


def parse_bars(text: str) -> BarRange:
    """'5' -> bar 5; '5-8' -> bars 5 to 8; '5-' -> bar 5 to the end. StemfillError on anything else."""
    a, dash, b = text.strip().partition("-")
    try:
        first = int(a)
        last = int(b) if b.strip() else (None if dash else first)
    except ValueError:
        raise StemfillError(f"--bars {text!r}: expected {SYNTAX}") from None
    if first < 1 or (last is not None and last < first):
        raise StemfillError(f"--bars {text!r}: expected {SYNTAX}")
    return BarRange(first, last, text)


def bar_span(song, bars: BarRange | str) -> tuple[int, int]:
    """(start tick, end tick) of a bar range in ``song``; the end of the last bar is the song's end."""
    r = parse_bars(bars) if isinstance(bars, str) else bars
    starts = song.bar_starts()
    n = len(starts) if song.end > 0 else 0
    first, last = r.resolve(n)
    end = starts[last] if last < n else max(song.end, starts[-1] + 1)
    return starts[first - 1], end


def last_bar_end(song) -> int:
    """Tick of the bar line that closes the bar holding the song's last note end (0: no notes)."""
    if song.end <= 0:
        return 0
    start = song.bar_starts()[-1]
    ts = [t for t in song.time_signatures if t.time <= start][-1]
    return start + song.bar_ticks(ts)


def clip_track(track, end: int) -> int:
    """Cut ``track``'s notes at tick ``end`` (those starting there or later go, longer ones end there);
    returns how many notes went or got shorter."""
    from dataclasses import replace

    kept, changed = [], 0
    for n in track.notes:
        if n.end <= end:
            kept.append(n)
            continue
        changed += 1
        if n.start < end:
            kept.append(replace(n, duration=end - n.start))
    track.notes = kept
    return changed
