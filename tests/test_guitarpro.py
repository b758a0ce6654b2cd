"""Guitar Pro reader/writer: real files, tiny tabs built in code, round trips, corrupt bytes."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import guitarpro as gp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stemfill.errors import GuitarProReadError, WriteError
from stemfill.song.fretting import BASS_TUNINGS, GUITAR_TUNINGS
from stemfill.song.guitarpro import play_order, read_guitarpro, write_guitarpro
from stemfill.song.io import read_song, write_song
from stemfill.song.rhythm import split_straight
from stemfill.pianoroll.roll import NEW_TRACK, new_track
from stemfill.song.song import Note, Song, TempoChange, TimeSignature, Track

Q = 960  # ticks per quarter
STD = (64, 59, 55, 50, 45, 40)
NORMAL, TIE, DEAD = gp.NoteType.normal, gp.NoteType.tie, gp.NoteType.dead


def gpdir(shared_data: Path) -> Path:
    return shared_data / "guitarpro"


# --- tiny tabs built in code ------------------------------------------------------------

def dur(value: int, dotted: bool = False, tuplet: tuple[int, int] = (1, 1)) -> gp.Duration:
    return gp.Duration(value=value, isDotted=dotted, tuplet=gp.Tuplet(*tuplet))


def build_tab(path: Path, bars, *, tuning=STD, percussion=False, tempo=120, sigs=None, capo=0, headers=None) -> Path:
    """bars: [voice1 beats, voice2 beats?] per bar; a beat is (Duration, [(string, fret, type, kw)...]) or a dict."""
    song = gp.Song(tempo=tempo)
    song.measureHeaders = []
    track = song.tracks[0]
    track.measures = []
    track.strings = [gp.GuitarString(i + 1, v) for i, v in enumerate(tuning)]
    track.offset = capo
    if percussion:
        track.isPercussionTrack = True
        track.channel = gp.MidiChannel(channel=9, effectChannel=9, instrument=0)
    for k, voices in enumerate(bars):
        num, den = (sigs[k] if sigs else (4, 4))
        h = gp.MeasureHeader(number=k + 1, timeSignature=gp.TimeSignature(num, gp.Duration(value=den)))
        for key, value in (headers or {}).get(k, {}).items():
            setattr(h, key, value)
        song.addMeasureHeader(h)
        m = gp.Measure(track, h)
        for vi, beats in enumerate(voices):
            voice = m.voices[vi]
            for spec in beats:
                d, notes, *extra = spec
                beat = gp.Beat(voice, duration=d, status=gp.BeatStatus.normal if notes else gp.BeatStatus.rest)
                if extra:
                    beat.effect.mixTableChange = gp.MixTableChange(tempo=gp.MixTableItem(value=extra[0]), hideTempo=False)
                for string, fret, typ, *kw in notes:
                    note = gp.Note(beat, value=fret, string=string, type=typ)
                    for key, value in (kw[0] if kw else {}).items():
                        setattr(note.effect, key, value)
                    beat.notes.append(note)
                voice.beats.append(beat)
        for voice in m.voices:
            if not voice.beats:
                voice.beats.append(gp.Beat(voice, status=gp.BeatStatus.empty))
        track.measures.append(m)
    gp.write(song, str(path), version=(5, 1, 0))
    return path


def spans(track: Track) -> list[tuple[int, int, int]]:
    return [(n.start, n.duration, n.pitch) for n in track.notes]


def test_ties_merge_within_and_across_bars(tmp_path):
    bars = [
        [[(dur(4), [(1, 2, NORMAL)]), (dur(4), [(1, 2, TIE)]), (dur(2), [(1, 2, NORMAL)])]],
        [[(dur(2), [(1, 2, TIE)]), (dur(4), []), (dur(4), [(2, 0, NORMAL)])]],
    ]
    song = read_guitarpro(build_tab(tmp_path / "ties.gp5", bars))
    assert spans(song.tracks[0]) == [(0, 2 * Q, 66), (2 * Q, 4 * Q, 66), (7 * Q, Q, 59)]
    assert song.tracks[0].notes[0].string == 1 and song.tracks[0].notes[0].fret == 2


def test_tuplets_dots_and_rests(tmp_path):
    trip = [(dur(8, tuplet=(3, 2)), [(1, k, NORMAL)]) for k in range(3)]  # 3 x 320
    quint = [(dur(16, tuplet=(5, 4)), [(2, k, NORMAL)]) for k in range(5)]  # 5 x 192
    bars = [[trip + [(dur(4, dotted=True), [(3, 0, NORMAL)]), (dur(8), [])] + quint]]
    notes = spans(read_guitarpro(build_tab(tmp_path / "tuplets.gp5", bars)).tracks[0])
    assert [(s, d) for s, d, _ in notes] == [(0, 320), (320, 320), (640, 320), (960, 1440)] + [(2880 + 192 * k, 192) for k in range(5)]


def test_two_voices(tmp_path):
    bars = [[[(dur(1), [(6, 0, NORMAL)])], [(dur(4), [(1, k, NORMAL)]) for k in range(4)]]]
    notes = spans(read_guitarpro(build_tab(tmp_path / "voices.gp5", bars)).tracks[0])
    assert notes == [(0, 4 * Q, 40), (0, Q, 64), (Q, Q, 65), (2 * Q, Q, 66), (3 * Q, Q, 67)]


def test_tempo_and_time_signature_changes(tmp_path):
    bars = [
        [[(dur(2), [(1, 0, NORMAL)]), (dur(4), [])]],  # 3/4
        [[(dur(4), [(1, 0, NORMAL)]), (dur(4), [(1, 1, NORMAL)], 90), (dur(4), []), (dur(8), [])]],  # 7/8
        [[(dur(1), [(1, 3, NORMAL)])]],  # 4/4
    ]
    song = read_guitarpro(build_tab(tmp_path / "meter.gp5", bars, sigs=[(3, 4), (7, 8), (4, 4)], tempo=140))
    assert song.tempos == [TempoChange(0, 140.0), TempoChange(3 * Q + Q, 90.0)]
    assert song.time_signatures == [TimeSignature(0, 3, 4), TimeSignature(3 * Q, 7, 8), TimeSignature(3 * Q + 7 * Q // 2, 4, 4)]
    assert spans(song.tracks[0])[-1] == (3 * Q + 7 * Q // 2, 4 * Q, 67)


def test_dead_and_ghost_notes(tmp_path):
    bars = [[[(dur(2), [(1, 0, DEAD)]), (dur(2), [(1, 5, NORMAL, {"ghostNote": True})])]]]
    a, b = read_guitarpro(build_tab(tmp_path / "dead.gp5", bars)).tracks[0].notes
    assert (a.start, a.duration, a.pitch) == (0, Q // 4, 64)  # a dead note is a short hit
    assert (b.start, b.duration, b.pitch) == (2 * Q, 2 * Q, 69) and b.velocity < a.velocity


def test_drum_track_keys_and_capo(tmp_path):
    drums = build_tab(tmp_path / "drums.gp5", [[[(dur(4), [(1, 36, NORMAL), (2, 42, NORMAL)]), (dur(2, dotted=True), [(1, 38, NORMAL)])]]],
                      tuning=(0,) * 6, percussion=True)
    t = read_guitarpro(drums).tracks[0]
    assert t.is_drum and t.tuning is None and spans(t) == [(0, Q, 36), (0, Q, 42), (Q, 3 * Q, 38)]
    capo = read_guitarpro(build_tab(tmp_path / "capo.gp5", [[[(dur(1), [(2, 3, NORMAL)])]]], capo=2)).tracks[0]
    assert capo.tuning == STD and capo.notes[0].pitch == 59 + 2 + 3 and (capo.notes[0].string, capo.notes[0].fret) == (2, 3)


def test_repeats_and_alternate_endings_are_unrolled(tmp_path):
    # |: A | B :|x2 then |: C [1. D :| [2. E |
    bars = [[[(dur(1), [(1, k, NORMAL)])]] for k in range(5)]
    headers = {0: {"isRepeatOpen": True}, 1: {"repeatClose": 1}, 2: {"isRepeatOpen": True},
               3: {"repeatAlternative": 0b01, "repeatClose": 1}, 4: {"repeatAlternative": 0b10}}
    song = read_guitarpro(build_tab(tmp_path / "repeat.gp5", bars, headers=headers))
    assert [n.fret for n in song.tracks[0].notes] == [0, 1, 0, 1, 2, 3, 2, 4]
    assert [n.start for n in song.tracks[0].notes] == [4 * Q * k for k in range(8)]


def test_play_order_without_repeats_is_written_order():
    headers = [gp.MeasureHeader(number=k) for k in range(1, 6)]
    assert play_order(headers) == [0, 1, 2, 3, 4]


# --- real files ----------------------------------------------------------------------------

def test_demo_v5(shared_data):
    song = read_guitarpro(gpdir(shared_data) / "Demo v5.gp5")
    assert [t.name for t in song.tracks] == ["Rhythm Guitar", "Solo Guitar", "Melody", "Bass", "Percussions"]
    assert [t.is_drum for t in song.tracks] == [False] * 4 + [True]
    assert song.tracks[3].tuning == (43, 38, 33, 28) and song.tracks[3].program == 34
    assert song.tempos[0].qpm == 165 and song.time_signatures == [TimeSignature(0, 4, 4)]
    assert song.n_bars == 52  # 49 written bars, bars 1-3 repeated once with two endings
    assert song.stem_tracks("bass") == [song.tracks[3]]
    assert all(t.notes for t in song.tracks)


@pytest.mark.parametrize("name, n_tracks, drums", [
    ("001_Funky_Guy.gp5", 2, [False, True]),
    ("dadagp-progmetal.gp3", 5, [False] * 4 + [True]),
    ("freedark-107b387a.gp3", 4, [False] * 3 + [True]),
    ("freedark-b5c4f3b0.gp4", 8, [False] * 6 + [True, False]),
    ("freedark-0645d8c9.gp5", 1, [False]),
])
def test_real_files(shared_data, name, n_tracks, drums):
    song = read_guitarpro(gpdir(shared_data) / name)
    assert len(song.tracks) == n_tracks and [t.is_drum for t in song.tracks] == drums
    for t in song.tracks:
        assert t.is_drum or (t.tuning and all(n.string is not None for n in t.notes))


def test_tie_and_voices_files(shared_data):
    tie = read_guitarpro(gpdir(shared_data) / "Tie.gp5").tracks[0]
    assert (960, 1920, 66) in spans(tie)  # fret 2 tied over the next beat
    assert (11520, 2880, 65) in spans(tie)  # two ties across beats, merged
    voices = read_guitarpro(gpdir(shared_data) / "Voices.gp5").tracks[0]
    assert (0, 1440, 45) in spans(voices) and (0, 960, 41) in spans(voices)


def test_every_shared_file_reads_or_fails_cleanly(shared_data):
    ok, failed = 0, {}
    for f in sorted(gpdir(shared_data).iterdir()):
        try:
            read_guitarpro(f)
            ok += 1
        except GuitarProReadError as e:
            failed[f.name] = e.problem
    # the three Guitar Pro 7 (.gp) files are read too, by gpif.py (tests/test_gpif.py)
    assert {k for k, v in failed.items() if v == "no notes"} == {"Key.gp4", "Key.gp5", "RSE.gp5", "Repeat.gp4", "Repeat.gp5"}
    assert ok == 44 and len(failed) == 5


# --- malformed input -------------------------------------------------------------------------

def test_malformed_files(shared_data, tmp_path):
    data = (gpdir(shared_data) / "Demo v5.gp5").read_bytes()
    cases = {"truncated.gp5": data[: len(data) // 2], "empty.gp5": b"", "random.gp3": random.Random(0).randbytes(4000),
             "header-only.gp4": data[:31]}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(GuitarProReadError) as err:
            read_guitarpro(tmp_path / name)
        assert str(tmp_path / name) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(GuitarProReadError, match="no such file|cannot open"):
        read_guitarpro(tmp_path / "missing.gp5")
    with pytest.raises(GuitarProReadError, match="no notes"):
        read_song(gpdir(shared_data) / "Key.gp5")


_FUZZ_SOURCES = ("Chords.gp3", "Effects.gp4", "Tie.gp5", "001_Funky_Guy.gp5", "Measure Header.gp5")


@settings(max_examples=40, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.sampled_from(_FUZZ_SOURCES), flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=6),
       cut=st.one_of(st.none(), st.floats(0, 1)))
def test_mutated_files_raise_only_read_errors(shared_data, which, flips, cut):
    data = bytearray((gpdir(shared_data) / which).read_bytes())
    for pos, value in flips:
        data[int(pos * len(data))] = value
    if cut is not None:
        data = data[: int(cut * len(data))]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / which
        path.write_bytes(bytes(data))
        try:
            song = read_guitarpro(path)
        except GuitarProReadError:
            return
        assert isinstance(song, Song) and any(t.notes for t in song.tracks)


# --- writing -----------------------------------------------------------------------------------

def matched(a: Track, b: Track, tol: int = 80, durations: bool = True) -> tuple[int, int]:
    """(notes of a with no partner in b, notes of b left over): same pitch, start and duration within tol."""
    pool: dict[int, list[Note]] = {}
    for n in b.notes:
        pool.setdefault(n.pitch, []).append(n)
    missing = 0
    for n in a.notes:
        cands = pool.get(n.pitch, [])
        k = next((k for k, m in enumerate(cands) if abs(m.start - n.start) <= tol and (not durations or abs(m.duration - n.duration) <= tol)), None)
        if k is None:
            missing += 1
        else:
            cands.pop(k)
    return missing, sum(len(v) for v in pool.values())


def dedupe(t: Track) -> Track:
    seen, notes = set(), []
    for n in t.notes:
        if (n.start, n.pitch) not in seen:
            seen.add((n.start, n.pitch))
            notes.append(n)
    return Track(t.name, t.program, t.is_drum, notes, t.tuning)


@pytest.mark.parametrize("name", ["Demo v5.gp5", "001_Funky_Guy.gp5", "dadagp-progmetal.gp3", "Tie.gp5", "freedark-413f5c83.gp3"])
def test_real_file_round_trip(shared_data, tmp_path, name):
    song = read_guitarpro(gpdir(shared_data) / name)
    write_guitarpro(song, tmp_path / "out.gp5")
    back = read_guitarpro(tmp_path / "out.gp5")
    assert back.tempos == song.tempos and back.time_signatures == song.time_signatures
    assert [(t.name, t.program, t.is_drum, t.tuning) for t in back.tracks] == [(t.name, t.program, t.is_drum, t.tuning) for t in song.tracks]
    for a, b in zip(song.tracks, back.tracks):
        assert matched(dedupe(a), dedupe(b), durations=not a.is_drum) == (0, 0), a.name
    write_guitarpro(back, tmp_path / "again.gp5")  # and once more: stable
    again = read_guitarpro(tmp_path / "again.gp5")
    assert [spans(t) for t in again.tracks] == [spans(t) for t in back.tracks]


def grid_song(seed: int) -> Song:
    """Bass line, guitar chords with held notes, drums: all on the 80-tick grid, across bars and meters."""
    rng = random.Random(seed)
    bass, guitar, drums = [], [], []
    t = 0
    while t < 12 * 4 * Q:
        d = rng.choice([80, 160, 240, 400, 480, 720, 960, 1200, 1920, 4400])
        bass.append(Note(t, d, rng.randint(28, 60)))
        t += d + rng.choice([0, 0, 80, 240])
    t = held_until = 0
    while t < 12 * 4 * Q:
        d = rng.choice([240, 320, 480, 960, 1440, 3840, 5200])
        pos = rng.randint(0, 9)  # a shape on the top four strings, in one position
        chord = {STD[s] + rng.randint(pos, pos + 3) for s in rng.sample(range(4), rng.randint(1, 3))}
        guitar.extend(Note(t, d, p) for p in sorted(chord))
        if rng.random() < 0.3 and t >= held_until:  # a low open string held into the next chord
            guitar.append(Note(t, d + 960, rng.choice([40, 45])))
            held_until = t + d + 960
        t += d
    for t in range(0, 12 * 4 * Q, 240):
        drums.extend(Note(t, 80, k) for k in rng.sample([36, 38, 42, 46, 49, 51], rng.randint(0, 3)))
    tracks = [new_track("bass", bass), new_track("guitar", guitar), new_track("drums", drums)]
    return Song(tracks=tracks, tempos=[TempoChange(0, 100.0), TempoChange(8 * Q, 132.0)],
                time_signatures=[TimeSignature(0, 4, 4), TimeSignature(16 * Q, 3, 4), TimeSignature(16 * Q + 12 * Q, 4, 4)])


@pytest.mark.parametrize("seed", range(3))
def test_model_song_round_trip_is_exact_on_the_grid(tmp_path, seed):
    song = grid_song(seed)
    write_guitarpro(song, tmp_path / "grid.gp5")
    gp.parse(str(tmp_path / "grid.gp5"))  # PyGuitarPro itself reads it
    back = read_guitarpro(tmp_path / "grid.gp5")
    assert back.tempos == song.tempos and back.time_signatures == song.time_signatures
    bass, guitar, drums = back.tracks
    assert spans(bass) == spans(song.tracks[0]) and spans(guitar) == spans(song.tracks[1])
    assert guitar.tuning == GUITAR_TUNINGS[0][1] and bass.tuning == BASS_TUNINGS[0][1]  # chosen for the range
    for t in (bass, guitar):  # playable: frets in range, one note per string at a time
        assert all(0 <= n.fret <= 24 and t.tuning[n.string - 1] + n.fret == n.pitch for n in t.notes)
        by_string: dict[int, int] = {}
        for n in sorted(t.notes, key=lambda n: n.start):
            assert by_string.get(n.string, 0) <= n.start
            by_string[n.string] = n.end
    assert drums.is_drum and spans(drums) == spans(song.tracks[2])  # each hit its own length


@settings(max_examples=25, deadline=2000)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(1, 40), st.integers(0, 127)), min_size=1, max_size=30))
def test_monophonic_lines_round_trip(steps):
    notes, t = [], 0
    for gap, length, pitch in steps:
        t += gap * 80
        notes.append(Note(t, length * 80, pitch))
        t += length * 80
    song = Song(tracks=[Track("Lead guitar", program=29, notes=notes)])
    with tempfile.TemporaryDirectory() as d:
        write_guitarpro(song, Path(d) / "line.gp5")
        back = read_guitarpro(Path(d) / "line.gp5").tracks[0]
    assert [(n.start, n.duration) for n in back.notes] == [(n.start, n.duration) for n in notes]
    low, high = min(back.tuning), max(back.tuning) + 24
    for a, b in zip(notes, back.notes):  # out-of-range pitches move by octaves onto the neck
        assert b.pitch == a.pitch if low <= a.pitch <= high else ((a.pitch - b.pitch) % 12 == 0 and low <= b.pitch <= high)


def test_off_grid_times_move_at_most_20_ticks(tmp_path):
    """Off every grid: starts and ends move at most 20 ticks; a note too short for its grid becomes one step (<= a 32nd)."""
    notes = [Note(0, 60, 60), Note(60, 60, 62), Note(130, 192, 64), Note(1000, 7, 65)]
    write_guitarpro(Song(tracks=[Track("Guitar", notes=notes)]), tmp_path / "off.gp5")
    back = read_guitarpro(tmp_path / "off.gp5").tracks[0]
    assert len(back.notes) == 4
    assert all(abs(a.start - b.start) <= 20 and (abs(a.end - b.end) <= 20 or b.duration <= 120) and b.duration >= 40
               for a, b in zip(notes, back.notes))


def test_split_straight_covers_64ths():
    for length in range(60, 4 * 4 * Q, 60):
        assert sum(v.ticks for v in split_straight(length)) == length


def test_write_keeps_given_strings_and_frets(tmp_path):
    notes = [Note(0, Q, 64, string=2, fret=5), Note(Q, Q, 45, string=6, fret=5)]
    write_guitarpro(Song(tracks=[Track("Guitar", program=27, notes=notes, tuning=STD)]), tmp_path / "f.gp5")
    back = read_guitarpro(tmp_path / "f.gp5").tracks[0]
    assert [(n.string, n.fret) for n in back.notes] == [(2, 5), (6, 5)] and back.program == 27


# --- writing into a source tab -------------------------------------------------------------------

def with_new_guitar(song: Song) -> tuple[Song, list[Note]]:
    notes = [Note(t, 400, 45 + (t // 480) % 19) for t in range(0, song.end + 3000, 480)]
    song.tracks.append(new_track("guitar", notes))
    return song, notes


def test_source_preserving_write_keeps_original_tracks(shared_data, tmp_path):
    src = gpdir(shared_data) / "001_Funky_Guy.gp5"
    song, added = with_new_guitar(read_guitarpro(src))
    write_guitarpro(song, tmp_path / "out.gp5", source=src)
    before, after = gp.parse(str(src)), gp.parse(str(tmp_path / "out.gp5"))
    assert len(after.tracks) == 3 and len(after.measureHeaders) > len(before.measureHeaders)  # bars added for the new notes
    for old, new in zip(before.tracks, after.tracks):
        assert (old.name, old.strings, old.channel, old.isPercussionTrack) == (new.name, new.strings, new.channel, new.isPercussionTrack)
        assert all(a.voices == b.voices for a, b in zip(old.measures, new.measures))  # effects and all
    back = read_guitarpro(tmp_path / "out.gp5")
    assert [spans(t) for t in back.tracks[:2]] == [spans(t) for t in song.tracks[:2]]
    assert [(n.start, n.duration, n.pitch) for n in back.tracks[2].notes] == [(n.start, n.duration, n.pitch) for n in added]
    assert back.tracks[2].name == NEW_TRACK["guitar"]["name"] and back.tracks[2].program == NEW_TRACK["guitar"]["program"]


@pytest.mark.parametrize("name", ["Demo v5.gp5", "freedark-f0039c1c.gp3"])
def test_source_with_repeats_is_written_unrolled(shared_data, tmp_path, name):
    src = gpdir(shared_data) / name
    song, added = with_new_guitar(read_guitarpro(src))
    n = len(song.tracks) - 1
    out = write_song(song, tmp_path / "out.gp5", source=src)
    back = read_guitarpro(out)
    assert [(t.name, t.notes) for t in back.tracks[:n]] == [(t.name, t.notes) for t in song.tracks[:n]]  # exact, velocities too
    assert back.tempos == song.tempos
    assert [(n.start, n.duration, n.pitch) for n in back.tracks[n].notes] == [(n.start, n.duration, n.pitch) for n in added]
    assert not any(h.isRepeatOpen or h.repeatClose > 0 or h.repeatAlternative for h in gp.parse(str(out)).measureHeaders)


def test_source_write_after_a_replaced_track(shared_data, tmp_path):
    """--replace drops a source track and appends the new one: the kept tracks stay as in the tab."""
    src = gpdir(shared_data) / "001_Funky_Guy.gp5"
    song = read_guitarpro(src)
    assert [t.name for t in song.tracks] == ["Electric Bass", "Drumkit"]
    bass = new_track("bass", [Note(t, 400, 40) for t in range(0, song.end, 960)])
    replaced = Song(tracks=[song.tracks[1], bass], tempos=song.tempos, time_signatures=song.time_signatures,
                    resolution=song.resolution, title=song.title)
    out = write_song(replaced, tmp_path / "out.gp5", source=src)
    before, after = gp.parse(str(src)), gp.parse(str(out))
    assert [t.name for t in after.tracks] == ["Drumkit", NEW_TRACK["bass"]["name"]]
    assert [t.number for t in after.tracks] == [1, 2]
    assert all(a.voices == b.voices for a, b in zip(before.tracks[1].measures, after.tracks[0].measures))
    back = read_guitarpro(out)
    assert spans(back.tracks[0]) == spans(song.tracks[1])
    assert [(n.start, n.pitch) for n in back.tracks[1].notes] == [(n.start, n.pitch) for n in bass.notes]


def test_source_must_match_the_song(shared_data, tmp_path):
    src = gpdir(shared_data) / "001_Funky_Guy.gp5"
    other = read_guitarpro(gpdir(shared_data) / "Chords.gp5")
    with pytest.raises(WriteError, match="not the source's tracks"):
        write_guitarpro(other, tmp_path / "x.gp5", source=src)
    (tmp_path / "cut.gp5").write_bytes(src.read_bytes()[:500])
    with pytest.raises(GuitarProReadError):
        write_guitarpro(other, tmp_path / "x.gp5", source=tmp_path / "cut.gp5")


def test_write_song_dispatch_and_names(tmp_path):
    song = Song(tracks=[Track("Gitarre \u00fc \u2603 " + "x" * 60, program=30, notes=[Note(0, Q, 52)]),
                        Track("Drums", is_drum=True, notes=[Note(0, 80, 36), Note(Q, 80, 120)])], title="T\u00eftle")
    out = write_song(song, tmp_path / "named.gp5")
    back = read_guitarpro(out)
    assert back.title == "T\u00eftle" and back.tracks[0].name.startswith("Gitarre \u00fc ?") and len(back.tracks[0].name) == 40
    assert [(n.start, n.pitch) for n in back.tracks[1].notes] == [(0, 36), (Q, 87)]  # drum keys stop at 87
    assert back.tracks[1].notes[0].duration == 80  # a hit keeps its own length


def test_a_midi_source_is_ignored(tmp_path):
    song = Song(tracks=[Track("Bass", program=33, notes=[Note(0, Q, 40)])])
    write_guitarpro(song, tmp_path / "m.gp5", source=tmp_path / "song.mid")  # never opened
    assert spans(read_guitarpro(tmp_path / "m.gp5").tracks[0]) == [(0, Q, 40)]


# --- exact durations: tuplets, meters, ties, drum lengths --------------------------------------------

def tuplet_song() -> Song:
    """Triplets of every kind, a meter change every bar, notes across bar lines, drum hits of their own length."""
    g, b, d = [], [], []
    g += [Note(k * 320, 320, 60 + k) for k in range(3)]  # bar 1 (4/4), beat 1: 8th triplets
    g += [Note(Q + k * 160, 160, 64 + k) for k in range(3)] + [Note(Q + 480, 240, 62), Note(Q + 720, 240, 60)]  # beat 2:
    # 16th triplets, then 16ths
    g += [Note(2 * Q + k * 640, 640, 55 + k) for k in range(3)]  # beats 3-4: quarter triplets
    g += [Note(4 * Q + k * 320, 240, 52 + k) for k in range(6)]  # bar 2 (7/8): staccato 8th triplets
    g += [Note(6 * Q, 2 * Q, 57)]  # ... and a note across the bar line into bar 3 (5/16)
    b += [Note(0, 3 * Q, 40), Note(3 * Q, 2 * Q + 80, 33), Note(7 * Q + 720, 4 * Q, 28)]  # held across bars
    d += [Note(t, 120, 42) for t in range(0, 4 * Q, 240)] + [Note(0, 120, 36), Note(Q + 320, 80, 38)]
    d += [Note(4 * Q + t, 60, 42) for t in range(0, 3 * Q + 480, 480)]
    bars = [(4, 4), (7, 8), (5, 16), (3, 4), (6, 8), (4, 4)]
    sigs, t = [], 0
    for num, den in bars:
        sigs.append(TimeSignature(t, num, den))
        t += 4 * Q * num // den
    return Song(tracks=[Track("Guitar", program=29, notes=g), Track("Bass", program=33, notes=b),
                        Track("Drums", is_drum=True, notes=d)],
                tempos=[TempoChange(0, 90.0), TempoChange(Q + 320, 120.0)], time_signatures=sigs)


def test_triplets_meters_and_ties_round_trip_exactly(tmp_path):
    song = tuplet_song()
    said = write_guitarpro(song, tmp_path / "t.gp5")
    back = read_guitarpro(tmp_path / "t.gp5")
    assert back.time_signatures == song.time_signatures and back.tempos == song.tempos
    assert [spans(t) for t in back.tracks] == [spans(t) for t in song.tracks]
    assert not [s for s in said if "moved" in s]
    tab = gp.parse(str(tmp_path / "t.gp5"))
    first = [b.duration for b in tab.tracks[0].measures[0].voices[0].beats]
    assert [(d.value, d.tuplet.enters) for d in first[:3]] == [(8, 3)] * 3  # written as triplets
    assert [(d.value, d.tuplet.enters) for d in first[3:8]] == [(16, 3)] * 3 + [(16, 1)] * 2  # each half its own
    bar3 = tab.tracks[0].measures[2].voices[0].beats
    assert bar3[0].notes and bar3[0].notes[0].type == TIE  # the note from bar 2 goes on tied
    drums = [b.duration for b in tab.tracks[2].measures[0].voices[0].beats if b.notes]
    assert all(d.tuplet.enters == 1 for d in drums[:2]) and drums[0].value == 32  # a 120-tick hit: a 32nd


def tuplet_tab(path: Path) -> Path:
    """A tab with 5-, 6- and 7-tuplets, a dotted triplet, 64ths and a 9-tuplet of 32nds."""
    n = lambda fret: [(1, fret, NORMAL)]
    beats = [(dur(16, tuplet=(5, 4)), n(k)) for k in range(5)]
    beats += [(dur(16, tuplet=(6, 4)), n(k)) for k in range(6)]
    beats += [(dur(16, tuplet=(7, 4)), n(k)) for k in range(7)]
    beats += [(dur(8, dotted=True, tuplet=(3, 2)), n(1)), (dur(16, tuplet=(3, 2)), n(2)), (dur(8, tuplet=(3, 2)), n(3))]
    bar2 = [(dur(64), n(3)), (dur(64), []), (dur(32), n(4)), (dur(16, dotted=True), n(5)), (dur(16, dotted=True), n(6))]
    bar2 += [(dur(32, tuplet=(9, 8)), n(k)) for k in range(9)] + [(dur(2), n(7))]
    return build_tab(path, [[beats], [bar2]])


def test_other_tuplets_from_a_tab_round_trip_exactly(tmp_path):
    song = read_guitarpro(tuplet_tab(tmp_path / "src.gp5"))
    assert len(song.tracks[0].notes) == 5 + 6 + 7 + 3 + 4 + 9 + 1
    song.tracks[0].notes = [Note(x.start, x.duration, x.pitch, x.velocity) for x in song.tracks[0].notes]  # re-fretted
    write_guitarpro(song, tmp_path / "out.gp5")
    back = read_guitarpro(tmp_path / "out.gp5")
    assert spans(back.tracks[0]) == spans(song.tracks[0])
    enters = {b.duration.tuplet.enters for m in gp.parse(str(tmp_path / "out.gp5")).tracks[0].measures
              for b in m.voices[0].beats}
    assert {5, 7, 3, 9} <= enters


def test_lengths_guitar_pro_cannot_write_move_to_the_nearest_value(tmp_path):
    """Played MIDI: no note value holds these times; each moves at most 20 ticks (a 7-tick note becomes a 32nd)."""
    notes = [Note(10, 430, 60), Note(Q, 100, 62), Note(Q + 480, 7, 64), Note(2 * Q + 5, 470, 65)]
    said = write_guitarpro(Song(tracks=[Track("Guitar", program=29, notes=notes)]), tmp_path / "p.gp5")
    back = read_guitarpro(tmp_path / "p.gp5").tracks[0]
    assert [(n.start, n.end) for n in back.notes] == [(0, 420), (Q, Q + 120), (Q + 480, Q + 600), (2 * Q, 2 * Q + 480)]
    assert "Guitar: times moved to the nearest note value in 3 beats (see docs/guitarpro.md)" in said
    tuplets = [(960, 137, 60), (1097, 137, 62), (1234, 137, 64)]  # 7-tuplet 16ths from a MIDI file: exact
    write_guitarpro(Song(tracks=[Track("Guitar", program=29, notes=[Note(*x) for x in tuplets])]), tmp_path / "s.gp5")
    assert spans(read_guitarpro(tmp_path / "s.gp5").tracks[0]) == tuplets


def test_real_band_excerpt_round_trips_exactly(real_data, tmp_path):
    src = real_data / "build-me-up-break-me-down-excerpt.mid"
    song = read_song(src)
    out = write_song(song, tmp_path / "x.gp5", source=src)
    back = read_song(out)
    assert back.time_signatures == song.time_signatures
    assert [(t.name, spans(t)) for t in back.tracks] == [(t.name, spans(t)) for t in song.tracks]
    assert back.tracks[1].tuning == BASS_TUNINGS[2][1]  # the bass goes down to B0: a 5-string


def test_added_guitar_and_original_tracks_round_trip_exactly(real_data, tmp_path):
    """`stemfill midi EXCERPT --add guitar -o x.gp5` (the excerpt without its guitar): every note comes back."""
    from stemfill.pianoroll.fill import fill_song
    from stemfill.pianoroll.model import load_model
    from stemfill.song.midi import write_midi
    from stemfill.pianoroll.model import default_model_path

    song = read_song(real_data / "build-me-up-break-me-down-excerpt.mid")
    song.tracks = [t for t in song.tracks if t.name != "Guitar"]
    write_midi(song, tmp_path / "in.mid")
    song = read_song(tmp_path / "in.mid")
    new = fill_song(song, ["guitar"], load_model(default_model_path()), seed=0).song
    assert new.tracks[-1].notes
    out = write_song(new, tmp_path / "x.gp5", source=tmp_path / "in.mid")
    said = write_guitarpro(new, tmp_path / "again.gp5")
    back = read_song(out)
    assert [spans(t) for t in back.tracks[:2]] == [spans(t) for t in song.tracks]  # the band, exactly
    written, made = set(spans(back.tracks[2])), set(spans(new.tracks[2]))
    # every written note as the model made it, or cut short where a later note takes its string (one string
    # sounds one note); the only notes lost: those no hand can hold
    cut = {(s, p) for s, d, p in written - made}
    assert all(any(s == s2 and p == p2 and d < d2 for s2, d2, p2 in made) for s, d, p in written - made)
    said_n = {w: next((int(s.split(": ")[1].split()[0]) for s in said if w in s), 0) for w in ("dropped", "cut short")}
    assert len(cut) == said_n["cut short"]
    assert len(made - written) == said_n["dropped"] + said_n["cut short"]


def test_cli_adds_a_bass_to_a_gp7_file_and_writes_gp5(tmp_path):
    """`stemfill midi SONG.gp --add bass -o out.gp5`: the GP7 tab's tracks come back with their strings, frets and
    capo; the new bass gets a tuning for its range and frets; PyGuitarPro and stemfill's readers read the file."""
    from test_gpif import Gpif
    from typer.testing import CliRunner

    from stemfill.cli import app

    b = Gpif(title="Riff")
    b.gp7_track("Rhythm guitar", program=29, capo=2)
    b.gp7_track("Kit", kind="drumKit", program=0, tuning=None, articulations=[36, 38, 42])
    for _ in range(8):
        riff = [b.beat(("Eighth", 0, (3, 2)), [b.fretted(s, f)]) for s, f in ((1, 0), (2, 2), (3, 2))] * 2
        riff += [b.beat("Quarter", [b.fretted(0, 0), b.fretted(1, 2), b.fretted(2, 2)]), b.beat("Quarter")]
        kit = [b.beat("Eighth", [b.articulation(2)] + ([b.articulation(0)] if k % 4 == 0 else
                                                      [b.articulation(1)] if k % 4 == 2 else [])) for k in range(8)]
        b.master([b.bar([b.voice(riff)]), b.bar([b.voice(kit)])])
    src = b.write_gp(tmp_path / "riff.gp")
    out = tmp_path / "riff-bass.gp5"
    res = CliRunner().invoke(app, ["midi", str(src), "--add", "bass", "-o", str(out)])
    assert res.exit_code == 0, res.output
    song, back = read_song(src), read_song(out)
    tab = gp.parse(str(out))
    assert [t.name for t in tab.tracks] == ["Rhythm guitar", "Kit", NEW_TRACK["bass"]["name"]] and tab.tracks[0].offset == 2
    for a, b_ in zip(song.tracks, back.tracks):
        assert [(n.start, n.duration, n.pitch, n.string, n.fret) for n in a.notes] == \
               [(n.start, n.duration, n.pitch, n.string, n.fret) for n in b_.notes]
    bass = back.tracks[2]
    assert bass.notes and bass.tuning in [t for _, t in BASS_TUNINGS]
    assert all(bass.tuning[n.string - 1] + n.fret == n.pitch for n in bass.notes)
    assert any(d.tuplet.enters == 3 for m in tab.tracks[0].measures for d in [x.duration for x in m.voices[0].beats])


