"""MIDI reader and writer: tiny files built in code, real files round-tripped, malformed files refused."""

from __future__ import annotations

import io
from pathlib import Path

import mido
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stemfill.errors import MidiReadError
from stemfill.song.io import read_song, write_song
from stemfill.song.midi import (
    MIN_DURATION,
    assign_channels,
    midi_bytes,
    midi_from_bytes,
    read_midi,
    write_midi,
)
from stemfill.song.song import Note, Song, TempoChange, TimeSignature, Track

DATA = Path(__file__).resolve().parent / "data"
M, MM = mido.Message, mido.MetaMessage
REAL = ["All The Small Things.mid", "Girls Just Want to Have Fun.mid", "d6caebd1964d9e4a3c5ea59525230e2a.mid"]


def build(tracks: list[list], ticks_per_beat: int = 480, midi_type: int = 1) -> bytes:
    mid = mido.MidiFile(type=midi_type, ticks_per_beat=ticks_per_beat)
    for msgs in tracks:
        mid.tracks.append(mido.MidiTrack(msgs))
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


def notes_of(track: Track) -> list[tuple[int, int, int, int]]:
    return [(n.start, n.duration, n.pitch, n.velocity) for n in track.notes]


def sorted_notes(track: Track) -> list[tuple[int, int, int, int]]:
    return sorted(notes_of(track))


def assert_same_song(a: Song, b: Song) -> None:
    assert [(t.name, t.program, t.is_drum) for t in a.tracks] == [(t.name, t.program, t.is_drum) for t in b.tracks]
    for ta, tb in zip(a.tracks, b.tracks):
        assert sorted_notes(ta) == sorted_notes(tb), ta.name
    assert a.tempos == b.tempos
    assert a.time_signatures == b.time_signatures
    assert a.resolution == b.resolution


# --- reading files built in code ---------------------------------------------


def test_tiny_file_reads_to_exact_song():
    conductor = [
        MM("track_name", name="My Song"),
        MM("set_tempo", tempo=500_000),  # 120 qpm
        MM("time_signature", numerator=3, denominator=4),
        MM("set_tempo", tempo=400_000, time=1440),  # 150 qpm after one 3/4 bar
        MM("time_signature", numerator=6, denominator=8),
    ]
    band = [
        MM("track_name", name="Band"),
        M("program_change", channel=0, program=33),  # bass on channel 1
        M("program_change", channel=1, program=29),  # guitar on channel 2
        M("note_on", channel=0, note=40, velocity=100),
        M("note_on", channel=1, note=64, velocity=70),
        M("note_off", channel=0, note=40, time=480),
        M("note_on", channel=1, note=64, velocity=0, time=240),  # note-on with velocity 0 ends a note
        M("note_on", channel=9, note=36, velocity=110),  # drums, zero length
        M("note_off", channel=9, note=36),
    ]
    song = midi_from_bytes(build([conductor, band], ticks_per_beat=480), title="t")
    assert song.resolution == 960
    assert song.tempos == [TempoChange(0, 120.0), TempoChange(2880, 150.0)]
    assert song.time_signatures == [TimeSignature(0, 3, 4), TimeSignature(2880, 6, 8)]
    by_program = {(t.program, t.is_drum): t for t in song.tracks}
    assert len(song.tracks) == 3
    bass, gtr, drums = by_program[33, False], by_program[29, False], by_program[0, True]
    assert bass.name == gtr.name == drums.name == "Band"
    assert notes_of(bass) == [(0, 960, 40, 100)]
    assert notes_of(gtr) == [(0, 1440, 64, 70)]
    assert notes_of(drums) == [(1440, MIN_DURATION, 36, 110)]
    assert song.title == "t"


