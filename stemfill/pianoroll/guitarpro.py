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
Guitar Pro 6/7 files (.gpx/.gp) are not read by PyGuitarPro: GuitarProReadError.

Writing
-------
``write_guitarpro`` writes Guitar Pro 5. Without a source it builds the whole tab from
the Song; with a Guitar Pro ``source`` it keeps the source's tracks as they are
(effects included) and appends the Song's tracks beyond the first ``len(source
tracks)`` ones; see the function for the details.
"""

from __future__ import annotations

import bisect
import copy
import os
from fractions import Fraction

import guitarpro as gp

from stemfill.errors import GuitarProReadError, WriteError
from stemfill.pianoroll.roll import NEW_TRACK
from stemfill.pianoroll.song import RESOLUTION, Note, Song, TempoChange, TimeSignature, Track
from stemfill.pianoroll.stems import classify_track

assert RESOLUTION == gp.Duration.quarterTime  # both 960 ticks per quarter: no rescaling
DEAD_NOTE_TICKS = RESOLUTION // 4  # a dead (muted) note sounds at most a 16th
GRID = RESOLUTION // 24  # write grid: 40 ticks (64th triplet); 80-tick roll steps are exact
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
    """Read a gp3/gp4/gp5 file into a Song. Any failure raises GuitarProReadError(path, reason)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise GuitarProReadError(path, f"cannot open: {e.strerror or e}") from e
    if head in _MAGIC:
        raise GuitarProReadError(path, f"{_MAGIC[head]}: not supported (PyGuitarPro reads gp3/gp4/gp5); export it as .gp5")
    try:
        tab = gp.parse(os.fspath(path))
    except Exception as e:  # PyGuitarPro raises struct.error, GPException, IndexError, ... on bad bytes
        raise GuitarProReadError(path, f"not a readable Guitar Pro 3-5 file: {_one_line(e)}") from e
    try:
        song = song_from_gp(tab)
    except Exception as e:  # SongError (a value out of range), or a structure PyGuitarPro let through
        raise GuitarProReadError(path, f"bad data: {_one_line(e)}") from e
    if not any(t.notes for t in song.tracks):
        raise GuitarProReadError(path, "no notes")
    return song


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or "(no message)"
    return f"{type(e).__name__}: {text[:300]}"


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

