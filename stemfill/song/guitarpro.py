"""Guitar Pro (gp3/gp4/gp5) <-> Song, through PyGuitarPro.

Reading
-------
``read_guitarpro`` returns every track of the file, in file order (empty ones too), so
track ``i`` of the Song is track ``i`` of the tab. Repeats (open/close, alternate
endings) are unrolled into the order a listener hears them; the file's direction
signs (D.C., D.S., Coda, Fine) are *not* followed, bars after them are read in written
order. Ties merge into the previous note on the same string and voice, both voices
are read, dead notes become short notes (at most ``DEAD_NOTE_TICKS``), ghost notes
and accents change velocity, grace notes and other effects are left out. Pitch is
string tuning + capo (``track.offset``) + fret; drum notes keep the fret as GM key.
Guitar Pro 6/7/8 files (.gpx/.gp, recognised by their first bytes) are not read by
PyGuitarPro: ``read_guitarpro`` hands them to ``gpif.read_gpif``, which follows the same
conventions (see that module).

Writing
-------
``write_guitarpro`` writes Guitar Pro 5. Without a source it builds the whole tab from
the Song; with a Guitar Pro ``source`` it keeps the source's tracks as they are
(effects included) and appends the Song's tracks beyond the first ``len(source
tracks)`` ones; see the function for the details. Parts without a tab get a tuning and
frets from ``fretting``; note values (tuplets, ties) come from ``rhythm``.
"""

from __future__ import annotations

import bisect
import copy
import os
import re
from dataclasses import replace
from fractions import Fraction

import guitarpro as gp

from stemfill.errors import GuitarProReadError, WriteError
from stemfill.files import one_line
from stemfill.song import fretting
from stemfill.song.fretting import choose_tuning, fret_notes
from stemfill.song.rhythm import Grid, NoteValue
from stemfill.song.song import (
    RESOLUTION,
    Note,
    Song,
    TempoChange,
    TimeSignature,
    Track,
)
from stemfill.song.stems import classify_track

assert RESOLUTION == gp.Duration.quarterTime  # both 960 ticks per quarter: no rescaling
DEAD_NOTE_TICKS = RESOLUTION // 4  # a dead (muted) note sounds at most a 16th
MAX_FRET = 24
MAX_DRUM_KEY = 87  # highest drum "fret" (GM key) in the fret count Guitar Pro gives drum tracks
DRUM_STRINGS = 6
MAX_STRINGS = 7
GP5_VERSION = (5, 1, 0)
SOURCE_EXTS = (".gp3", ".gp4", ".gp5")
UNROLL_LIMIT = 32  # unrolled bars at most this many times the written bars (else: written order)
_MAGIC = {b"PK\x03\x04": "Guitar Pro 7 (.gp) file", b"BCFZ": "Guitar Pro 6 (.gpx) file", b"BCFS": "Guitar Pro 6 (.gpx) file"}


# --- reading -----------------------------------------------------------------------------