# --- issue 26: real tabs that broke the writer, --replace, round trips, silent changes ----------------

def band_tab(path: Path, bars: int = 4, version=(4, 0, 6)) -> Path:
    """A gp4 band: "Guitar" (29) with a dead grace note (fret -1, as gp3/gp4 store it) before its first note,
    "Intro" on String Ensemble (48, strings as every tab track has), "Bass" (33) and drums."""
    song = gp.Song(tempo=120)
    song.measureHeaders = []
    song.tracks = []
    specs = [("Guitar", 29, STD, False), ("Intro", 48, STD, False), ("Bass", 33, (43, 38, 33, 28), False),
             ("Drums", 0, (0,) * 6, True)]
    for k, (name, program, tuning, drum) in enumerate(specs):
        ch = 9 if drum else 2 * k
        song.tracks.append(gp.Track(song, number=k + 1, name=name, isPercussionTrack=drum, measures=[],
                                    strings=[gp.GuitarString(i + 1, v) for i, v in enumerate(tuning)],
                                    channel=gp.MidiChannel(channel=ch, effectChannel=ch if drum else ch + 1,
                                                           instrument=program)))
    for b in range(bars):
        h = gp.MeasureHeader(number=b + 1, timeSignature=gp.TimeSignature(4, gp.Duration(value=4)))
        song.addMeasureHeader(h)
        for tr in song.tracks:
            m = gp.Measure(tr, h)
            voice = m.voices[0]
            for q in range(4):
                beat = gp.Beat(voice, duration=dur(4), status=gp.BeatStatus.normal)
                if tr.name == "Guitar":
                    note = gp.Note(beat, value=[0, 2, 3, 5][q], string=1 + q % 2, type=NORMAL)
                    if b == 0 and q == 0:
                        note.effect.grace = gp.GraceEffect(fret=-1, isDead=True, duration=32,
                                                           transition=gp.GraceEffectTransition.bend)
                    beat.notes.append(note)
                elif tr.name == "Intro":
                    beat.notes.append(gp.Note(beat, value=[5, 7, 8, 7][q], string=2, type=NORMAL))
                elif tr.name == "Bass":
                    beat.notes.append(gp.Note(beat, value=[0, 0, 3, 5][q], string=3, type=NORMAL))
                else:
                    beat.notes.append(gp.Note(beat, value=36 if q % 2 == 0 else 38, string=1, type=NORMAL))
                    beat.notes.append(gp.Note(beat, value=42, string=2, type=NORMAL))
                voice.beats.append(beat)
            m.voices[1].beats.append(gp.Beat(m.voices[1], status=gp.BeatStatus.empty))
            tr.measures.append(m)
    gp.write(song, str(path), version=version)
    return path