def _duration_table() -> list[tuple[int, int, bool, bool]]:
    """(ticks, value, dotted, triplet) for every GP duration that is a multiple of GRID, longest first."""
    out = []
    for value in (1, 2, 4, 8, 16, 32, 64):
        base = 4 * RESOLUTION // value
        for ticks, dotted, triplet in ((base, False, False), (base * 3 // 2, True, False), (base * 2 // 3, False, True)):
            if ticks % GRID == 0:
                out.append((ticks, value, dotted, triplet))
    return sorted(out, key=lambda d: (-d[0], d[2], d[3]))


_DURATIONS = _duration_table()


def split_ticks(length: int) -> list[tuple[int, int, bool, bool]]:
    """Greedy split of ``length`` ticks (a multiple of GRID) into GP durations, longest first."""
    pieces = []
    for d in _DURATIONS:
        while length >= d[0]:
            pieces.append(d)
            length -= d[0]
    return pieces


def _gp_duration(d: tuple[int, int, bool, bool]) -> gp.Duration:
    _, value, dotted, triplet = d
    return gp.Duration(value=value, isDotted=dotted, tuplet=gp.Tuplet(3, 2) if triplet else gp.Tuplet(1, 1))


def _q(tick: int) -> int:
    return int(round(tick / GRID)) * GRID


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


def _new_gp_track(gsong: gp.Song, track: Track, number: int, used_channels: set[int]) -> tuple[gp.Track, tuple[int, ...]]:
    stem = track.stem or classify_track(track)
    drum = track.is_drum or stem == "drums"
    if drum:
        tuning: tuple[int, ...] = (0,) * DRUM_STRINGS
    else:
        tuning = tuple(track.tuning or ())[:MAX_STRINGS] or NEW_TRACK["bass" if stem == "bass" else "guitar"]["tuning"]
    ch, fx = _channels(used_channels, drum)
    channel = gp.MidiChannel(channel=ch, effectChannel=fx, instrument=0 if drum else track.program)
    name = (track.name or f"Track {number}")[:40].encode("cp1252", "replace").decode("cp1252")
    gtrack = gp.Track(gsong, number=number, name=name, isPercussionTrack=drum, fretCount=MAX_DRUM_KEY if drum else MAX_FRET,
                      strings=[gp.GuitarString(k + 1, v) for k, v in enumerate(tuning)], channel=channel, measures=[])
    return gtrack, tuning


def _place_pitched(notes: list[Note], tuning: tuple[int, ...]) -> list[list[int]]:
    """Quantize and put each note on a string: [start, end, string, fret, velocity], times in ticks.

    Notes starting together are placed as a chord: their own string/fret when these match
    the pitch and the strings are free, else the assignment (higher pitch on a higher
    string) with the lowest fret sum over free strings, frets 0..24. Pitches below the
    lowest string go up, above the top fret down, by octaves. A note that finds no free
    string cuts short the note on a usable string that ends first (or is dropped if
    that note starts at the same time: more notes than strings).
    """
    low, high = min(tuning), max(tuning) + MAX_FRET
    busy: dict[int, list[int] | None] = {s: None for s in range(1, len(tuning) + 1)}
    groups: dict[int, list[Note]] = {}
    for n in notes:
        groups.setdefault(_q(n.start), []).append(n)
    placed: list[list[int]] = []
    for s0 in sorted(groups):
        chord = []
        for n in sorted(groups[s0], key=lambda n: n.pitch):
            p = n.pitch
            while p < low:
                p += 12
            while p > high:
                p -= 12
            chord.append((n, p, max(s0 + GRID, _q(n.end))))
        free = [s for s in busy if busy[s] is None or busy[s][1] <= s0]
        strings = _keep_strings(chord, tuning, free) or _chord_strings([p for _, p, _ in chord], tuning, free)
        for k, (n, p, s1) in enumerate(chord):
            string = strings[k] if strings else _steal_string(p, tuning, busy, s0)
            if string is None:
                continue
            rec = [s0, s1, string, p - tuning[string - 1], n.velocity]
            busy[string] = rec
            placed.append(rec)
    return placed


def _keep_strings(chord: list, tuning: tuple[int, ...], free: list[int]) -> list[int] | None:
    strings = [n.string for n, _, _ in chord]
    ok = all(s in free and n.fret == p - tuning[s - 1] and 0 <= n.fret <= MAX_FRET for (n, p, _), s in zip(chord, strings))
    return strings if ok and len(set(strings)) == len(strings) else None


def _chord_strings(pitches: list[int], tuning: tuple[int, ...], free: list[int]) -> list[int] | None:
    """Strings for ascending ``pitches`` on ascending-pitch free strings, lowest fret sum; None if impossible."""
    strs = sorted(free, key=lambda s: (tuning[s - 1], -s))  # low strings first
    k, m = len(pitches), len(strs)
    if k > m:
        return None
    inf = float("inf")
    # best[i][j]: cost of placing pitches[i:] on strs[j:]
    best = [[inf] * (m + 1) for _ in range(k + 1)]
    for j in range(m + 1):
        best[k][j] = 0
    for i in range(k - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            fret = pitches[i] - tuning[strs[j] - 1]
            take = fret + best[i + 1][j + 1] if 0 <= fret <= MAX_FRET else inf
            best[i][j] = min(take, best[i][j + 1])
    if best[0][0] == inf:
        return None
    out, j = [], 0
    for i in range(k):
        while True:
            fret = pitches[i] - tuning[strs[j] - 1]
            if 0 <= fret <= MAX_FRET and fret + best[i + 1][j + 1] == best[i][j]:
                out.append(strs[j])
                j += 1
                break
            j += 1
    return out


def _steal_string(p: int, tuning: tuple[int, ...], busy: dict, s0: int) -> int | None:
    usable = [s for s in busy if 0 <= p - tuning[s - 1] <= MAX_FRET]
    free = [s for s in usable if busy[s] is None or busy[s][1] <= s0]
    if free:
        return min(free, key=lambda s: (p - tuning[s - 1], s))
    cut = [s for s in usable if busy[s][0] < s0]
    if not cut:
        return None
    string = min(cut, key=lambda s: busy[s][1])
    busy[string][1] = s0
    return string


def _place_drums(notes: list[Note], bar_ends: list[int]) -> list[list[int]]:
    """Drum hits: one beat each, lasting up to the next hit or bar line (first GP duration of that gap)."""
    by_start: dict[int, dict[int, int]] = {}
    for n in notes:
        key = min(max(n.pitch, 0), MAX_DRUM_KEY)
        hits = by_start.setdefault(_q(n.start), {})
        hits[key] = max(hits.get(key, 0), n.velocity)
    starts = sorted(by_start)
    placed: list[list[int]] = []
    for k, s0 in enumerate(starts):
        bar_end = bar_ends[bisect.bisect_right(bar_ends, s0)] if s0 < bar_ends[-1] else s0 + GRID
        stop = min(starts[k + 1] if k + 1 < len(starts) else bar_end, bar_end)
        pieces = split_ticks(max(stop - s0, GRID) // GRID * GRID) or [_DURATIONS[-1]]
        for string, (key, vel) in enumerate(sorted(by_start[s0].items())[:DRUM_STRINGS], 1):
            placed.append([s0, s0 + pieces[0][0], string, key, vel])
    return placed


def _fill_measure(measure: gp.Measure, m0: int, length: int, placed: list[list[int]], marks: dict[int, float]) -> None:
    """Beats for one bar from placed notes [start, end, string, fret, velocity] (ties across beats and bars)."""
    voice = measure.voices[0]
    m1 = m0 + length
    inside = [r for r in placed if r[0] < m1 and r[1] > m0]
    top = m0 + (length // GRID) * GRID
    cuts = {m0, top} | {min(max(r[0], m0), top) for r in inside} | {min(max(r[1], m0), top) for r in inside}
    cuts |= {t for t in marks if m0 <= t < top}
    cuts = sorted(cuts)
    for a, b in zip(cuts, cuts[1:]):
        sounding = [r for r in inside if r[0] < b and r[1] > a]
        t = a
        for d in split_ticks(b - a):
            beat = gp.Beat(voice, duration=_gp_duration(d), status=gp.BeatStatus.normal if sounding else gp.BeatStatus.rest)
            if t in marks:
                beat.effect.mixTableChange = gp.MixTableChange(tempo=gp.MixTableItem(value=max(1, int(round(marks[t])))), hideTempo=False)
            for s0, _, string, fret, vel in sounding:
                kind = gp.NoteType.normal if s0 == t else gp.NoteType.tie
                beat.notes.append(gp.Note(beat, value=fret, velocity=min(max(vel, 15), 127), string=string, type=kind))
            voice.beats.append(beat)
            t += d[0]
    _pad_voices(measure)


def _pad_voices(measure: gp.Measure) -> None:
    """Guitar Pro writes at least one (empty) beat in each voice; do the same."""
    for voice in measure.voices:
        if not voice.beats:
            voice.beats.append(gp.Beat(voice, status=gp.BeatStatus.empty))


def _add_track(gsong: gp.Song, track: Track, bars: list[tuple[int, int]], number: int, used: set[int],
               marks: dict[int, float]) -> gp.Track:
    gtrack, tuning = _new_gp_track(gsong, track, number, used)
    if gtrack.isPercussionTrack:
        placed = _place_drums(track.notes, [a + b for a, b in bars])
    else:
        placed = _place_pitched(track.notes, tuning)
    starts = [m0 for m0, _ in bars]
    per_bar: list[list[list[int]]] = [[] for _ in bars]
    for rec in placed:  # each note goes to every bar it sounds in
        k = max(bisect.bisect_right(starts, rec[0]) - 1, 0)
        while k < len(bars) and bars[k][0] < rec[1]:
            per_bar[k].append(rec)
            k += 1
    for (m0, length), header, recs in zip(bars, gsong.measureHeaders, per_bar):
        measure = gp.Measure(gtrack, header)
        _fill_measure(measure, m0, length, recs, marks)
        gtrack.measures.append(measure)
    return gtrack


def _notes_end(tracks: list[Track]) -> int:
    return max((_q(n.end) for t in tracks for n in t.notes), default=0)


def write_guitarpro(song: Song, path: str | os.PathLike, source: str | os.PathLike | None = None) -> None:
    """Write ``song`` as Guitar Pro 5 to ``path``.

    Without ``source`` the tab is built from the Song: one bar per bar of its meter,
    the tempo map as mix-table tempo changes on the first track, drums as a percussion
    track (channel 10, GM key as fret), other tracks as tab in their tuning (bass or
    guitar standard tuning by default). Times are rounded to ``GRID`` (40) ticks, so
    notes on the 12-per-quarter roll grid come back exactly; long or overlapping notes
    are split into beats joined by ties. Drum hits last up to the next hit.

    With a gp3/gp4/gp5 ``source`` (the file the Song was read from) the source's tracks
    are written exactly as parsed, effects included, and the Song's tracks after the
    first ``len(source tracks)`` (the new ones; read_guitarpro keeps file order) are
    appended. Edits to the first tracks in the Song are ignored. The Song's timeline is
    the unrolled one, so a source with repeats is written unrolled (its repeat marks
    removed, bars copied in the order heard) to keep old and new tracks in time.
    Any other ``source`` (a MIDI file) is ignored: the tab is built from the Song.
    """
    song = song.with_resolution(RESOLUTION)
    if source is not None and os.path.splitext(os.fspath(source))[1].lower() in SOURCE_EXTS:
        gsong = _source_with_tracks(song, source)
    else:
        gsong = _song_to_gp(song)
    try:
        gp.write(gsong, os.fspath(path), version=GP5_VERSION)
    except Exception as e:
        raise WriteError(f"{path}: cannot write Guitar Pro 5: {_one_line(e)}") from e


def _song_to_gp(song: Song) -> gp.Song:
    bars = _bars_from_song(song, _notes_end(song.tracks))
    gsong = gp.Song(title=song.title.encode("cp1252", "replace").decode("cp1252"), tempo=max(1, int(round(song.tempos[0].qpm))))
    gsong.tracks = []
    gsong.measureHeaders = []
    for k, (start, _, num, den) in enumerate(bars, 1):
        gsong.addMeasureHeader(gp.MeasureHeader(number=k, start=RESOLUTION + start,
                                                timeSignature=gp.TimeSignature(num, gp.Duration(value=den))))
    marks = {_q(t.time): t.qpm for t in song.tempos[1:]}
    used: set[int] = set()
    tracks = song.tracks or [Track(name="Track 1")]
    for k, track in enumerate(tracks):
        gsong.tracks.append(_add_track(gsong, track, [(a, b) for a, b, _, _ in bars], k + 1, used, marks if k == 0 else {}))
    return gsong


def _source_with_tracks(song: Song, source: str | os.PathLike) -> gp.Song:
    try:
        src = gp.parse(os.fspath(source))
    except Exception as e:
        raise GuitarProReadError(source, f"not a readable Guitar Pro 3-5 file: {_one_line(e)}") from e
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
            _fill_measure(m, t, bars[-1][1], [], {})
            tr.measures.append(m)
        t += bars[-1][1]
    used = {c for tr in src.tracks if tr.channel is not None for c in (tr.channel.channel, tr.channel.effectChannel)}
    for tr in src.tracks:
        for m in tr.measures:
            _pad_voices(m)
    for k, track in enumerate(new):
        src.tracks.append(_add_track(src, track, bars, n_src + k + 1, used, {}))
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