def read_guitarpro(path: str | os.PathLike) -> Song:
    """Read a gp3/gp4/gp5 (or .gp/.gpx, via gpif.py) file into a Song. Any failure raises GuitarProReadError(path, reason)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise GuitarProReadError(path, f"cannot open: {e.strerror or e}") from e
    named_new = os.path.splitext(os.fspath(path))[1].lower() in (".gp", ".gpx") and head[1:4] != b"FIC"
    if head in _MAGIC or named_new:  # Guitar Pro 6-8 (gp3-5 start with a length byte and "FICHIER GUITAR PRO")
        from stemfill.song.gpif import read_gpif

        return read_gpif(path)
    try:
        tab = gp.parse(os.fspath(path))
    except Exception as e:  # PyGuitarPro raises struct.error, GPException, IndexError, ... on bad bytes
        raise GuitarProReadError(path, f"not a readable Guitar Pro 3-5 file: {one_line(e, with_type=True)}") from e
    try:
        song = song_from_gp(tab)
    except Exception as e:  # SongError (a value out of range), or a structure PyGuitarPro let through
        raise GuitarProReadError(path, f"bad data: {one_line(e, with_type=True)}") from e
    if not any(t.notes for t in song.tracks):
        raise GuitarProReadError(path, "no notes")
    return song


def play_order(headers: list) -> list[int]:
    """Indices of the measure headers in the order they are heard, repeats and alternate endings unrolled.

    A close without an open repeats from the bar after the previous finished repeat (or
    the first bar). An ending (bit k of ``repeatAlternative``) is played on pass k+1; it
    lasts up to its close, and a close inside an ending goes back while a later pass has
    an ending. An ending without a close is the last one. Falls back to written order if
    unrolling would exceed ``UNROLL_LIMIT`` times the written bars (corrupt counts).
    """
    n = len(headers)
    order: list[int] = []
    i, start, jumps, ending = 0, 0, 0, 0
    arrived_by_jump = False
    while i < n:
        h = headers[i]
        if h.isRepeatOpen and not (arrived_by_jump and i == start):
            start, jumps, ending = i, 0, 0
        arrived_by_jump = False
        if h.repeatAlternative:
            ending = h.repeatAlternative
        close = h.repeatClose > 0
        if ending and not (ending >> jumps) & 1:  # an ending for another pass
            if close:
                ending = 0
            i += 1
            continue
        order.append(i)
        if len(order) > UNROLL_LIMIT * n + 64:
            return list(range(n))
        if close:
            again = _section_endings(headers, start) >> (jumps + 1) if ending else jumps < h.repeatClose
            ending = 0
            if again:
                jumps += 1
                i, arrived_by_jump = start, True
                continue
            start, jumps = i + 1, 0
        elif h.repeatAlternative and not _section_endings(headers, start) >> (jumps + 1):
            start, jumps, ending = i + 1, 0, 0  # the last ending: the repeat is over
        i += 1
    return order


def _section_endings(headers: list, start: int) -> int:
    """Union of the ending bits from ``start`` up to the next repeat open."""
    mask = 0
    for k in range(start, len(headers)):
        if k > start and headers[k].isRepeatOpen:
            break
        mask |= max(headers[k].repeatAlternative, 0)
    return mask


def _ticks(x: int | Fraction) -> int:
    return x if isinstance(x, int) else int(round(x))  # 7-, 9-, 11-, 13-tuplets give Fractions


def song_from_gp(tab: gp.Song) -> Song:
    """Convert a parsed PyGuitarPro song (repeats unrolled). Raises SongError on invalid values."""
    headers = tab.measureHeaders
    order = play_order(headers)
    starts: list[int] = []  # song tick of each played bar
    t = 0
    sigs: list[TimeSignature] = []
    for i in order:
        h = headers[i]
        starts.append(t)
        num, den = h.timeSignature.numerator, h.timeSignature.denominator.value
        if not sigs or (sigs[-1].numerator, sigs[-1].denominator) != (num, den):
            sigs.append(TimeSignature(t, num, den))
        t += _ticks(h.length)
    tempo_at: dict[int, float] = {0: float(tab.tempo)}
    tracks = [_track_from_gp(tr, order, starts, tempo_at) for tr in tab.tracks]
    tempos = [TempoChange(k, v) for k, v in sorted(tempo_at.items())]
    tempos = [x for j, x in enumerate(tempos) if j == 0 or x.qpm != tempos[j - 1].qpm]
    return Song(tracks=tracks, tempos=tempos, time_signatures=sigs or [TimeSignature(0, 4, 4)], title=tab.title or "")


def _track_from_gp(tr: gp.Track, order: list[int], starts: list[int], tempo_at: dict[int, float]) -> Track:
    drum = bool(tr.isPercussionTrack)
    tuning = {s.number: s.value for s in tr.strings}
    capo = 0 if drum else int(tr.offset or 0)
    open_notes: dict[tuple[int, int], list] = {}  # (voice, string) -> [start, end, pitch, vel, string, fret]
    notes: list[list] = []
    for bar_start, i in zip(starts, order):
        measure = tr.measures[i]
        m0 = measure.header.start
        for v, voice in enumerate(measure.voices):
            for beat in voice.beats:
                if beat.status == gp.BeatStatus.empty:
                    continue
                b0 = bar_start + (beat.start - m0)  # int, or Fraction inside odd tuplets
                b1 = b0 + beat.duration.time
                mix = beat.effect.mixTableChange
                if mix is not None and mix.tempo is not None and mix.tempo.value > 0:
                    tempo_at[_ticks(b0)] = float(mix.tempo.value)
                for n in beat.notes:
                    key = (v, n.string)
                    if n.type == gp.NoteType.tie and key in open_notes:
                        prev = open_notes[key]
                        prev[1] = max(prev[1], b1)
                        continue
                    if n.type == gp.NoteType.rest:
                        continue
                    end = b1
                    if n.type == gp.NoteType.dead:
                        end = min(b1, b0 + DEAD_NOTE_TICKS)
                    vel = n.velocity - 16 * n.effect.ghostNote + 16 * n.effect.accentuatedNote + 32 * n.effect.heavyAccentuatedNote
                    pitch = n.value if drum else tuning[n.string] + capo + n.value
                    rec = [b0, end, pitch, min(max(vel, 1), 127), None if drum else n.string, None if drum else n.value]
                    notes.append(rec)
                    open_notes[key] = rec
    out = []
    for s, e, p, vel, string, fret in notes:
        s, e = _ticks(s), _ticks(e)
        out.append(Note(s, max(1, e - s), p, vel, string, fret))
    strings = [tuning[k] for k in sorted(tuning)]
    program = 0 if drum or tr.channel is None else max(int(tr.channel.instrument), 0)
    return Track(name=tr.name or "", program=program, is_drum=drum, notes=out,
                 tuning=None if drum or not strings else tuple(strings))


# --- writing -----------------------------------------------------------------------------

def _gp_duration(nv: NoteValue) -> gp.Duration:
    return gp.Duration(value=nv.value, isDotted=nv.dotted, tuplet=gp.Tuplet(*nv.tuplet))


def _bars_from_song(song: Song, end: int) -> list[tuple[int, int, int, int]]:
    """(start, length, numerator, denominator) per bar up to ``end``; a meter change moves to the next bar line."""
    bars: list[tuple[int, int, int, int]] = []
    sigs = song.time_signatures
    t = 0
    for k, ts in enumerate(sigs):
        length = song.bar_ticks(ts)
        stop = sigs[k + 1].time if k + 1 < len(sigs) else max(end, t + 1)
        while t < stop or (k + 1 == len(sigs) and not bars):
            bars.append((t, length, ts.numerator, ts.denominator))
            t += length
    return bars


def _channels(used: set[int], drum: bool) -> tuple[int, int]:
    if drum:
        return 9, 9
    free = [c for c in range(16) if c != 9 and c not in used]
    if not free:
        return 0, 1  # all 15 melodic channels taken: share the first pair
    a = free[0]
    b = free[1] if len(free) > 1 else a
    used.update((a, b))
    return a, b


def _new_gp_track(gsong: gp.Song, track: Track, number: int, used_channels: set[int], drum: bool,
                  tuning: tuple[int, ...], capo: int) -> gp.Track:
    ch, fx = _channels(used_channels, drum)
    channel = gp.MidiChannel(channel=ch, effectChannel=fx, instrument=0 if drum else track.program)
    name = (track.name or f"Track {number}")[:40].encode("cp1252", "replace").decode("cp1252")
    return gp.Track(gsong, number=number, name=name, isPercussionTrack=drum, fretCount=MAX_DRUM_KEY if drum else MAX_FRET,
                    strings=[gp.GuitarString(k + 1, v) for k, v in enumerate(tuning)], channel=channel, measures=[],
                    offset=capo)


def tab_of(track: Track) -> tuple[tuple[int, ...], int] | None:
    """(tuning, capo) if the track is a tab: every note on a string with a fret that gives its pitch, one capo for all.

    Frets up to 99 pass (as the reader reads them: tabs put notes past a 24-fret neck's ``fretCount``).
    """
    tuning = tuple(track.tuning or ())
    if not tuning or len(tuning) > MAX_STRINGS or not track.notes:
        return None
    capos = set()
    for n in track.notes:
        if n.string is None or n.fret is None or not 1 <= n.string <= len(tuning) or not 0 <= n.fret <= 99:
            return None
        capos.add(n.pitch - tuning[n.string - 1] - n.fret)
    if len(capos) != 1 or not 0 <= (capo := capos.pop()) <= MAX_FRET:
        return None
    return tuning, capo


def _layout(track: Track, grid: Grid) -> tuple[bool, tuple[int, ...], int, list[Note], list[str]]:
    """(drum, tuning, capo, notes on the grid with string and fret, notes on what changed) for one track."""
    stem = track.stem or classify_track(track)
    drum = track.is_drum or stem == "drums"
    notes = []
    for n in track.notes:
        a, b = grid.snap_span(n.start, n.end)
        notes.append(replace(n, start=a, duration=b - a))
    said: list[str] = []
    if drum:
        return drum, (0,) * DRUM_STRINGS, 0, notes, said
    tab = tab_of(track)
    if tab is not None:
        return drum, tab[0], tab[1], notes, said
    tuning = tuple(track.tuning or ())[:MAX_STRINGS] or choose_tuning([n.pitch for n in notes], stem, MAX_FRET)
    fretted = fret_notes(notes, tuning, MAX_FRET, hand=stem in ("bass", "guitar"))  # a piano's chords need no hand
    if fretted.moved:
        said.append(f"{_count(len(fretted.moved), 'note')} moved by octaves onto the neck")
    if fretted.dropped:
        said.append(f"{_count(len(fretted.dropped), 'note')} dropped from chords no hand can hold")
    return drum, tuning, 0, fretted.notes, said


def _place(notes: list[Note], n_strings: int, drum: bool) -> tuple[list[list[int]], int, int]:
    """(records [start, end, string, fret, velocity, voice], duplicates merged, notes cut short) for notes with
    strings (drums: any free string, GM key as fret).

    A note goes in voice 1 if its string is free there, else in voice 2, else it cuts short the
    note that holds its string in voice 1 (or is left out if that one starts at the same time).
    Duplicates (same pitch and start) merge into one: drum hits always (the longest, loudest), a
    tab's note where it finds no place (one of the same pitch and start is there).
    """
    merged = cut = 0
    if drum:
        hits: dict[tuple[int, int], tuple[int, int]] = {}  # (start, key) -> (longest duration, loudest velocity)
        for n in notes:
            key = (n.start, min(max(n.pitch, 0), MAX_DRUM_KEY))
            d, v = hits.get(key, (0, 0))
            hits[key] = (max(d, n.duration), max(v, n.velocity))
        merged = len(notes) - len(hits)
        notes = [Note(s, d, k, v) for (s, k), (d, v) in sorted(hits.items())]
    seen: set[tuple[int, int]] = set()  # (start, pitch) placed
    busy: list[dict[int, list[int]]] = [{}, {}]  # per voice: string -> record sounding on it
    placed: list[list[int]] = []
    for n in sorted(notes, key=lambda n: (n.start, n.pitch)):
        if drum:
            strings = range(1, n_strings + 1)
            free = [(v, s) for v in (0, 1) for s in strings if s not in busy[v] or busy[v][s][1] <= n.start]
            fret = n.pitch
        else:
            free = [(v, n.string) for v in (0, 1) if n.string not in busy[v] or busy[v][n.string][1] <= n.start]
            fret = n.fret
        if free:
            voice, string = free[0]
        else:
            cands = [s for s in (strings if drum else [n.string]) if busy[0][s][0] < n.start]
            if not cands:
                merged += (n.start, n.pitch) in seen
                continue
            string, voice = min(cands, key=lambda s: busy[0][s][1]), 0
            cut += busy[0][string][1] > n.start
            busy[0][string][1] = n.start
        rec = [n.start, n.end, string, fret, n.velocity, voice]
        busy[voice][string] = rec
        placed.append(rec)
        seen.add((n.start, n.pitch))
    return placed, merged, cut


def _fill_measure(measure: gp.Measure, m0: int, length: int, placed: list[list[int]], marks: dict[int, float],
                  grid: Grid) -> None:
    """Beats for one bar from placed records [start, end, string, fret, velocity, voice] (ties across beats and bars)."""
    m1 = m0 + length
    bounds = grid.tuplet_bounds(m0, m1)
    for v, voice in enumerate(measure.voices[:2]):
        inside = [r for r in placed if r[5] == v and r[0] < m1 and r[1] > m0]
        if v and not inside:
            continue
        cuts = {m0, m1} | bounds | {min(max(t, m0), m1) for r in inside for t in r[:2]}
        if v == 0:
            cuts |= {t for t in marks if m0 <= t < m1}
        cuts = sorted(cuts)
        for a, b in zip(cuts, cuts[1:]):
            sounding = [r for r in inside if r[0] < b and r[1] > a]
            t = a
            for nv in grid.values(a, b):
                beat = gp.Beat(voice, duration=_gp_duration(nv), status=gp.BeatStatus.normal if sounding else gp.BeatStatus.rest)
                if v == 0 and t in marks:
                    beat.effect.mixTableChange = gp.MixTableChange(tempo=gp.MixTableItem(value=max(1, int(round(marks[t])))), hideTempo=False)
                for s0, _, string, fret, vel, _ in sounding:
                    kind = gp.NoteType.normal if s0 == t else gp.NoteType.tie
                    beat.notes.append(gp.Note(beat, value=fret, velocity=min(max(vel, 15), 127), string=string, type=kind))
                voice.beats.append(beat)
                t += nv.ticks
    _pad_voices(measure)


def _pad_voices(measure: gp.Measure) -> None:
    """Guitar Pro writes at least one (empty) beat in each voice; do the same."""
    for voice in measure.voices:
        if not voice.beats:
            voice.beats.append(gp.Beat(voice, status=gp.BeatStatus.empty))


def _add_track(gsong: gp.Song, track: Track, bars: list[tuple[int, int]], number: int, used: set[int],
               marks: dict[int, float]) -> tuple[gp.Track, list[str]]:
    grid = Grid(bars, ((n.start, n.end) for n in track.notes), marks)
    marks = {grid.snap(t): q for t, q in marks.items()}
    drum, tuning, capo, notes, said = _layout(track, grid)
    gtrack = _new_gp_track(gsong, track, number, used, drum, tuning, capo)
    placed, merged, cut = _place(notes, len(tuning), drum)
    starts = [m0 for m0, _ in bars]
    per_bar: list[list[list[int]]] = [[] for _ in bars]
    for rec in placed:  # each note goes to every bar it sounds in
        k = max(bisect.bisect_right(starts, rec[0]) - 1, 0)
        while k < len(bars) and bars[k][0] < rec[1]:
            per_bar[k].append(rec)
            k += 1
    for (m0, length), header, recs in zip(bars, gsong.measureHeaders, per_bar):
        measure = gp.Measure(gtrack, header)
        _fill_measure(measure, m0, length, recs, marks, grid)
        gtrack.measures.append(measure)
    if not drum and tab_of(track) is None:
        said.insert(0, f"tuned {fretting.tuning_name(tuning)}")
    if grid.inexact:
        said.append(f"times moved to the nearest note value in {_count(grid.inexact, 'beat')} (see docs/guitarpro.md)")
    if merged:
        said.append(f"{_count(merged, 'duplicate note')} merged (same pitch and start)")
    if cut:
        said.append(f"{_count(cut, 'note')} cut short where a later note takes its string")
    if (lost := len(notes) - merged - len(placed)) > 0:
        said.append(f"{_count(lost, 'note')} left out: more at once than strings")
    return gtrack, [f"{gtrack.name}: {s}" for s in said]


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _notes_end(tracks: list[Track]) -> int:
    return max((n.end for t in tracks for n in t.notes), default=0)


def write_guitarpro(song: Song, path: str | os.PathLike, source: str | os.PathLike | None = None, *,
                    shown: str | os.PathLike | None = None) -> list[str]:
    """Write ``song`` as Guitar Pro 5 to ``path``; return one line per track on what the tab could not keep as given.

    Without ``source`` the tab is built from the Song: one bar per bar of its meter, the
    tempo map as mix-table tempo changes on the first track (whole qpm: Guitar Pro 5 has no
    fractions), drums as a percussion track (channel 10, GM key as fret, each hit its own
    length), other tracks as tab. A track read from a tab keeps its tuning, capo, strings
    and frets; any other (a MIDI track, a part stemfill added) gets a tuning chosen for its
    range and a fingering from ``fretting``. Durations: see ``rhythm`` (every start and end
    on a beat's grid of straight notes or tuplets is exact; long or overlapping notes are
    tied across beats and bars; a note whose string is taken goes to voice 2).

    With a gp3/gp4/gp5 ``source`` (the file the Song was read from) the source's tracks
    are written exactly as parsed, effects included, and the Song's tracks after the
    first ``len(source tracks)`` (the new ones; read_guitarpro keeps file order) are
    appended. Edits to the first tracks in the Song are ignored. The Song's timeline is
    the unrolled one, so a source with repeats is written unrolled (its repeat marks
    removed, bars copied in the order heard) to keep old and new tracks in time.
    Values of the source that Guitar Pro 5 stores otherwise are fixed, one line each in the
    returned list: a dead grace note (fret -1 in gp3/gp4) becomes GP5's dead grace note on fret 0.
    Any other ``source`` (a MIDI, .gp or .gpx file) is ignored: the tab is built from the Song.
    ``shown``: the path errors name (the user's, where ``path`` is a hidden temp file; default ``path``).
    """
    shown = path if shown is None else shown
    song = song.with_resolution(RESOLUTION)
    said: list[str] = []
    if source is not None and os.path.splitext(os.fspath(source))[1].lower() in SOURCE_EXTS:
        gsong = _source_with_tracks(song, source, said)
    else:
        gsong = _song_to_gp(song, said)
    try:
        gp.write(gsong, os.fspath(path), version=GP5_VERSION)
    except Exception as e:  # PyGuitarPro: a value its GP5 format cannot hold ("writing track 3, measure 21, ...")
        where = re.search(r"track (\d+), measure (\d+)", str(e))
        at = ""
        if where and 0 < int(where[1]) <= len(gsong.tracks):
            at = f" in track {where[1]} ({gsong.tracks[int(where[1]) - 1].name!r}), bar {where[2]}"
        raise WriteError(f"{shown}: cannot write Guitar Pro 5: a value{at} is out of the range the format "
                         f"stores") from e
    return said


def _fix_source_values(src: gp.Song, said: list[str]) -> None:
    """Make the parsed source's values ones Guitar Pro 5 stores, one line in ``said`` per track fixed.

    gp3/gp4 mark a dead grace note by fret -1, GP5 by a flag (PyGuitarPro reads both as
    ``isDead``): such a grace note gets fret 0 and stays dead. A grace note on a fret outside
    0..99 is left out (the note it leads to stays).
    """
    for tr in src.tracks:
        dead = dropped = 0
        for m in tr.measures:
            for voice in m.voices:
                for beat in voice.beats:
                    for n in beat.notes:
                        g = n.effect.grace
                        if g is None:
                            continue
                        if g.fret == -1 or (g.isDead and not 0 <= g.fret <= 99):
                            g.fret, g.isDead = 0, True
                            dead += 1
                        elif not 0 <= g.fret <= 99:
                            n.effect.grace = None
                            dropped += 1
        name = tr.name or f"Track {tr.number}"
        if dead:
            said.append(f"{name}: {_count(dead, 'dead grace note')} (fret -1 in the source) written as GP5 writes "
                        "them: fret 0, dead")
        if dropped:
            said.append(f"{name}: {_count(dropped, 'grace note')} on a fret outside 0-99 left out "
                        "(the notes they lead to are kept)")


def _song_to_gp(song: Song, said: list[str]) -> gp.Song:
    bars = _bars_from_song(song, _notes_end(song.tracks))
    gsong = gp.Song(title=song.title.encode("cp1252", "replace").decode("cp1252"), tempo=max(1, int(round(song.tempos[0].qpm))))
    gsong.tracks = []
    gsong.measureHeaders = []
    for k, (start, _, num, den) in enumerate(bars, 1):
        gsong.addMeasureHeader(gp.MeasureHeader(number=k, start=RESOLUTION + start,
                                                timeSignature=gp.TimeSignature(num, gp.Duration(value=den))))
    marks = {t.time: t.qpm for t in song.tempos[1:]}
    used: set[int] = set()
    tracks = song.tracks or [Track(name="Track 1")]
    for k, track in enumerate(tracks):
        gtrack, lines = _add_track(gsong, track, [(a, b) for a, b, _, _ in bars], k + 1, used, marks if k == 0 else {})
        gsong.tracks.append(gtrack)
        said.extend(lines)
    return gsong


def _source_with_tracks(song: Song, source: str | os.PathLike, said: list[str]) -> gp.Song:
    try:
        src = gp.parse(os.fspath(source))
    except Exception as e:
        raise GuitarProReadError(source, f"not a readable Guitar Pro 3-5 file: {one_line(e, with_type=True)}") from e
    src.clipboard = None  # a clipboard excerpt is written as a whole file
    # the song's tracks: the source's, in order, less any it dropped (``--replace``), then new ones
    keep: list[int] = []
    for i, tr in enumerate(src.tracks):
        if len(keep) < len(song.tracks) and song.tracks[len(keep)].name == (tr.name or ""):
            keep.append(i)
    if not keep:
        raise WriteError(f"{source}: the song's first tracks are not the source's tracks "
                         f"(names {[t.name for t in src.tracks]}); write without the source")
    src.tracks = [src.tracks[i] for i in keep]
    for k, tr in enumerate(src.tracks, 1):
        tr.number = k
    _fix_source_values(src, said)
    n_src = len(src.tracks)
    order = play_order(src.measureHeaders)
    if order != list(range(len(src.measureHeaders))):
        _unroll_source(src, order)
    bars: list[tuple[int, int]] = []
    t = 0
    for h in src.measureHeaders:
        bars.append((t, _ticks(h.length)))
        t += bars[-1][1]
    new = song.tracks[n_src:]
    end = _notes_end(new)
    last = src.measureHeaders[-1]
    while t < end:  # new notes past the source's end: more bars of the last meter, rests in old tracks
        h = gp.MeasureHeader(number=len(src.measureHeaders) + 1, start=RESOLUTION + t,
                             timeSignature=copy.deepcopy(last.timeSignature), keySignature=last.keySignature)
        src.addMeasureHeader(h)
        bars.append((t, _ticks(h.length)))
        for tr in src.tracks:
            m = gp.Measure(tr, h)
            _fill_measure(m, t, bars[-1][1], [], {}, Grid([bars[-1]], []))
            tr.measures.append(m)
        t += bars[-1][1]
    used = {c for tr in src.tracks if tr.channel is not None for c in (tr.channel.channel, tr.channel.effectChannel)}
    for tr in src.tracks:
        for m in tr.measures:
            _pad_voices(m)
    for k, track in enumerate(new):
        gtrack, lines = _add_track(src, track, bars, n_src + k + 1, used, {})
        src.tracks.append(gtrack)
        said.extend(lines)
    return src


def _unroll_source(src: gp.Song, order: list[int]) -> None:
    """Rewrite the parsed source bar by bar in play order, without repeat marks (tracks deep-copied per bar)."""
    old = src.measureHeaders
    headers = []
    for k, i in enumerate(order, 1):
        h = copy.copy(old[i])
        h.number, h.isRepeatOpen, h.repeatClose, h.repeatAlternative = k, False, -1, 0
        headers.append(h)
    for tr in src.tracks:
        measures = []
        for i, h in zip(order, headers):
            memo = {id(tr): tr, id(old[i]): h, id(src): src}
            measures.append(copy.deepcopy(tr.measures[i], memo))
        tr.measures = measures
    src.measureHeaders = []
    for h in headers:
        src.addMeasureHeader(h)