def test_dead_grace_note_of_a_gp4_source_writes_a_valid_gp5(tmp_path):
    src = band_tab(tmp_path / "band.gp4")
    grace = gp.parse(str(src)).tracks[0].measures[0].voices[0].beats[0].notes[0].effect.grace
    assert grace.fret == -1 and grace.isDead  # as the real tabs have it
    song = read_song(src)
    said: list[str] = []
    out = write_song(song, tmp_path / "out.gp5", source=src, report=said)
    assert said == ["Guitar: 1 dead grace note (fret -1 in the source) written as GP5 writes them: fret 0, dead"]
    tab = gp.parse(str(out))  # PyGuitarPro reads it, every note kept
    g = tab.tracks[0].measures[0].voices[0].beats[0].notes[0].effect.grace
    assert (g.fret, g.isDead) == (0, True)
    back = read_song(out)
    assert [(t.name, spans(t)) for t in back.tracks] == [(t.name, spans(t)) for t in song.tracks]
    assert list(tmp_path.glob(".*")) == []


def test_cli_add_to_a_gp4_with_a_dead_grace_note(tmp_path):
    from typer.testing import CliRunner

    from stemfill.cli import app

    src = band_tab(tmp_path / "band.gp4")
    out = tmp_path / "out.gp5"
    r = CliRunner().invoke(app, ["midi", str(src), "--add", "drums", "--replace", "-o", str(out)])
    assert r.exit_code == 0, r.stdout + r.stderr
    assert f"note: {out}: Guitar: 1 dead grace note" in r.stderr
    assert "replaced: removed 1 track: 'Drums' (32 notes)" in r.stderr
    song, back = read_song(src), read_song(out)
    assert [t.name for t in back.tracks][:3] == ["Guitar", "Intro", "Bass"] and back.tracks[3].is_drum
    assert [spans(t) for t in back.tracks[:3]] == [spans(t) for t in song.tracks[:3]]
    assert len(gp.parse(str(out)).tracks) == 4