def test_defaults_fallback_names_and_type0():
    data = build(
        [[M("program_change", channel=2, program=33), M("note_on", channel=2, note=40, velocity=90),
          M("note_off", channel=2, note=40, time=96), M("note_on", channel=9, note=38, velocity=90),
          M("note_off", channel=9, note=38, time=48)]],
        ticks_per_beat=96,
        midi_type=0,
    )
    song = midi_from_bytes(data)
    assert song.tempos == [TempoChange(0, 120.0)]  # MIDI's default tempo and meter
    assert song.time_signatures == [TimeSignature(0, 4, 4)]
    names = {t.is_drum: t.name for t in song.tracks}
    assert names == {False: "Electric Bass (finger)", True: "Drums"}
    assert {notes_of(t)[0] for t in song.tracks} == {(0, 960, 40, 90), (960, 480, 38, 90)}


def test_odd_resolution_is_rounded_to_960():
    data = build([[M("note_on", note=60, velocity=90, time=1), M("note_off", note=60, time=52)]], ticks_per_beat=52)
    (track,) = midi_from_bytes(data).tracks
    assert notes_of(track) == [(18, 960, 60, 90)]  # 1 * 960/52 = 18.46 -> 18; end 53 * 960/52 = 978.5 -> 978


def test_invalid_time_signature_is_dropped():
    good = build([[MM("time_signature", numerator=5, denominator=4), M("note_on", note=60, velocity=90),
                   M("note_off", note=60, time=480), MM("time_signature", numerator=7, denominator=8)]])
    bad = good.replace(b"\xff\x58\x04\x07\x03", b"\xff\x58\x04\x07\x09")  # 7/512: not a valid denominator
    assert bad != good
    assert midi_from_bytes(good).time_signatures == [TimeSignature(0, 5, 4), TimeSignature(960, 7, 8)]
    assert midi_from_bytes(bad).time_signatures == [TimeSignature(0, 5, 4)]


def test_absurd_tempo_is_refused():
    data = build([[MM("set_tempo", tempo=1000), M("note_on", note=60, velocity=90), M("note_off", note=60, time=480)]])
    with pytest.raises(MidiReadError, match="absurd tempo 60000 qpm"):
        midi_from_bytes(data, name="fast.mid")


# --- malformed files ----------------------------------------------------------

FIXTURE_ERRORS = {
    "empty.mid": "empty file",
    "not-midi.mid": "not a MIDI file",
    "truncated.mid": "corrupt MIDI data",
    "type2.mid": "MIDI type 2 (independent sequences) is not supported",
    "zero-ticks-per-beat.mid": "zero ticks per beat",
    "smpte-division.mid": "SMPTE",
    "zero-tempo.mid": "tempo of 0",
    "no-notes.mid": "no notes",
}


@pytest.mark.parametrize("name", sorted(FIXTURE_ERRORS))
def test_malformed_fixture_raises_midi_read_error(name):
    path = DATA / name
    assert path.stat().st_size < 1024
    with pytest.raises(MidiReadError) as exc:
        read_midi(path)
    msg = str(exc.value)
    assert FIXTURE_ERRORS[name] in msg
    assert msg.startswith(str(path)) and "\n" not in msg


def _raw_midi(track: bytes) -> bytes:
    """A type-0 file at 480 ticks a quarter with the one track's event bytes as given (no encoder checks)."""
    import struct

    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480) + b"MTrk" + struct.pack(">I", len(track)) + track


def test_a_data_byte_past_127_is_clipped_and_the_notes_are_read():
    # control 7 = 168 (0xA8), then C4 for a half note: symusic refuses the file, mido clips the byte to 127
    data = _raw_midi(bytes([0x00, 0xB0, 0x07, 0xA8, 0x00, 0x90, 0x3C, 0x64, 0x87, 0x40, 0x80, 0x3C, 0x40,
                            0x00, 0xFF, 0x2F, 0x00]))
    song = midi_from_bytes(data, name="cc168.mid")
    assert [(n.start, n.duration, n.pitch, n.velocity) for t in song.tracks for n in t.notes] == [(0, 1920, 60, 100)]
    assert song.warnings == ["corrupt data bytes clipped to 127 (control value 168 outside 0..127)"]


def test_a_file_mido_cannot_read_either_stays_refused():
    # program 208, then a note-on cut off after its first data byte: mido cannot read it even clipped
    data = _raw_midi(bytes([0x00, 0xC0, 0xD0, 0x00, 0x90, 0x3C]))
    with pytest.raises(MidiReadError, match="corrupt MIDI data") as exc:
        midi_from_bytes(data, name="cut.mid")
    assert str(exc.value).startswith("cut.mid") and "\n" not in str(exc.value)


