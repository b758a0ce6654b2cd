"""Guitar Pro 6/7/8 reader (gpx.py, gpif.py): tiny .gp/.gpx files built in code, the real files, bad input."""

from __future__ import annotations

import io
import random
import struct
import zipfile
from collections import Counter
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from typer.testing import CliRunner

from stemfill.cli import app
from stemfill.errors import GuitarProReadError
from stemfill.song.gpx import SECTOR, BcfzCutShort, GpxError, decompress_bcfz, gpx_files, read_bcfs
from stemfill.song.guitarpro import read_guitarpro
from stemfill.song.io import read_song
from stemfill.pianoroll.roll import DRUM_CLASS_OF_KEY, DRUM_KIT
from stemfill.song.stems import classify_track

Q = 960
STD = (40, 45, 50, 55, 59, 64)  # GPIF order: lowest string first
runner = CliRunner()


# --- a tiny GPIF builder ------------------------------------------------------------------------

class Gpif:
    """Builds a score.gpif: every object gets the next id of its kind; ids can be reused like GP6 does."""

    def __init__(self, title: str = "Tiny", anacrusis: bool = False):
        self.title, self.anacrusis = title, anacrusis
        self.tracks: list[str] = []
        self.masters: list[str] = []
        self.parts: dict[str, list[str]] = {k: [] for k in ("Bar", "Voice", "Beat", "Note", "Rhythm")}
        self.autos: list[str] = []
        self._rhythms: dict[tuple, str] = {}

    def _add(self, kind: str, inner: str) -> str:
        i = str(len(self.parts[kind]))
        self.parts[kind].append(f'<{kind} id="{i}">{inner}</{kind}>')
        return i

    # notes
    def fretted(self, string: int, fret: int, extra: str = "", midi: int | None = None) -> str:
        props = f'<Property name="String"><String>{string}</String></Property><Property name="Fret"><Fret>{fret}</Fret></Property>'
        if midi is not None:
            props += f'<Property name="Midi"><Number>{midi}</Number></Property>'
        return self._add("Note", f"{extra}<Properties>{props}</Properties>")

    def tone(self, step: int, octave: int) -> str:  # GP6 keyboards / winds
        return self._add("Note", f'<Properties><Property name="Tone"><Step>{step}</Step></Property>'
                                 f'<Property name="Octave"><Number>{octave}</Number></Property></Properties>')

    def articulation(self, index: int) -> str:  # GP7/8 drums
        return self._add("Note", f"<InstrumentArticulation>{index}</InstrumentArticulation><Properties/>")

    def element(self, element: int, variation: int) -> str:  # GP6 drums
        return self._add("Note", f'<Properties><Property name="Element"><Element>{element}</Element></Property>'
                                 f'<Property name="Variation"><Variation>{variation}</Variation></Property></Properties>')

    # rhythm, beats, voices, bars
    def rhythm(self, value: str = "Quarter", dots: int = 0, tuplet: tuple[int, int] | None = None) -> str:
        key = (value, dots, tuplet)
        if key not in self._rhythms:
            inner = f"<NoteValue>{value}</NoteValue>"
            inner += f'<AugmentationDot count="{dots}"/>' if dots else ""
            inner += f'<PrimaryTuplet num="{tuplet[0]}" den="{tuplet[1]}"/>' if tuplet else ""
            self._rhythms[key] = self._add("Rhythm", inner)
        return self._rhythms[key]

    def beat(self, rhythm: str | tuple = "Quarter", notes: list[str] = (), extra: str = "") -> str:
        rid = self.rhythm(*rhythm) if isinstance(rhythm, tuple) else self.rhythm(rhythm)
        inner = f'<Rhythm ref="{rid}"/>' + (f"<Notes>{' '.join(notes)}</Notes>" if notes else "") + extra
        return self._add("Beat", inner)

    def voice(self, beats: list[str]) -> str:
        return self._add("Voice", f"<Beats>{' '.join(beats)}</Beats>")

    def bar(self, voices: list[str] = (), extra: str = "") -> str:
        ids = list(voices) + ["-1"] * (4 - len(voices))
        return self._add("Bar", f"<Clef>G2</Clef><Voices>{' '.join(ids)}</Voices>{extra}")

    def master(self, bars: list[str], time: str = "4/4", extra: str = "") -> None:
        self.masters.append(f"<MasterBar><Key><AccidentalCount>0</AccidentalCount><Mode>Major</Mode></Key>"
                            f"<Time>{time}</Time>{extra}<Bars>{' '.join(bars)}</Bars></MasterBar>")

    def tempo(self, bar: int, value: str, position: float = 0.0, linear: bool = False) -> None:
        self.autos.append(f"<Automation><Type>Tempo</Type><Linear>{str(linear).lower()}</Linear><Bar>{bar}</Bar>"
                          f"<Position>{position}</Position><Visible>true</Visible><Value>{value}</Value></Automation>")

    # tracks
    def gp7_track(self, name: str, kind: str = "electricGuitar", program: int = 29, tuning=STD, capo: int = 0,
                  articulations: list[int] | None = None, staves: int = 1) -> None:
        props = f'<Property name="CapoFret"><Fret>{capo}</Fret></Property>'
        if tuning:
            props += f'<Property name="Tuning"><Pitches>{" ".join(map(str, tuning))}</Pitches></Property>'
        elements = ""
        if articulations is not None:
            arts = "".join(f"<Articulation><Name>a{k}</Name><InputMidiNumbers>{k}</InputMidiNumbers>"
                           f"<OutputMidiNumber>{k}</OutputMidiNumber></Articulation>" for k in articulations)
            elements = f"<Elements><Element><Name>Kit</Name><Type>kit</Type><Articulations>{arts}</Articulations></Element></Elements>"
        staff = f"<Staff><Properties>{props}</Properties></Staff>"
        self.tracks.append(
            f'<Track id="{len(self.tracks)}"><Name>{escape(name)}</Name><InstrumentSet><Name>{kind}</Name><Type>{kind}</Type>'
            f"{elements}</InstrumentSet><Sounds><Sound><Name>s</Name><MIDI><LSB>0</LSB><MSB>0</MSB><Program>{program}</Program>"
            f"</MIDI></Sound></Sounds><Staves>{staff * staves}</Staves></Track>")

    def gp6_track(self, name: str, ref: str = "e-gtr6", program: int = 29, tuning=STD, percussion: bool = False) -> None:
        props = f'<Properties><Property name="Tuning"><Pitches>{" ".join(map(str, tuning))}</Pitches></Property></Properties>' if tuning else ""
        table = "Percussion" if percussion else "Instrument"
        self.tracks.append(
            f'<Track id="{len(self.tracks)}"><Name>{escape(name)}</Name><Instrument ref="{ref}"/>'
            f'<GeneralMidi table="{table}"><Program>{program}</Program><PrimaryChannel>{9 if percussion else 0}</PrimaryChannel>'
            f"</GeneralMidi>{props}</Track>")

    def xml(self) -> bytes:
        parts = "".join(f"<{k}s>{''.join(v)}</{k}s>" for k, v in self.parts.items())
        return (f'<?xml version="1.0" encoding="utf-8"?><GPIF><GPRevision>12021</GPRevision>'
                f"<Score><Title><![CDATA[{self.title}]]></Title></Score>"
                f"<MasterTrack><Tracks>{' '.join(str(i) for i in range(len(self.tracks)))}</Tracks>"
                f"{'<Anacrusis/>' if self.anacrusis else ''}<Automations>{''.join(self.autos)}</Automations></MasterTrack>"
                f"<Tracks>{''.join(self.tracks)}</Tracks><MasterBars>{''.join(self.masters)}</MasterBars>{parts}</GPIF>").encode()

    def write_gp(self, path: Path) -> Path:
        write_gp(path, self.xml())
        return path