def test_replace_guitar_keeps_a_tab_track_on_a_non_guitar_program(tmp_path):
    from typer.testing import CliRunner

    from stemfill.cli import app
    from stemfill.song.stems import classify_song

    src = band_tab(tmp_path / "band.gp4")
    song = read_song(src)
    assert classify_song(song)["guitar"] == [0] and classify_song(song)["other"] == [1]  # "Intro" on 48 is no guitar
    out = tmp_path / "out.gp5"
    r = CliRunner().invoke(app, ["midi", str(src), "--add", "guitar", "--replace", "-o", str(out)])
    assert r.exit_code == 0, r.stdout + r.stderr
    assert "replaced: removed 1 track: 'Guitar' (16 notes)" in r.stderr and "Intro" not in r.stderr
    back = read_song(out)
    assert [t.name for t in back.tracks][:3] == ["Intro", "Bass", "Drums"]
    assert spans(back.tracks[0]) == spans(song.tracks[1])


def test_gp5_round_trip_keeps_what_each_track_is(tmp_path):
    """A GP7 tab's vocals, synths and keys written as .gp5 (where every track gets strings) read back as they were."""
    from test_gpif import Gpif

    from stemfill.song.stems import classify_track

    b = Gpif(title="Kinds")
    b.gp7_track("Vocals", kind="vocals", program=54, tuning=None)
    b.gp7_track("Taurus", kind="synth", program=87, tuning=None)
    b.gp7_track("Moog", kind="synth", program=81, tuning=None)
    b.gp7_track("Keys", kind="piano", program=0, tuning=None)
    b.gp7_track("Rhythm", program=29)
    b.gp7_track("Low end", kind="electricBass", program=33, tuning=(28, 33, 38, 43))
    for _ in range(2):
        b.master([b.bar([b.voice([b.beat("Whole", [b.fretted(0, 0, midi=60 + k)])])]) for k in range(6)])
    src = b.write_gp(tmp_path / "kinds.gp")
    song = read_song(src)
    kinds = [classify_track(t) for t in song.tracks]
    assert kinds == ["other"] * 4 + ["guitar", "bass"]
    back = read_song(write_song(song, tmp_path / "kinds.gp5", source=src))
    assert all(t.tuning for t in back.tracks)  # GP5 gives every track strings ...
    assert [classify_track(t) for t in back.tracks] == kinds  # ... and the program tells what it is
    assert [t.program for t in back.tracks] == [t.program for t in song.tracks]