def test_corrupt_data_error_is_raised_from_the_cause():
    with pytest.raises(MidiReadError) as exc:
        read_midi(DATA / "truncated.mid")
    assert exc.value.__cause__ is not None


def test_missing_file():
    with pytest.raises(MidiReadError, match="nope.mid: cannot read file"):
        read_midi("nope.mid")


def test_broken_files_read_or_fail_cleanly(shared_data):
    broken = sorted((shared_data / "midi" / "broken").glob("*.mid"))
    assert len(broken) == 3
    outcomes = []
    for f in broken:
        try:
            song = read_midi(f)
        except MidiReadError as e:
            assert f.name in str(e) and "\n" not in str(e)
            outcomes.append("error")
        else:
            assert sum(len(t.notes) for t in song.tracks) > 0
            outcomes.append("song")
    assert outcomes.count("song") >= 1  # the truncated-track file is readable


# --- writing ------------------------------------------------------------------


def test_written_file_layout(shared_data):
    song = read_midi(shared_data / "midi" / "All The Small Things.mid")
    mid = mido.MidiFile(file=io.BytesIO(midi_bytes(song)))
    assert mid.type == 1 and mid.ticks_per_beat == 960
    assert len(mid.tracks) == len(song.tracks) + 1
    conductor = {m.type for m in mid.tracks[0]}
    assert {"set_tempo", "time_signature"} <= conductor
    assert not any(m.type == "note_on" for m in mid.tracks[0])
    for track, mtrack in zip(song.tracks, mid.tracks[1:]):
        assert mtrack.name == track.name
        channels = {m.channel for m in mtrack if m.type in ("note_on", "note_off", "program_change")}
        assert len(channels) == 1
        assert (channels == {9}) == track.is_drum
        programs = [m.program for m in mtrack if m.type == "program_change"]
        assert programs == [track.program]
        assert sum(m.type == "note_on" for m in mtrack) == len(track.notes)
    assert any(t.is_drum for t in song.tracks)


def test_channels_drums_on_9_and_reuse_past_15():
    tracks = [Track(f"T{i}", program=i % 17, notes=[Note(0, 10, 60)]) for i in range(18)]
    tracks.insert(3, Track("Kit", is_drum=True, notes=[Note(0, 10, 36)]))
    ch = assign_channels(tracks)
    assert ch[3] == 9 and ch.count(9) == 1
    melodic = [c for c, t in zip(ch, tracks) if not t.is_drum]
    assert melodic[:15] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15]
    assert melodic[15:] == [0, 1, 0]  # new programs 15, 16 share round-robin; program 0 again joins T0's channel
    song = Song(tracks)
    back = midi_from_bytes(midi_bytes(song))
    assert [(t.name, t.program, t.is_drum) for t in back.tracks] == [(t.name, t.program, t.is_drum) for t in tracks]


def test_velocities_overlaps_and_touching_notes_survive():
    # overlapping notes of one pitch survive when they end in the order they start (MIDI pairs on/off first-in first-out)
    notes = [Note(0, 480, 60, 10), Note(480, 480, 60, 127), Note(240, 480, 60, 64), Note(0, 100, 62, 1), Note(0, 50, 62, 2)]
    song = Song([Track("Lead", program=81, notes=notes)], tempos=[TempoChange(0, 125.0), TempoChange(1000, 97.0)],
                time_signatures=[TimeSignature(0, 7, 8)], title="x")
    back = midi_from_bytes(midi_bytes(song), title="x")
    assert back.tempos[1].qpm == pytest.approx(97.0, rel=1e-6)  # stored as whole microseconds per quarter
    back.tempos = song.tempos
    assert_same_song(song, back)


def test_write_song_and_read_song_dispatch(tmp_path, shared_data):
    src = shared_data / "midi" / "Funkytown.mid"
    song = read_song(src)
    out = write_song(song, tmp_path / "out.mid", source=src)
    assert_same_song(song, read_song(out))
    write_midi(song, tmp_path / "plain.mid")
    assert (tmp_path / "plain.mid").read_bytes() == out.read_bytes()