def write_gp(path: Path, xml: bytes, name: str = "Content/score.gpif") -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("VERSION", "7.0")
        z.writestr(name, xml)


def one_bar_song(b: Gpif, beats: list[str], **track) -> Gpif:
    b.gp7_track("Guitar", **track)
    b.master([b.bar([b.voice(beats)])])
    return b


def spans(track) -> list[tuple[int, int, int]]:
    return [(n.start, n.duration, n.pitch) for n in track.notes]


# --- BCFZ / BCFS, written in code ----------------------------------------------------------------

def bcfz(data: bytes, refs: bool = True) -> bytes:
    """Compress as Guitar Pro 6 does (greedy back-references of up to 255 bytes, else 1-3 byte literals)."""
    bits: list[str] = []
    i = 0
    while i < len(data):
        best = (0, 0)
        if refs:
            for off in range(1, min(i, 255) + 1):
                n = 0
                while i + n < len(data) and n < min(off, 255) and data[i - off + n] == data[i + n]:
                    n += 1
                if n > best[1]:
                    best = (off, n)
        if best[1] >= 3:
            off, n = best
            bits += ["1", format(8, "04b"), format(off, "08b")[::-1], format(n, "08b")[::-1]]
            i += n
        else:
            n = min(3, len(data) - i)
            bits += ["0", format(n, "02b")[::-1]] + [format(c, "08b") for c in data[i : i + n]]
            i += n
    s = "".join(bits)
    s += "0" * (-len(s) % 8)
    return b"BCFZ" + struct.pack("<i", len(data)) + int(s or "0", 2).to_bytes(len(s) // 8, "big")


def bcfs(files: dict[str, bytes]) -> bytes:
    """A BCFS image laid out as GP6 writes it: header sector, root directory entry, first file entry,
    the directory's data, the file's data, then the next files.

    The directory's data sector starts with the int 2 (the sector of the first entry): a reader that
    does not skip data sectors takes it for a file entry, as it would in the real files.
    """
    sectors = [bytearray(SECTOR)]  # 0: header

    def new() -> int:
        sectors.append(bytearray(SECTOR))
        return len(sectors) - 1

    root = new()
    struct.pack_into("<i", sectors[root], 0, 1)
    sectors[root][4:5] = b"/"
    entries, dir_data = [], None
    for name, content in files.items():
        e = new()
        entries.append(e)
        if dir_data is None:
            dir_data = new()
        struct.pack_into("<i", sectors[e], 0, 2)
        sectors[e][4 : 4 + len(name)] = name.encode()
        struct.pack_into("<i", sectors[e], 0x8C, len(content))
        for k in range(max(1, -(-len(content) // SECTOR))):
            d = new()
            chunk = content[k * SECTOR : (k + 1) * SECTOR]
            sectors[d][: len(chunk)] = chunk
            struct.pack_into("<i", sectors[e], 0x94 + 4 * k, d)
    dir_data = new() if dir_data is None else dir_data
    struct.pack_into("<i", sectors[root], 0x94, dir_data)
    for k, e in enumerate(entries):
        struct.pack_into("<i", sectors[dir_data], 4 * k, e)
    return b"BCFS" + b"".join(bytes(x) for x in sectors)


def test_bcfz_literals_and_back_references():
    # literal "abc" (count 3), then a back-reference 3 back, 3 long, then literal "!" (count 1)
    bits = "0" + "11" + "".join(format(c, "08b") for c in b"abc") + "1" + "0100" + "1100" + "1100" + "0" + "10" + format(ord("!"), "08b")
    bits += "0" * (-len(bits) % 8)
    data = b"BCFZ" + struct.pack("<i", 7) + int(bits, 2).to_bytes(len(bits) // 8, "big")
    assert decompress_bcfz(data) == b"abcabc!"
    rng = random.Random(0)
    for payload in (b"x" * 1000, bytes(rng.randrange(4) for _ in range(3000)), rng.randbytes(500)):
        assert decompress_bcfz(bcfz(payload)) == payload
        assert decompress_bcfz(bcfz(payload, refs=False)) == payload


def test_bcfz_bad_streams():
    good = bcfz(b"hello hello hello")
    with pytest.raises(GpxError, match="ends"):
        decompress_bcfz(good[:12])
    with pytest.raises(GpxError, match="back-reference"):  # a reference before the first byte
        bits = "1" + "0100" + "1000" + "1000"
        decompress_bcfz(b"BCFZ" + struct.pack("<i", 4) + int(bits + "000", 2).to_bytes(2, "big"))
    with pytest.raises(GpxError, match="announces"):
        decompress_bcfz(b"BCFZ" + struct.pack("<i", -5) + b"\0" * 8)


def test_bcfs_file_system():
    big = bytes(range(256)) * 20  # 5120 bytes: two sectors
    image = bcfs({"score.gpif": big, "misc.xml": b"<x/>"})
    files = read_bcfs(image)
    assert files == {"score.gpif": big, "misc.xml": b"<x/>"}
    assert gpx_files(bcfz(image)) == files
    with pytest.raises(GpxError, match="not a BCFS"):
        read_bcfs(b"ABCD" + image[4:])


# --- the reader, on files built in code -----------------------------------------------------------

def test_fretted_track_basics(tmp_path):
    b = Gpif(title="Basics")
    beats = [b.beat("Quarter", [b.fretted(0, 3)]), b.beat("Quarter", [b.fretted(5, 0), b.fretted(4, 1)]),
             b.beat("Half")]
    one_bar_song(b, beats, program=27)
    b.tempo(0, "100 2")
    song = read_song(b.write_gp(tmp_path / "basics.gp"))
    (t,) = song.tracks
    assert (song.title, t.name, t.program, t.is_drum, t.tuning) == ("Basics", "Guitar", 27, False, tuple(reversed(STD)))
    assert spans(t) == [(0, Q, 43), (Q, Q, 60), (Q, Q, 64)]
    assert [(n.string, n.fret) for n in t.notes] == [(6, 3), (2, 1), (1, 0)]  # string 1 = highest, as gp5
    assert [(x.time, x.qpm) for x in song.tempos] == [(0, 100.0)]
    assert [(x.numerator, x.denominator) for x in song.time_signatures] == [(4, 4)]
    assert classify_track(t) == "guitar" and song.warnings == []


def test_rhythms_dots_and_tuplets(tmp_path):
    b = Gpif()
    n = lambda: [b.fretted(0, 0)]
    bar1 = [b.beat(("Eighth", 0, (3, 2)), n()) for _ in range(3)] + [b.beat(("Quarter", 1), n()), b.beat("Eighth", n()),
                                                                     b.beat("Quarter", n())]
    bar2 = [b.beat(("Quarter", 2), n()), b.beat("16th", n()), b.beat(("16th", 0, (5, 4)), n()), b.beat(("Half", 0, (3, 2)), n())]
    bar3 = [b.beat(("16th", 0, (7, 4)), n()) for _ in range(7)] + [b.beat("Quarter"), b.beat("Half")]
    b.gp7_track("Guitar")
    for beats in (bar1, bar2, bar3):
        b.master([b.bar([b.voice(beats)])])
    t = read_song(b.write_gp(tmp_path / "rhythm.gp")).tracks[0]
    starts = [n.start for n in t.notes]
    assert starts[:6] == [0, 320, 640, 960, 2400, 2880]
    assert starts[6:10] == [3840, 3840 + 1680, 3840 + 1920, 3840 + 1920 + 192]
    assert [n.duration for n in t.notes[6:10]] == [1680, 240, 192, 1280]
    assert starts[10:] == [7680 + round(k * 960 / 7) for k in range(7)]  # exact fractions, rounded once


def test_ties_voices_dead_ghost_accents_dynamics(tmp_path):
    b = Gpif()
    origin = b.fretted(2, 5, '<Tie origin="true" destination="false"/>')
    dest = b.fretted(2, 5, '<Tie origin="false" destination="true"/>')
    v1 = [b.beat("Quarter", [origin]), b.beat("Quarter", [dest]),
          b.beat("Quarter", [b.fretted(1, 0)]),
          b.beat("Quarter", [b.fretted(0, 0, "<AntiAccent>Normal</AntiAccent>")], "<Dynamic>PP</Dynamic>")]
    v2 = [b.beat("Half", [b.fretted(5, 3, "<Accent>8</Accent>")]), b.beat("Half", [b.fretted(5, 5, "<Accent>4</Accent>")])]
    b.gp7_track("Guitar")
    b.master([b.bar([b.voice(v1), b.voice(v2)])])
    t = read_song(b.write_gp(tmp_path / "ties.gp")).tracks[0]
    got = {(n.start, n.pitch): (n.duration, n.velocity) for n in t.notes}
    assert got[(0, 55)] == (2 * Q, 95)  # tie merged
    assert (Q, 55) not in got and got[(2 * Q, 45)] == (Q, 95)
    assert got[(3 * Q, 40)] == (Q, 31 - 16)  # PP, ghost
    assert got[(0, 67)] == (2 * Q, 95 + 16) and got[(2 * Q, 69)] == (2 * Q, 95 + 32)  # second voice, accents


def test_dead_note(tmp_path):
    b = Gpif()
    dead = b._add("Note", '<Properties><Property name="String"><String>0</String></Property><Property name="Fret"><Fret>0</Fret>'
                          '</Property><Property name="Muted"><Enable/></Property></Properties>')
    one_bar_song(b, [b.beat("Whole", [dead])])
    t = read_song(b.write_gp(tmp_path / "dead.gp")).tracks[0]
    assert spans(t) == [(0, Q // 4, 40)]


def test_grace_notes_are_left_out(tmp_path):
    b = Gpif()
    beats = [b.beat("Quarter", [b.fretted(0, 0)]), b.beat("16th", [b.fretted(0, 2)], "<GraceNotes>BeforeBeat</GraceNotes>"),
             b.beat("Quarter", [b.fretted(0, 3)]), b.beat("Half")]
    one_bar_song(b, beats)
    song = read_song(b.write_gp(tmp_path / "grace.gp"))
    assert spans(song.tracks[0]) == [(0, Q, 40), (Q, Q, 43)]
    assert song.warnings == ["1 grace note left out"]


def test_repeats_and_alternate_endings(tmp_path):
    b = Gpif()
    b.gp7_track("Guitar")
    marks = ['<Repeat start="true" end="false" count="0"/>', '<AlternateEndings>1</AlternateEndings><Repeat start="false" end="true" count="2"/>',
             "<AlternateEndings>2</AlternateEndings>", ""]
    for k, extra in enumerate(marks):
        b.master([b.bar([b.voice([b.beat("Whole", [b.fretted(0, k)])])])], extra=extra)
    t = read_song(b.write_gp(tmp_path / "endings.gp")).tracks[0]
    assert [(n.start, n.pitch) for n in t.notes] == [(0, 40), (3840, 41), (7680, 40), (11520, 42), (15360, 43)]

    b = Gpif()
    b.gp7_track("Guitar")
    for k, extra in enumerate(['<Repeat start="true" end="false" count="0"/>', '<Repeat start="false" end="true" count="3"/>', ""]):
        b.master([b.bar([b.voice([b.beat("Whole", [b.fretted(0, k)])])])], extra=extra)
    song = read_song(b.write_gp(tmp_path / "thrice.gp"))
    assert [n.pitch - 40 for n in song.tracks[0].notes] == [0, 1, 0, 1, 0, 1, 2]
    assert song.n_bars == 7


def test_tempo_automations(tmp_path):
    b = Gpif()
    b.gp7_track("Guitar")
    for k in range(4):
        b.master([b.bar([b.voice([b.beat("Whole", [b.fretted(0, 0)])])])])
    b.tempo(0, "120 2")
    b.tempo(1, "100 1", position=0.5)  # 100 eighths a minute = 50 qpm, half-way through bar 2
    b.tempo(2, "60 2", linear=True)  # a ramp from 60 ...
    b.tempo(2, "90 3", position=0.5)  # ... to 90 dotted quarters = 135 qpm: a step at the ramp's start
    b.tempo(3, "200 4")  # half notes: 400 qpm
    song = read_song(b.write_gp(tmp_path / "tempo.gp"))
    assert [(x.time, x.qpm) for x in song.tempos] == [(0, 120.0), (3840 + 1920, 50.0), (7680, 135.0), (11520, 400.0)]

    b = Gpif()
    one_bar_song(b, [b.beat("Whole", [b.fretted(0, 0)])])
    assert [(x.time, x.qpm) for x in read_song(b.write_gp(tmp_path / "none.gp")).tempos] == [(0, 120.0)]


def test_meter_changes_and_pickup_bar(tmp_path):
    b = Gpif(anacrusis=True)
    b.gp7_track("Guitar")
    b.master([b.bar([b.voice([b.beat("Quarter", [b.fretted(0, 0)])])])])  # a one-beat pickup in 4/4
    b.master([b.bar([b.voice([b.beat("Whole", [b.fretted(0, 1)])])])])
    b.master([b.bar([b.voice([b.beat(("Half", 1), [b.fretted(0, 2)])])])], time="3/4")
    b.master([b.bar([b.voice([b.beat(("Quarter", 1), [b.fretted(0, 3)])])])], time="6/8")
    song = read_song(b.write_gp(tmp_path / "meter.gp"))
    assert [(n.start, n.pitch) for n in song.tracks[0].notes] == [(3 * Q, 40), (4 * Q, 41), (8 * Q, 42), (11 * Q, 43)]
    assert [(x.time, x.numerator, x.denominator) for x in song.time_signatures] == [(0, 4, 4), (8 * Q, 3, 4), (11 * Q, 6, 8)]
    assert song.bar_starts() == [0, 4 * Q, 8 * Q, 11 * Q]


def test_simile_mark_repeats_the_previous_bar(tmp_path):
    b = Gpif()
    b.gp7_track("Guitar")
    b.master([b.bar([b.voice([b.beat("Half", [b.fretted(0, 7)]), b.beat("Half")])])])
    b.master([b.bar([b.voice([b.beat("Whole")])], extra="<SimileMark>Simple</SimileMark>")])
    t = read_song(b.write_gp(tmp_path / "simile.gp")).tracks[0]
    assert spans(t) == [(0, 2 * Q, 47), (4 * Q, 2 * Q, 47)]


def test_capo_and_non_fretted_tracks(tmp_path):
    b = Gpif()
    b.gp7_track("Capo guitar", capo=2)
    b.gp7_track("Flute", kind="flute", program=73)  # GP7 gives a flute a guitar tuning: dropped
    b.gp7_track("Bass", kind="electricBass", program=33, tuning=(28, 33, 38, 43))
    b.master([b.bar([b.voice([b.beat("Whole", [b.fretted(0, 1)])])]),
              b.bar([b.voice([b.beat("Whole", [b.fretted(4, 5, midi=64)])])]),
              b.bar([b.voice([b.beat("Whole", [b.fretted(0, 0)])])])])
    capo, flute, bass = read_song(b.write_gp(tmp_path / "capo.gp")).tracks
    assert spans(capo) == [(0, 4 * Q, 43)] and (capo.notes[0].string, capo.notes[0].fret) == (6, 1)
    assert flute.tuning is None and spans(flute) == [(0, 4 * Q, 64)] and flute.notes[0].string is None
    assert (classify_track(flute), classify_track(bass), bass.tuning) == ("other", "bass", (43, 38, 33, 28))


def test_two_staves_one_track(tmp_path):
    b = Gpif()
    b.gp7_track("Piano", kind="acousticPiano", program=0, tuning=None, staves=2)
    b.gp7_track("Guitar")
    b.master([b.bar([b.voice([b.beat("Whole", [b.fretted(0, 0, midi=72)])])]),
              b.bar([b.voice([b.beat("Whole", [b.fretted(0, 0, midi=48)])])]),
              b.bar([b.voice([b.beat("Whole", [b.fretted(0, 5)])])])])
    piano, guitar = read_song(b.write_gp(tmp_path / "staves.gp")).tracks
    assert sorted(n.pitch for n in piano.notes) == [48, 72] and spans(guitar) == [(0, 4 * Q, 45)]


def test_drums_gp7_articulations_and_gp6_elements(tmp_path):
    b = Gpif()
    b.gp7_track("Kit", kind="drumKit", program=0, tuning=None, articulations=[38, 42, 46, 36, 53])
    b.master([b.bar([b.voice([b.beat("Quarter", [b.articulation(k)]) for k in (3, 0, 1, 2)])])])
    (kit,) = read_song(b.write_gp(tmp_path / "kit.gp")).tracks
    assert kit.is_drum and kit.program == 0 and kit.tuning is None
    assert [n.pitch for n in kit.notes] == [36, 38, 42, 46]

    b = Gpif()
    b.gp6_track("Drums", ref="drmkt", program=0, tuning=None, percussion=True)
    hits = [(0, 0), (1, 0), (1, 1), (1, 2), (10, 0), (10, 1), (10, 2), (11, 0), (15, 0), (15, 1), (15, 2), (5, 0), (16, 0), (40, 0)]
    b.master([b.bar([b.voice([b.beat("16th", [b.element(e, v)]) for e, v in hits])])])
    (kit,) = read_song(b.write_gp(tmp_path / "kit6.gp")).tracks
    assert kit.is_drum and classify_track(kit) == "drums"
    assert [n.pitch for n in kit.notes] == [36, 38, 38, 37, 42, 46, 46, 44, 51, 51, 53, 43, 52, 38]
    names = [DRUM_KIT[DRUM_CLASS_OF_KEY[n.pitch]][0] for n in kit.notes]
    assert names[:8] == ["kick", "snare", "snare", "side stick", "closed hi-hat", "open hi-hat", "open hi-hat", "pedal hi-hat"]
    assert names[8:] == ["ride", "ride", "ride bell", "low tom", "china", "snare"]


def test_gp6_tracks_and_gpx_container(tmp_path):
    b = Gpif(title="Six")
    b.gp6_track("Guitar", ref="s-gtr6", program=25)
    b.gp6_track("Keys", ref="a-piano-ss", program=0, tuning=None)
    b.gp6_track("Violin", ref="vln", program=40, tuning=(55, 62, 69, 76))
    shared = b.beat("Half", [b.fretted(1, 2)])  # one beat id used twice, as GP6 does
    b.master([b.bar([b.voice([shared, shared])]), b.bar([b.voice([b.beat("Whole", [b.tone(3, 5)])])]),
              b.bar([b.voice([b.beat("Whole", [b.fretted(0, 2)])])])])
    xml = b.xml()
    (tmp_path / "six.gpx").write_bytes(bcfz(bcfs({"score.gpif": xml, "misc.xml": b"<misc/>"})))
    (tmp_path / "plain.gpx").write_bytes(bcfs({"score.gpif": xml}))  # uncompressed BCFS
    write_gp(tmp_path / "six.gp", xml)
    songs = [read_song(tmp_path / n) for n in ("six.gpx", "plain.gpx", "six.gp")]
    assert songs[0] == songs[1] == songs[2]
    guitar, keys, violin = songs[0].tracks
    assert spans(guitar) == [(0, 2 * Q, 47), (2 * Q, 2 * Q, 47)] and guitar.tuning == tuple(reversed(STD))
    assert spans(keys) == [(0, 4 * Q, 63)] and keys.tuning is None and classify_track(keys) == "other"
    assert spans(violin) == [(0, 4 * Q, 57)] and violin.tuning is None  # bowed: no tab tuning kept
    assert songs[0].title == "Six"


def test_extension_does_not_matter(tmp_path):
    b = Gpif()
    one_bar_song(b, [b.beat("Whole", [b.fretted(0, 0)])])
    b.write_gp(tmp_path / "named.gp5")  # a GP7 zip saved as .gp5: recognised by its first bytes
    assert spans(read_guitarpro(tmp_path / "named.gp5").tracks[0]) == [(0, 4 * Q, 40)]
    import guitarpro as gp

    gp.write(gp.Song(), str(tmp_path / "old.gp"), version=(5, 1, 0))  # a gp5 saved as .gp: PyGuitarPro reads it
    with pytest.raises(GuitarProReadError, match="no notes"):  # (an empty tab), not "not a Guitar Pro 6-8 file"
        read_song(tmp_path / "old.gp")


def band_gpx(tmp_path: Path, bars: int = 4) -> bytes:
    """A GP6 container: guitar and bass over ``bars`` bars, then another file after the score (as GP6 writes
    misc.xml, the stylesheet, ...)."""
    b = Gpif(title="Cut")
    b.gp6_track("Guitar", ref="s-gtr6", program=25)
    b.gp6_track("Bass", ref="e-bass4", program=33, tuning=(28, 33, 38, 43))
    for k in range(bars):
        b.master([b.bar([b.voice([b.beat("Quarter", [b.fretted(s, (k + s) % 5)]) for s in range(4)])]),
                  b.bar([b.voice([b.beat("Half", [b.fretted(1, k % 3)]), b.beat("Half", [b.fretted(0, 3)])])])])
    return bcfz(bcfs({"score.gpif": b.xml(), "misc.xml": b"<misc>" + b"stylesheet " * 200 + b"</misc>"}))


def test_gpx_cut_short_reads_what_is_there(tmp_path):
    """A .gpx whose compressed stream ends bytes short of the length it announces (as a real tab did) reads,
    with one warning line; one cut inside the score itself is refused in one line."""
    data = band_gpx(tmp_path)
    (tmp_path / "full.gpx").write_bytes(data)
    (tmp_path / "cut.gpx").write_bytes(data[:-2])
    with pytest.raises(BcfzCutShort, match="ends"):
        decompress_bcfz(data[:-2])
    with pytest.raises(GpxError):
        gpx_files(data[:-2])  # without a list for the warning, a cut stream stays an error
    full, cut = read_song(tmp_path / "full.gpx"), read_song(tmp_path / "cut.gpx")
    assert cut.tracks == full.tracks and sum(len(t.notes) for t in cut.tracks) == 24
    assert full.warnings == [] and len(cut.warnings) == 1
    assert cut.warnings[0].startswith("file cut short: its compressed data ends after ")
    res = runner.invoke(app, ["info", str(tmp_path / "cut.gpx")], env={"COLUMNS": "160"})
    assert res.exit_code == 0 and res.output.count(f"warning: {tmp_path / 'cut.gpx'}: file cut short") == 1
    score_cut = bcfz(bcfs({"score.gpif": Gpif().xml()}))
    (tmp_path / "score-cut.gpx").write_bytes(score_cut[: len(score_cut) * 2 // 3])
    with pytest.raises(GuitarProReadError) as err:
        read_song(tmp_path / "score-cut.gpx")
    msg = str(err.value)
    assert "score-cut.gpx" in msg and "file cut short" in msg and "\n" not in msg


def test_convert_keeps_a_gpx_cut_short(tmp_path):
    from stemfill.datasets import convert as C

    (tmp_path / "songs").mkdir()
    (tmp_path / "songs" / "cut.gpx").write_bytes(band_gpx(tmp_path, bars=16)[:-2])
    lines: list[str] = []
    rep = C.convert([tmp_path / "songs"], tmp_path / "out", jobs=1, log=lines.append)
    assert rep.n_songs == 1 and not rep.skipped
    assert sum(line.startswith("warning: cut.gpx: file cut short") for line in lines) == 1


# --- bad input: one line naming the file -----------------------------------------------------------

def _bad_cases(tmp_path: Path) -> dict[str, tuple[bytes, str]]:
    b = Gpif()
    one_bar_song(b, [b.beat("Whole", [b.fretted(0, 0)])])
    good = b.xml()
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("Content/other.xml", "<x/>")

    def gp(xml: bytes) -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("Content/score.gpif", xml)
        return buf.getvalue()

    full = gp(good)
    return {
        "no-score.gp": (zipped.getvalue(), "no Content/score.gpif"),
        "truncated.gp": (full[: len(full) // 2], "not a readable Guitar Pro 7/8"),
        "not-xml.gp": (gp(b"<GPIF><Tracks>"), "not well-formed XML"),
        "other-root.gp": (gp(b"<Score/>"), "root element is <Score>"),
        "dangling.gp": (gp(good.replace(b'<Rhythm ref="0"/>', b'<Rhythm ref="9"/>')), "rhythm id '9'"),
        "bad-meter.gp": (gp(good.replace(b"<Time>4/4</Time>", b"<Time>4/0</Time>")), "time signature 4/0"),
        "bad-fret.gp": (gp(good.replace(b"<Fret>0</Fret>", b"<Fret>x</Fret>")), "not an integer"),
        "no-notes.gp": (gp(good.replace(b"<Notes>0</Notes>", b"")), "no notes"),
        "no-masterbars.gp": (gp(good.replace(good[good.index(b"<MasterBars>"):good.index(b"</MasterBars>")], b"<MasterBars>")), "no master bars"),
        "truncated.gpx": (bcfz(bcfs({"score.gpif": good}))[:300], "not a readable Guitar Pro 6"),
        "no-score.gpx": (bcfs({"misc.xml": b"<x/>"}), "has no score.gpif"),
        "empty.gpx": (b"", "not a Guitar Pro 6-8 file"),
    }


def test_malformed_files_give_one_line(tmp_path):
    for name, (content, problem) in _bad_cases(tmp_path).items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(GuitarProReadError) as err:
            read_song(tmp_path / name)
        msg = str(err.value)
        assert str(tmp_path / name) in msg and "\n" not in msg and problem in msg, (name, msg)


def test_cli_on_gp_files(tmp_path):
    b = Gpif(title="Cli")
    b.gp7_track("Lead", program=29)
    b.gp7_track("Kit", kind="drumKit", program=0, tuning=None, articulations=[36, 38])
    b.master([b.bar([b.voice([b.beat("Half", [b.fretted(0, 0)]), b.beat("Half", [b.fretted(0, 2)])])]),
              b.bar([b.voice([b.beat("Half", [b.articulation(0)]), b.beat("Half", [b.articulation(1)])])])])
    b.write_gp(tmp_path / "cli.gp")
    res = runner.invoke(app, ["info", str(tmp_path / "cli.gp")], env={"COLUMNS": "160"})
    assert res.exit_code == 0, res.output
    assert "Lead" in res.output and "Kit" in res.output
    res = runner.invoke(app, ["plot", str(tmp_path / "cli.gp"), "-o", str(tmp_path / "cli.png")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "cli.png").stat().st_size > 1000
    (tmp_path / "bad.gpx").write_bytes(b"BCFZ" + b"\xff" * 40)
    res = runner.invoke(app, ["info", str(tmp_path / "bad.gpx")])
    lines = res.output.strip().splitlines()
    assert res.exit_code == 1 and len(lines) == 1 and "bad.gpx" in lines[0], res.output


# --- the real files: the same arrangement as .gp, .gpx and .gp5 -------------------------------------

def modern(shared_data: Path) -> Path:
    return shared_data / "guitarpro-modern"


def onsets(track) -> Counter:
    return Counter((n.start, n.pitch) for n in track.notes)


def notes_of(track) -> Counter:
    return Counter((n.start, n.duration, n.pitch, n.string, n.fret) for n in track.notes)


def test_full_song_gp_and_gp5_agree(shared_data):
    gp5 = read_song(modern(shared_data) / "conversion__full-song.gp5")
    gp7 = read_song(modern(shared_data) / "conversion__full-song.gp")
    assert [t.name for t in gp7.tracks] == [t.name for t in gp5.tracks] and len(gp7.tracks) == 11
    assert [t.program for t in gp7.tracks] == [t.program for t in gp5.tracks]
    assert [t.is_drum for t in gp7.tracks] == [False] * 10 + [True]
    assert gp7.n_bars == gp5.n_bars == 96 and gp7.title == gp5.title
    assert gp7.tempos == gp5.tempos and gp7.time_signatures == gp5.time_signatures
    for a, b in zip(gp5.tracks, gp7.tracks):
        assert Counter((n.start, n.duration, n.pitch) for n in a.notes) == Counter((n.start, n.duration, n.pitch) for n in b.notes), a.name
        if b.tuning:  # guitars and bass: same strings and frets too
            assert a.tuning == b.tuning and notes_of(a) == notes_of(b)
    # fretted tracks keep their tuning; winds, voices, keys, strings and timpani do not (gp5 cannot tell)
    assert [t.name for t in gp7.tracks if t.tuning] == ["Emmpu(Acoustic)", "Emppu(Disto)", "Marco"]
    assert [classify_track(t) for t in gp7.tracks] == ["other"] * 3 + ["guitar"] * 2 + ["other", "bass"] + ["other"] * 3 + ["drums"]
    # gp5 gives the voices, piano, strings, pipe and timpani strings too: their programs say they are none
    assert [classify_track(t) for t in gp5.tracks] == [classify_track(t) for t in gp7.tracks]
    # velocity: GPIF has one dynamic per beat, gp5 one per note
    vel = lambda s: Counter((n.start, n.pitch, n.velocity) for t in s.tracks for n in t.notes)
    assert sum((vel(gp5) & vel(gp7)).values()) == 4411 - 121


def test_full_song_gpx_agrees_but_for_its_drums(shared_data):
    gp5 = read_song(modern(shared_data) / "conversion__full-song.gp5")
    gpx = read_song(modern(shared_data) / "conversion__full-song.gpx")
    gp7 = read_song(modern(shared_data) / "conversion__full-song.gp")
    assert [t.name for t in gpx.tracks] == [t.name for t in gp5.tracks]
    assert [t.program for t in gpx.tracks] == [t.program for t in gp5.tracks]
    assert gpx.n_bars == 96 and gpx.time_signatures == gp5.time_signatures
    for a, b, c in zip(gp5.tracks[:10], gpx.tracks[:10], gp7.tracks[:10]):
        assert Counter((n.start, n.duration, n.pitch) for n in a.notes) == Counter((n.start, n.duration, n.pitch) for n in b.notes), a.name
        assert notes_of(b) == notes_of(c) and b.tuning == c.tuning
    # GP6's kit has no tambourine (124 hits in the gp5/gp7 files are rests in the gpx) and one
    # "very low tom" for GM 41 and 43 (28 hits of 41 read as 43); the rest agree
    d5, d6 = onsets(gp5.tracks[10]), onsets(gpx.tracks[10])
    assert sum(d5.values()) == 1106 and sum(d6.values()) == 982
    assert Counter(p for _, p in (d5 - d6).elements()) == {54: 124, 41: 28}
    assert Counter(p for _, p in (d6 - d5).elements()) == {43: 28}
    # the tempo map differs in bar 94 (GP6 file: 70 then 60 qpm at beats 4 and 4.5; GP7/gp5: 60 from the bar line)
    t5 = [(x.time, x.qpm) for x in gp5.tempos]
    t6 = [(x.time, x.qpm) for x in gpx.tempos]
    assert [x for x in t6 if x not in t5] == [(93 * 3840 + 2880, 70.0), (93 * 3840 + 3360, 60.0)]
    assert [x for x in t5 if x not in t6] == [(93 * 3840, 60.0)]


@pytest.mark.parametrize("name", ["guitarpro7__serenade.gp", "guitarpro6__serenade.gpx"])
def test_serenade_agrees_with_gp5(shared_data, name):
    gp5 = read_song(modern(shared_data) / "guitarpro5__serenade.gp5")
    song = read_song(modern(shared_data) / name)
    assert [t.name for t in song.tracks] == ["Lead", "Rhythm", "Bass", "Keyboard"]
    assert song.tempos == gp5.tempos  # a linear ramp (94 -> 88) read as a step at its start, as in gp5
    assert song.time_signatures == gp5.time_signatures and song.n_bars == gp5.n_bars == 78
    for a, b in zip(gp5.tracks, song.tracks):
        assert (a.program, a.tuning) == (b.program, b.tuning)
        assert notes_of(a) == notes_of(b) and [n.velocity for n in a.notes] == [n.velocity for n in b.notes]


def test_canon_gp8_with_audio_track_agrees_with_gp5(shared_data):
    gp5 = read_song(modern(shared_data) / "guitarpro5__canon.gp5")
    gp8 = read_song(modern(shared_data) / "guitarpro8__canon-audio-track.gp")
    assert [t.name for t in gp8.tracks] == [t.name for t in gp5.tracks] and len(gp8.tracks) == 9
    assert gp8.tempos == gp5.tempos and gp8.time_signatures == gp5.time_signatures and gp8.n_bars == 224
    for a, b in zip(gp5.tracks, gp8.tracks):
        if a.name != "Drums":
            assert Counter((n.start, n.duration, n.pitch) for n in a.notes) == Counter((n.start, n.duration, n.pitch) for n in b.notes), a.name
    # 16 "sticks" hits: GM 31 in the gp5 file, the articulation's output key 40 in the GP8 file
    d5, d8 = onsets(gp5.tracks[4]), onsets(gp8.tracks[4])
    assert Counter(p for _, p in (d5 - d8).elements()) == {31: 16} and Counter(p for _, p in (d8 - d5).elements()) == {40: 16}


def test_faulty_gp8_file(shared_data, tmp_path):
    path = modern(shared_data) / "guitarpro8__faulty.gp"
    song = read_song(path)  # two drum notes have <String>-0.5</String>: not needed for drums, read anyway
    assert [t.name for t in song.tracks][:2] == ["David Gilmour", "Whammy Pedal"] and len(song.tracks) == 6
    assert song.tracks[5].is_drum and len(song.tracks[5].notes) == 772 and song.n_bars == 97
    data = path.read_bytes()
    for k, cut in enumerate((len(data) // 3, len(data) - 100, 30)):
        (tmp_path / f"cut{k}.gp").write_bytes(data[:cut])
        with pytest.raises(GuitarProReadError) as err:
            read_song(tmp_path / f"cut{k}.gp")
        assert f"cut{k}.gp" in str(err.value) and "\n" not in str(err.value)


def test_every_modern_file_reads(shared_data):
    files = sorted(modern(shared_data).glob("*.gp")) + sorted(modern(shared_data).glob("*.gpx"))
    files += sorted((shared_data / "guitarpro").glob("*.gp"))
    assert len(files) == 11
    for f in files:
        song = read_song(f)
        assert song.tracks and any(t.notes for t in song.tracks), f.name


def test_cli_info_on_real_gpx(shared_data):
    res = runner.invoke(app, ["info", str(modern(shared_data) / "guitarpro6__serenade.gpx")], env={"COLUMNS": "160"})
    assert res.exit_code == 0, res.output
    assert "4 tracks, 2450 notes" in res.output and "bars: 78" in res.output


@pytest.mark.parametrize("name", ["guitarpro6__serenade.gpx", "guitarpro7__serenade.gp"])
@pytest.mark.parametrize("ext", [".gp5", ".mid"])
def test_cli_midi_on_gpx_and_gp_keeps_the_source_notes(shared_data, tmp_path, name, ext):
    """`stemfill midi` on a GP6 / GP7 tab writes a .gp5 or .mid whose kept tracks are the source's, note for note."""
    from typer.testing import CliRunner

    from stemfill.cli import app
    from stemfill.song.io import read_song

    src = shared_data / "guitarpro-modern" / name
    out = tmp_path / f"out{ext}"
    r = CliRunner().invoke(app, ["midi", str(src), "--add", "drums", "-o", str(out)])
    assert r.exit_code == 0, r.output
    a, b = read_song(src), read_song(out)

    def spans(song, track):
        return [(n.start * 960 // song.resolution, n.duration * 960 // song.resolution, n.pitch) for n in track.notes]

    assert len(b.tracks) == len(a.tracks) + 1 and b.tracks[-1].notes
    assert [spans(b, t) for t in b.tracks[:-1]] == [spans(a, t) for t in a.tracks]


def test_real_gpx_cut_two_bytes_short_reads_whole(shared_data, tmp_path):
    """The real GP6 files, 2 bytes cut off the end as a download cut the one in issue 26: the same score."""
    for name in ("conversion__full-song.gpx", "guitarpro6__serenade.gpx"):
        data = (modern(shared_data) / name).read_bytes()
        (tmp_path / name).write_bytes(data[:-2])
        full, cut = read_song(modern(shared_data) / name), read_song(tmp_path / name)
        assert [(t.name, notes_of(t)) for t in cut.tracks] == [(t.name, notes_of(t)) for t in full.tracks]
        assert cut.tempos == full.tempos and cut.warnings == [cut.warnings[0]] + full.warnings
        assert "file cut short" in cut.warnings[0]