def test_writer_says_how_many_duplicates_it_merged(tmp_path):
    kit = Track("Kit", is_drum=True, notes=[Note(0, Q, 36), Note(0, Q // 2, 36), Note(Q, Q, 38), Note(Q, Q, 38),
                                            Note(Q, Q, 38), Note(2 * Q, Q, 42)])
    lead = Track("Lead", program=29, tuning=STD, notes=[Note(0, Q, 64, string=1, fret=0),
                                                        Note(0, Q, 64, string=1, fret=0),
                                                        Note(0, 2 * Q, 64, string=1, fret=0),
                                                        Note(Q, Q, 59, string=2, fret=0)])
    said = write_guitarpro(Song([kit, lead]), tmp_path / "dup.gp5")
    assert "Kit: 3 duplicate notes merged (same pitch and start)" in said
    assert "Lead: 1 duplicate note merged (same pitch and start)" in said
    back = read_song(tmp_path / "dup.gp5")
    assert len(back.tracks[0].notes) == 3 and len({(n.start, n.pitch) for n in back.tracks[0].notes}) == 3
    assert len(back.tracks[1].notes) == 3  # two of the three E4s at 0 (voice 1 and 2), the B3
    assert not any("left out" in line for line in said)


def test_write_errors_name_the_users_path_in_plain_words(tmp_path, monkeypatch):
    def fail(song, stream, version=None, encoding=None):
        with open(stream, "wb") as f:
            f.write(b"partial")
        raise gp.GPException("writing track 1, measure 3, voice 1, beat 2, got error: ubyte format requires "
                             "0 <= number <= 255")

    monkeypatch.setattr(gp, "write", fail)
    song = Song([Track("Lead", program=29, notes=[Note(0, Q, 64)])])
    with pytest.raises(WriteError) as e:
        write_song(song, tmp_path / "out.gp5")
    msg = str(e.value)
    assert msg == (f"{tmp_path / 'out.gp5'}: cannot write Guitar Pro 5: a value in track 1 ('Lead'), bar 3 is out of "
                   "the range the format stores")
    assert list(tmp_path.iterdir()) == []


def test_added_part_ends_with_the_songs_last_bar(tmp_path):
    """A new part that runs past the song's last bar is cut at its bar line: the song keeps its bars."""
    from typer.testing import CliRunner

    from stemfill.cli import app
    from stemfill.song.bars import clip_track, last_bar_end

    song = Song([Track("Lead", program=29, notes=[Note(0, 2 * Q, 64), Note(6 * Q, 2 * Q, 67)])])
    assert last_bar_end(song) == 8 * Q and song.n_bars == 2
    three_four = Song([Track("g", 29, notes=[Note(0, Q, 60), Note(13 * Q, Q // 2, 60)])],
                      time_signatures=[TimeSignature(0, 4, 4), TimeSignature(8 * Q, 3, 4)])
    assert last_bar_end(three_four) == 14 * Q  # 2 bars of 4/4, 2 of 3/4
    new = Track("Bass", program=33, notes=[Note(0, Q, 40), Note(7 * Q, Q + Q // 12, 40), Note(8 * Q, Q, 40)])
    assert clip_track(new, 8 * Q) == 2
    assert [(n.start, n.duration) for n in new.notes] == [(0, Q), (7 * Q, Q)]
    src = band_tab(tmp_path / "band.gp4", bars=3)
    for ext in (".gp5", ".mid"):
        out = tmp_path / f"out{ext}"
        r = CliRunner().invoke(app, ["midi", str(src), "--add", "drums", "--replace", "-o", str(out)])
        assert r.exit_code == 0, r.output
        back = read_song(out)
        assert back.n_bars == 3 and back.end <= 3 * 4 * Q * back.resolution // Q


@pytest.mark.parametrize("name", ["freedark-107b387a.gp3", "freedark-b72b8a5d.gp3"])
def test_real_tabs_with_dead_grace_notes_write_gp5_with_every_note(shared_data, tmp_path, name):
    """Full real tabs whose dead grace notes (fret -1) stopped the GP5 writer: a new part appended, the file
    is written, PyGuitarPro parses it and every source note comes back."""
    src = gpdir(shared_data) / name
    song, added = with_new_guitar(read_guitarpro(src))
    said: list[str] = []
    out = write_song(song, tmp_path / "out.gp5", source=src, report=said)
    assert any("dead grace note" in line and "fret 0, dead" in line for line in said)
    gp.parse(str(out))
    back = read_guitarpro(out)
    n = len(song.tracks) - 1
    assert [(t.name, spans(t)) for t in back.tracks[:n]] == [(t.name, spans(t)) for t in song.tracks[:n]]
    assert [(x.start, x.pitch) for x in back.tracks[n].notes] == [(x.start, x.pitch) for x in added]