# --- round trips on real files ------------------------------------------------


@pytest.mark.parametrize("name", REAL)
def test_round_trip_real_files(shared_data, name):
    song = read_midi(shared_data / "midi" / name)
    assert len(song.tracks) >= 3 and song.end > 0
    assert_same_song(song, midi_from_bytes(midi_bytes(song)))


def test_round_trip_corpus_files(shared_data):
    files = sorted((shared_data / "corpus").rglob("*.mid"))
    assert len(files) > 100
    for f in files[:: len(files) // 3][:3]:
        song = read_midi(f)
        assert_same_song(song, midi_from_bytes(midi_bytes(song)))


# --- fuzzing -----------------------------------------------------------------


@pytest.fixture(scope="module")
def real_bytes(shared_data) -> list[bytes]:
    return [(shared_data / "midi" / n).read_bytes() for n in REAL]


@settings(max_examples=40, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    which=st.integers(0, len(REAL) - 1),
    edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=8),
    cut=st.one_of(st.none(), st.floats(0, 1)),
)
def test_mutated_real_files_give_song_or_midi_read_error(real_bytes, which, edits, cut):
    data = bytearray(real_bytes[which])
    for where, value in edits:
        data[int(where * len(data))] = value
    if cut is not None:
        data = data[: int(cut * len(data))]
    try:
        song = midi_from_bytes(bytes(data), name="fuzz.mid")
    except MidiReadError as e:
        assert str(e).startswith("fuzz.mid: ") and "\n" not in str(e)
    else:
        assert isinstance(song, Song) and song.resolution == 960
        assert all(n.duration > 0 for t in song.tracks for n in t.notes)


# --- notes the file does not end cleanly: as pretty_midi reads them, or reported ----------------


def pretty_midi_notes(data: bytes) -> list[tuple[int, int, int]]:
    """(start, end, pitch) in ticks of every note pretty_midi reads (its tick_to_time inverted)."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(io.BytesIO(data))
    return sorted((pm.time_to_tick(n.start), pm.time_to_tick(n.end), n.pitch) for i in pm.instruments for n in i.notes)


def test_note_ons_symusic_leaves_unpaired_are_placed_as_pretty_midi_does():
    cases = {  # name: (events of one track on channel 1, notes pretty_midi reads)
        "two note-ons, one note-off": ([M("note_on", note=60, velocity=90), M("note_on", note=60, velocity=80, time=240),
                                        M("note_off", note=60, time=480)], 2),
        "two note-ons at one tick": ([M("note_on", note=62, velocity=90), M("note_on", note=62, velocity=70),
                                      M("note_off", note=62, time=480)], 2),
        "note-off before its note-on": ([M("note_off", note=64), M("note_on", note=64, velocity=90, time=480),
                                         M("note_off", note=64, time=480)], 1),
        "overlap ended twice": ([M("note_on", note=65, velocity=90), M("note_on", note=65, velocity=90, time=240),
                                 M("note_off", note=65, time=240), M("note_off", note=65, time=240)], 2),
    }
    for what, (events, n_pretty) in cases.items():
        data = build([[MM("track_name", name="Lead"), M("program_change", program=29)] + events])
        theirs = pretty_midi_notes(data)
        assert len(theirs) == n_pretty, what
        song = midi_from_bytes(data)
        (track,) = song.tracks
        assert (track.name, track.program) == ("Lead", 29), what
        assert len(track.notes) == n_pretty and song.warnings == [], what
    # two note-ons of one pitch, one note-off: both end there (960 ticks per quarter here, 480 in the file)
    data = build([[M("note_on", note=60, velocity=90), M("note_on", note=60, velocity=80, time=240),
                   M("note_off", note=60, time=480)]])
    assert [(s * 2, e * 2, p) for s, e, p in pretty_midi_notes(data)] == [(0, 1440, 60), (480, 1440, 60)]
    assert notes_of(midi_from_bytes(data).tracks[0]) == [(0, 1440, 60, 90), (480, 960, 60, 80)]


def test_note_ons_never_ended_are_counted_in_warnings():
    data = build([
        [MM("track_name", name="Bass"), M("program_change", channel=1, program=33),
         M("note_on", channel=1, note=40, velocity=90), M("note_off", channel=1, note=40, time=480),
         M("note_on", channel=1, note=41, velocity=90), M("note_on", channel=1, note=43, velocity=90),
         M("note_off", channel=1, note=43, time=480)],  # 41 never ends
        [M("note_on", channel=9, note=36, velocity=90), M("note_off", channel=9, note=36, time=120),
         M("note_on", channel=9, note=38, velocity=90, time=120), M("note_off", channel=2, note=38, time=120),
         M("note_on", channel=9, note=42, velocity=90), M("note_on", channel=9, note=42, velocity=90, time=120),
         M("note_off", channel=9, note=42, time=120)],  # 38 ended on another channel: never ends
    ])
    assert len(pretty_midi_notes(data)) == 5  # pretty_midi leaves the two unended note-ons out too
    song = midi_from_bytes(data, name="x.mid")
    assert sum(len(t.notes) for t in song.tracks) == 5
    assert song.warnings == ["2 notes dropped: 2 note-ons never ended"]
    with pytest.raises(MidiReadError, match=r"no notes in the file \(1 note dropped: 1 note-on never ended\)"):
        midi_from_bytes(build([[M("note_on", note=60, velocity=90), M("note_off", channel=3, note=60, time=10)]]))


def test_clean_files_have_no_warnings(shared_data):
    for name in REAL:
        assert read_midi(shared_data / "midi" / name).warnings == []


def test_mutated_real_files_keep_every_note_pretty_midi_reads(real_bytes):
    """Byte edits that break note pairing: every note pretty_midi reads is in the song (zero-length
    notes, which pretty_midi drops, are kept), and note-ons that never end are reported."""
    import random

    rng = random.Random(7)
    accepted = warned = refused = 0
    for _ in range(200):
        data = bytearray(real_bytes[rng.randrange(len(real_bytes))])
        for _ in range(rng.randrange(1, 9)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            song = midi_from_bytes(bytes(data))  # ours refuses bad bytes with MidiReadError only
        except MidiReadError:
            refused += 1
            continue
        try:
            theirs = len(pretty_midi_notes(bytes(data)))
        except Exception:  # noqa: BLE001 - pretty_midi refusing bytes that ours reads is fine here
            continue
        accepted += 1
        warned += bool(song.warnings)
        assert sum(len(t.notes) for t in song.tracks) >= theirs
        if accepted == 8:
            break
    assert accepted == 8, f"only {accepted} of 200 mutated files read by both ({refused} refused by ours)"
    assert warned >= 1  # random edits leave note-ons unended in some files, and the reader says so


def test_implicit_meter_round_trips_as_no_time_signature():
    notes = [M("note_on", note=60, velocity=90), M("note_off", note=60, time=1920)]
    bare = midi_from_bytes(build([[MM("set_tempo", tempo=600_000)] + notes]))
    assert bare.implicit_meter and bare.time_signatures == [TimeSignature(0, 4, 4)]  # the model still counts 4/4
    explicit = midi_from_bytes(build([[MM("time_signature", numerator=4, denominator=4)] + notes]))
    assert not explicit.implicit_meter
    later = midi_from_bytes(build([notes[:1] + [MM("time_signature", numerator=3, denominator=4, time=1920)] + notes[1:]]))
    assert later.implicit_meter and later.time_signatures == [TimeSignature(0, 4, 4), TimeSignature(3840, 3, 4)]

    def signatures(song: Song) -> list[tuple[int, int, int]]:
        mid = mido.MidiFile(file=io.BytesIO(midi_bytes(song)))
        return [(m.time, m.numerator, m.denominator) for m in mid.tracks[0] if m.type == "time_signature"]

    assert signatures(bare) == []
    assert signatures(explicit) == [(0, 4, 4)]
    assert signatures(later) == [(3840, 3, 4)]
    again = midi_from_bytes(midi_bytes(bare))
    assert again.implicit_meter and again.time_signatures == bare.time_signatures
    assert not midi_from_bytes(midi_bytes(explicit)).implicit_meter
    assert bare.with_resolution(480).implicit_meter
    bare.time_signatures = [TimeSignature(0, 3, 4)]  # a meter set after reading is written
    assert signatures(bare) == [(0, 3, 4)]


def test_ticks_rescale_to_960_rounding_half_up():
    """At 500 ticks a quarter, tick t is t * 960 / 500 ticks of the song, rounded half up: 1 -> 1.92 -> 2,
    25 -> 48 exactly, 26 -> 49.92 -> 50, 3 -> 5.76 -> 6 (a floor would give 1, 49, 5)."""
    from stemfill.song.song import RESOLUTION

    assert RESOLUTION == 960
    song = midi_from_bytes(build([[M("note_on", note=60, velocity=90, time=1), M("note_off", note=60, time=24),
                                   M("note_on", note=62, velocity=90, time=1), M("note_off", note=62, time=3)]],
                                 ticks_per_beat=500))
    notes = sorted((n.start, n.end) for t in song.tracks for n in t.notes)
    assert notes == [(2, 48), (50, 56)]


# --- assertions that mutation testing showed missing (scripts/mutation.sh, docs/benchmarks.md) -----------

NOTE = [M("note_on", note=60, velocity=90), M("note_off", note=60, time=480)]


@pytest.mark.parametrize("data,why", [
    (b"", "empty file"),
    (b"RIFF" + bytes(20), "not a MIDI file (no MThd header)"),
    (b"MThd" + bytes(9), "not a MIDI file (no MThd header)"),  # shorter than a header
    (b"MThd\x00\x00\x00\x04\x00\x01\x00\x01\x01\xe0", "corrupt MIDI header (length 4 < 6)"),
    (b"MThd\x00\x00\x00\x06\x00\x02\x00\x01\x01\xe0", "MIDI type 2 (independent sequences) is not supported"),
    (b"MThd\x00\x00\x00\x06\x00\x03\x00\x01\x01\xe0", "unknown MIDI type 3"),
    (b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x00\x00", "zero ticks per beat in the MIDI header"),
    (b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\xe7\x28", "SMPTE time division (frames per second) is not supported"),
])
def test_bad_headers_say_what_is_wrong_and_name_the_file(data, why):
    with pytest.raises(MidiReadError) as e:
        midi_from_bytes(data, name="song.mid")
    assert str(e.value) == f"song.mid: {why}"


def test_tempo_map_bounds_and_order_across_tracks():
    at_max = build([[MM("set_tempo", tempo=60_000), *NOTE]])  # exactly 1,000 qpm: the highest taken
    assert midi_from_bytes(at_max).tempos == [TempoChange(0, 1000.0)]
    with pytest.raises(MidiReadError, match=r"^z.mid: tempo of 0 at tick 0$"):
        midi_from_bytes(build([[MM("set_tempo", tempo=0), *NOTE]]), name="z.mid")
    # tempo events in two tracks, the later track's first in time: sorted, the last at a tick wins
    data = build([[MM("set_tempo", tempo=500_000, time=960), *NOTE],
                  [MM("set_tempo", tempo=1_000_000), MM("set_tempo", tempo=750_000, time=480), *NOTE]])
    assert midi_from_bytes(data).tempos == [TempoChange(0, 60.0), TempoChange(960, 80.0), TempoChange(1920, 120.0)]
    assert midi_from_bytes(build([NOTE])).tempos == [TempoChange(0, 120.0)]  # none set: MIDI's 120


def test_time_signature_bounds_and_order():
    def meters(*sigs):
        track = [MM("time_signature", numerator=n, denominator=d, time=t) for t, n, d in sigs]
        return midi_from_bytes(build([track + NOTE])).time_signatures

    assert meters((0, 1, 1), (480, 64, 64)) == [TimeSignature(0, 1, 1), TimeSignature(960, 64, 64)]
    assert meters((0, 65, 4)) == [TimeSignature(0, 4, 4)]  # invalid numerator: dropped, 4/4 stays
    assert meters((0, 3, 128)) == [TimeSignature(0, 4, 4)]  # denominator past 64: dropped
    data = build([[MM("time_signature", numerator=3, denominator=4, time=480), *NOTE],
                  [MM("time_signature", numerator=6, denominator=8), *NOTE]])
    assert midi_from_bytes(data).time_signatures == [TimeSignature(0, 6, 8), TimeSignature(960, 3, 4)]


def test_reader_errors_read_as_one_line():
    from stemfill.song.midi import _reason

    assert _reason(ValueError("Get program=208")) == "program 208 outside 0..127"
    assert _reason(ValueError("Get control_number=300")) == "control number 300 outside 0..127"
    assert _reason(ValueError("MiniMidi:  Invaild\n  event: iostream error")) == "Invalid event"
    assert _reason(KeyError()) == "KeyError"


def test_written_file_layout():
    """What the writer promises a sequencer: type 1 at the song's resolution, a conductor track (title, meters,
    tempos, absolute times as written), then one track per instrument: its name, its program on its channel,
    and at each tick the note-offs before the note-ons (a repeated pitch is re-struck, not cut)."""
    import io

    song = Song(tracks=[Track(name="Bass", program=33, notes=[Note(0, 480, 40, 90), Note(480, 480, 40, 80)]),
                        Track(name="Drums", is_drum=True, notes=[Note(0, 100, 36, 100)])],
                resolution=960, title="t", tempos=[TempoChange(0, 100.0), TempoChange(1920, 90.0)],
                time_signatures=[TimeSignature(0, 3, 4)])
    mid = mido.MidiFile(file=io.BytesIO(midi_bytes(song)))
    assert mid.type == 1 and mid.ticks_per_beat == 960 and len(mid.tracks) == 3

    def events(track):
        now, out = 0, []
        for m in track:
            now += m.time
            d = m.dict()
            out.append((now, m.type, *(d[k] for k in ("name", "numerator", "denominator", "tempo", "program",
                                                       "note", "velocity", "channel") if k in d)))
        return out

    assert events(mid.tracks[0]) == [(0, "track_name", "t"), (0, "time_signature", 3, 4), (0, "set_tempo", 600000),
                                     (1920, "set_tempo", 666667), (1920, "end_of_track")]
    # (tick, type, program or note, velocity, channel)
    assert events(mid.tracks[1]) == [(0, "track_name", "Bass"), (0, "program_change", 33, 0),
                                     (0, "note_on", 40, 90, 0), (480, "note_off", 40, 0, 0),
                                     (480, "note_on", 40, 80, 0), (960, "note_off", 40, 0, 0), (960, "end_of_track")]
    assert events(mid.tracks[2])[1:4] == [(0, "program_change", 0, 9), (0, "note_on", 36, 100, 9),
                                          (100, "note_off", 36, 0, 9)]


def test_a_retriggered_note_is_kept_as_pretty_midi_keeps_it():
    """Two note-ons of one pitch before its note-off: symusic pairs the first and leaves the second; the reader
    places it at the next note-off after its start (as pretty_midi does), in the track and program it came in."""
    track = [M("program_change", channel=2, program=29), M("note_on", channel=2, note=60, velocity=90),
             M("note_on", channel=2, note=60, velocity=80, time=100), M("note_off", channel=2, note=60, time=100),
             M("note_on", channel=2, note=64, velocity=70, time=20), M("note_off", channel=2, note=64, time=40)]
    data = build([[MM("set_tempo", tempo=500_000)], track])
    song = midi_from_bytes(data)
    assert song.warnings == [] and [(t.program, t.is_drum) for t in song.tracks] == [(29, False)]
    notes = sorted((n.start, n.end, n.pitch, n.velocity) for n in song.tracks[0].notes)
    assert notes == [(0, 400, 60, 90), (200, 400, 60, 80), (440, 520, 64, 70)]  # 480 ticks a quarter -> 960
    assert len(notes) == len(pretty_midi_notes(data))
