"""Guitar Pro 6/7/8 (.gpx / .gp) -> Song, from the score XML (``score.gpif``) inside.

A ``.gp`` (GP7, GP8) is a zip holding ``Content/score.gpif``; a ``.gpx`` (GP6) is a
BCFZ/BCFS container holding ``score.gpif`` (see ``gpx.py``). GPIF is a flat XML
database: ``MasterBars`` (meter, repeats, the bar id of every staff), ``Bars`` (voice
ids), ``Voices`` (beat ids), ``Beats`` (rhythm id, note ids, dynamic, grace), ``Notes``
and ``Rhythms``, all joined by id (GP6 reuses ids for repeated content).

What is read follows the gp3-5 reader (``guitarpro.py``) so that the same tab in
either format gives the same Song:

* every track of ``MasterTrack/Tracks``, in that order (empty ones too); the notes of
  all staves (a grand staff has two) and all voices go into the one track;
* tuning and capo of fretted instruments (guitars, basses, banjo, ...; GP7 gives every
  track a default guitar tuning, a flute's is dropped); pitch = tuning + capo + fret,
  else the note's MIDI number, else its tone and octave (GP6 keyboards, winds);
* drums: the articulation's output GM key (GP7/8), or GP6's element/variation mapped
  to GM keys (``GP6_DRUM_KEYS``, after alphaTab's table);
* tempo automations of the master track (value and reference unit; a "linear" ramp
  becomes a step at its start); meter from each master bar; repeats and alternate
  endings unrolled by ``guitarpro.play_order`` (directions — D.C., D.S., Coda — not
  followed); simile marks (repeat the previous bar or two) played out; a pickup bar
  (``Anacrusis``) is right-aligned in a full bar;
* durations with dots and tuplets (exact fractions, rounded to ticks once);
  ties merge into the previous note of the same string (or pitch) and voice;
  dead notes last at most ``DEAD_NOTE_TICKS``; velocity from the beat's dynamic
  (f = 95, as PyGuitarPro) -16 for a ghost note, +16 accent, +32 heavy accent.

Skipped: grace-note beats (they take no time in the bar and are left out, as the
gp3-5 reader leaves out grace notes; counted in ``Song.warnings``), bends, slides,
vibrato, let ring, palm mutes, harmonics, lyrics, sound automations (program changes
after the first) and the audio track of GP8 files. docs/guitarpro.md has the details
and how the three formats of one song compare.
"""

from __future__ import annotations

import io
import os
import re
import struct
import xml.etree.ElementTree as ET
import zipfile
import zlib
from dataclasses import dataclass
from fractions import Fraction
from types import SimpleNamespace

from stemfill.errors import GuitarProReadError
from stemfill.files import one_line
from stemfill.song.gpx import GpxError, gpx_files
from stemfill.song.song import RESOLUTION, Note, Song, SongError, TempoChange, TimeSignature, Track

DEAD_NOTE_TICKS = RESOLUTION // 4  # as guitarpro.DEAD_NOTE_TICKS
DEFAULT_VELOCITY = 95  # forte, PyGuitarPro's default
MAX_XML_BYTES = 256 << 20
ZIP_SCORE = "Content/score.gpif"
GPX_SCORE = "score.gpif"

# quarter notes per note value
NOTE_VALUES = {"Long": 16, "DoubleWhole": 8, "Whole": 4, "Half": 2, "Quarter": 1, "Eighth": Fraction(1, 2),
               "16th": Fraction(1, 4), "32nd": Fraction(1, 8), "64th": Fraction(1, 16), "128th": Fraction(1, 32),
               "256th": Fraction(1, 64)}
DYNAMICS = {"PPP": 15, "PP": 31, "P": 47, "MP": 63, "MF": 79, "F": 95, "FF": 111, "FFF": 127}
# tempo "Value" is "<bpm> <unit>": unit 1 = eighth, 2 = quarter, 3 = dotted quarter, 4 = half, 5 = dotted half
TEMPO_UNIT_QUARTERS = {1: 0.5, 2: 1.0, 3: 1.5, 4: 2.0, 5: 3.0}
STEP_SEMITONES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
ACCIDENTALS = {"": 0, "#": 1, "x": 2, "b": -1, "bb": -2}
# GP6 drum notes: element -> GM key per variation (alphaTab's PercussionMapper, articulations
# resolved to their output keys; a ride bell is kept as GM 53, a half-open hi-hat as 46)
GP6_DRUM_KEYS: tuple[tuple[int, ...], ...] = (
    (36, 36, 36),  # kick (alphaTab: 35; the GP5 and GP7 exports of the same tab say 36)
    (38, 38, 37),  # snare: hit, rim shot, side stick
    (56, 56, 56),  # cowbell low
    (56, 56, 56),  # cowbell medium
    (56, 56, 56),  # cowbell high
    (43, 43, 43),  # tom very low
    (45, 45, 45),  # tom low
    (47, 47, 47),  # tom medium
    (48, 48, 48),  # tom high
    (50, 50, 50),  # tom very high
    (42, 46, 46),  # hi-hat: closed, half, open
    (44, 44, 44),  # pedal hi-hat
    (57, 57, 57),  # crash medium: hit, choke
    (49, 49, 49),  # crash high: hit, choke
    (55, 55, 55),  # splash: hit, choke
    (51, 51, 53),  # ride: middle, edge, bell
    (52, 52, 52),  # china: hit, choke
)
# instrument types / GP6 instrument refs that are fretted (their tuning is kept)
_FRETTED = re.compile(r"guitar|gtr|bass(?!oon)|banjo|bnj|ukulele|ukl|mandolin|mdl|sitar|bouzouki", re.IGNORECASE)


class GpifError(ValueError):
    """The score XML is inconsistent (a dangling id, a bad value); the message says where."""


# --- reading ------------------------------------------------------------------------------

def read_gpif(path: str | os.PathLike) -> Song:
    """Read a .gp (GP7/8) or .gpx (GP6) file into a Song. Any failure raises GuitarProReadError."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise GuitarProReadError(path, f"cannot open: {e.strerror or e}") from e
    cut: list[str] = []  # a .gpx cut short: read as far as it goes
    xml = score_xml(path, data, cut)
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as e:
        if cut:  # the missing bytes were the score's
            raise GuitarProReadError(path, f"not a readable Guitar Pro 6 (.gpx) file: {cut[0]}: "
                                           f"its score.gpif is cut ({e})") from e
        raise GuitarProReadError(path, f"score.gpif is not well-formed XML: {e}") from e
    if root.tag != "GPIF":
        raise GuitarProReadError(path, f"score.gpif: root element is <{root.tag}>, expected <GPIF>")
    try:
        song = song_from_gpif(root)
    except (GpifError, SongError) as e:  # a dangling id, a value out of range: the message says which
        raise GuitarProReadError(path, f"bad data in score.gpif: {one_line(e)}") from e
    except Exception as e:  # a structure the checks above let through
        raise GuitarProReadError(path, f"bad data in score.gpif: {one_line(e, with_type=True)}") from e
    if not any(t.notes for t in song.tracks):
        raise GuitarProReadError(path, "no notes")
    song.warnings[:0] = cut
    return song


def score_xml(path: str | os.PathLike, data: bytes, cut: list[str] | None = None) -> bytes:
    """The score.gpif bytes of a .gp zip or a .gpx container (``path`` only names the file in errors).

    With a ``cut`` list, a .gpx whose compressed stream ends early is read as far as it goes and
    one line on it goes to ``cut`` (``gpx.gpx_files``); without one, it is refused."""
    kind = "Guitar Pro 7/8 (.gp)" if data[:4] == b"PK\x03\x04" else "Guitar Pro 6 (.gpx)"
    try:
        if data[:4] == b"PK\x03\x04":
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                names = z.namelist()
                name = ZIP_SCORE if ZIP_SCORE in names else next((n for n in names if n.endswith("score.gpif")), None)
                if name is None:
                    raise GuitarProReadError(path, f"{kind} zip has no {ZIP_SCORE}")
                if z.getinfo(name).file_size > MAX_XML_BYTES:
                    raise GuitarProReadError(path, f"{name} is larger than {MAX_XML_BYTES >> 20} MiB")
                return z.read(name)
        if data[:4] in (b"BCFZ", b"BCFS"):
            n_cut = len(cut) if cut is not None else 0
            files = gpx_files(data, cut)
            if GPX_SCORE not in files:
                if cut is not None and len(cut) > n_cut:
                    raise GuitarProReadError(path, f"not a readable {kind} file: {cut[-1]}, and no {GPX_SCORE} there")
                raise GuitarProReadError(path, f"{kind} container has no {GPX_SCORE} (files: {sorted(files)[:8]})")
            return files[GPX_SCORE]
    except GuitarProReadError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, GpxError, zlib.error, struct.error, EOFError, OSError, ValueError,
            NotImplementedError) as e:
        raise GuitarProReadError(path, f"not a readable {kind} file: {one_line(e, with_type=True)}") from e
    raise GuitarProReadError(path, f"not a Guitar Pro 6-8 file (starts with {data[:4]!r}; expected a zip, BCFZ or BCFS)")


# --- the XML model --------------------------------------------------------------------------

@dataclass(slots=True)
class _TrackInfo:
    name: str
    program: int
    is_drum: bool
    strings: tuple[int, ...] | None  # pitches, lowest string (GPIF string 0) first
    fretted: bool
    capo: int
    staves: int
    articulations: tuple[int, ...]  # output GM key per InstrumentArticulation index (GP7/8 drums)


@dataclass(slots=True)
class _NoteInfo:
    string: int | None  # GPIF string index (0 = lowest); None if absent or not an integer
    fret: int | None
    bad_place: str  # why String/Fret could not be read ("" if fine): fatal only where the pitch needs them
    midi: int | None
    tone: int | None  # pitch from Tone/Octave or ConcertPitch
    articulation: int | None
    element: int | None
    variation: int | None
    tie_destination: bool
    dead: bool
    ghost: bool
    accent: int  # velocity offset of the accent marks


def _text(el: ET.Element | None, path: str, default: str = "") -> str:
    if el is None:
        return default
    found = el.find(path)
    return default if found is None or found.text is None else found.text.strip()


def _int(text: str | None, what: str) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        raise GpifError(f"{what}: {text!r} is not an integer") from None


def _ids(text: str | None) -> list[str]:
    return (text or "").split()


def _by_id(root: ET.Element, section: str, tag: str) -> dict[str, ET.Element]:
    return {el.get("id", ""): el for el in root.iterfind(f"{section}/{tag}")}


def _track_info(el: ET.Element) -> _TrackInfo:
    name = _text(el, "Name")
    instrument = el.find("Instrument")  # GP6: <Instrument ref="e-gtr6"/>; GP7/8: <InstrumentSet><Type>
    ref = instrument.get("ref", "") if instrument is not None else ""
    kind = _text(el, "InstrumentSet/Type") or ref
    gm = el.find("GeneralMidi")
    is_drum = kind == "drumKit" or (gm is not None and gm.get("table") == "Percussion") or kind.startswith("drmkt")
    program = _text(el, "Sounds/Sound/MIDI/Program") or _text(el, "GeneralMidi/Program") or _text(el, "MidiConnection/Program") or "0"
    program = min(max(_int(program, f"track {name!r} program"), 0), 127)
    pitches = _text(el, ".//Property[@name='Tuning']/Pitches")
    strings = tuple(_int(p, f"track {name!r} tuning") for p in pitches.split()) or None
    capo = _int(_text(el, ".//Property[@name='CapoFret']/Fret", "0"), f"track {name!r} capo")
    fretted = strings is not None and not is_drum and (bool(_FRETTED.search(kind)) if kind else True)
    staves = len(el.findall("Staves/Staff")) or (2 if ref.endswith(("-gs", "GrandStaff")) else 1)
    articulations = tuple(
        _int(a.findtext("OutputMidiNumber", "-1"), f"track {name!r} articulation")
        for a in el.iterfind("InstrumentSet/Elements/Element/Articulations/Articulation")
    )
    return _TrackInfo(name, 0 if is_drum else program, is_drum, strings, fretted, capo, staves, articulations)


def _note_info(el: ET.Element) -> _NoteInfo:
    props = {p.get("name"): p for p in el.iterfind("Properties/Property")}

    def prop_int(name: str, child: str) -> int | None:
        p = props.get(name)
        if p is None or p.find(child) is None:
            return None
        return _int(p.findtext(child), f"note {el.get('id')} {name}")

    tone = None
    if "Tone" in props or "Octave" in props:
        tone = 12 * (prop_int("Octave", "Number") or 0) + (prop_int("Tone", "Step") or 0)
    elif "ConcertPitch" in props:
        pitch = props["ConcertPitch"].find("Pitch")
        if pitch is not None:
            step = STEP_SEMITONES.get(_text(pitch, "Step"), 0)
            acc = ACCIDENTALS.get(_text(pitch, "Accidental"), 0)
            tone = 12 * _int(_text(pitch, "Octave", "0"), f"note {el.get('id')} octave") + step + acc
    tie = el.find("Tie")
    flags = _int(el.findtext("Accent", "0"), f"note {el.get('id')} accent")
    art = el.findtext("InstrumentArticulation")
    place: dict[str, int | None] = {}
    bad = ""
    for name in ("String", "Fret"):
        try:
            place[name] = prop_int(name, name)
        except GpifError as e:  # e.g. <String>-0.5</String> on a drum note of the faulty GP8 test file
            place[name], bad = None, str(e)
    return _NoteInfo(
        string=place["String"],
        fret=place["Fret"],
        bad_place=bad,
        midi=prop_int("Midi", "Number"),
        tone=tone,
        articulation=None if art is None else _int(art, f"note {el.get('id')} articulation"),
        element=prop_int("Element", "Element"),
        variation=prop_int("Variation", "Variation"),
        tie_destination=tie is not None and tie.get("destination", "").lower() == "true",
        dead="Muted" in props and props["Muted"].find("Enable") is not None,
        ghost=_text(el, "AntiAccent").lower() == "normal",
        accent=32 if flags & 0x04 else 16 if flags & 0x08 else 0,
    )


def _pitch(track: _TrackInfo, n: _NoteInfo) -> int | None:
    if track.is_drum:
        if n.articulation is not None and 0 <= n.articulation < len(track.articulations) and track.articulations[n.articulation] >= 0:
            return track.articulations[n.articulation]
        if n.element is not None:
            keys = GP6_DRUM_KEYS[n.element] if 0 <= n.element < len(GP6_DRUM_KEYS) else (38,)
            v = n.variation or 0
            return keys[v] if 0 <= v < len(keys) else keys[0]
        if n.midi is not None:
            return n.midi
        return n.fret  # GP drums in tab: the fret is the GM key
    if n.string is not None and n.fret is not None and track.strings and 0 <= n.string < len(track.strings):
        return track.strings[n.string] + track.capo + n.fret
    if n.midi is not None:
        return n.midi
    if n.tone is None and n.bad_place:
        raise GpifError(n.bad_place)
    return n.tone


def _rhythm_quarters(el: ET.Element) -> Fraction:
    value = _text(el, "NoteValue", "Quarter")
    if value not in NOTE_VALUES:
        raise GpifError(f"rhythm {el.get('id')}: unknown note value {value!r}")
    q = Fraction(NOTE_VALUES[value])
    dot = el.find("AugmentationDot")
    dots = _int(dot.get("count", "1"), f"rhythm {el.get('id')} dots") if dot is not None else 0
    q *= 2 - Fraction(1, 2 ** dots)  # 1 dot: 3/2, 2 dots: 7/4
    for tag in ("PrimaryTuplet", "SecondaryTuplet"):
        t = el.find(tag)
        if t is not None:
            num, den = _int(t.get("num"), f"rhythm {el.get('id')} tuplet"), _int(t.get("den"), f"rhythm {el.get('id')} tuplet")
            if num > 0 and den > 0:
                q = q * den / num
    return q


def _master_bar(el: ET.Element, k: int) -> SimpleNamespace:
    time = _text(el, "Time", "4/4").split("/")
    if len(time) != 2:
        raise GpifError(f"master bar {k}: time signature {_text(el, 'Time')!r}")
    rep = el.find("Repeat")
    start = rep is not None and rep.get("start", "").lower() == "true"
    close = -1
    if rep is not None and rep.get("end", "").lower() == "true":
        close = max(_int(rep.get("count", "2"), f"master bar {k} repeat count") - 1, 0)  # plays -> jumps back
    endings = 0
    for e in _ids(el.findtext("AlternateEndings")):
        n = _int(e, f"master bar {k} alternate ending")
        if 1 <= n <= 31:
            endings |= 1 << (n - 1)
    num, den = _int(time[0], f"master bar {k} meter"), _int(time[1], f"master bar {k} meter")
    if not (1 <= num <= 64 and den in (1, 2, 4, 8, 16, 32, 64)):
        raise GpifError(f"master bar {k}: time signature {num}/{den}")
    return SimpleNamespace(numerator=num, denominator=den, isRepeatOpen=start, repeatClose=close,
                           repeatAlternative=endings, bars=_ids(el.findtext("Bars")))


def _tempo_automations(root: ET.Element) -> dict[int, list[tuple[float, float, bool]]]:
    """Master bar index -> [(position in the bar 0..1, qpm, linear ramp to the next one)]."""
    out: dict[int, list[tuple[float, float, bool]]] = {}
    for a in root.iterfind("MasterTrack/Automations/Automation"):
        if _text(a, "Type") != "Tempo":
            continue
        parts = _text(a, "Value").split()
        if not parts:
            continue
        try:
            bpm = float(parts[0])
            unit = int(parts[1]) if len(parts) > 1 else 2
            position = float(_text(a, "Position", "0") or 0)
        except ValueError:
            raise GpifError(f"tempo automation {_text(a, 'Value')!r} at bar {_text(a, 'Bar')}") from None
        qpm = bpm * TEMPO_UNIT_QUARTERS.get(unit, 1.0)
        if qpm > 0:
            linear = _text(a, "Linear").lower() == "true"
            out.setdefault(_int(_text(a, "Bar", "0"), "tempo automation bar"), []).append((min(max(position, 0.0), 1.0), qpm, linear))
    return out


# --- GPIF -> Song ---------------------------------------------------------------------------------

def song_from_gpif(root: ET.Element) -> Song:
    """Convert a parsed score.gpif (repeats unrolled). Raises GpifError / SongError on bad data."""
    from stemfill.song.guitarpro import play_order

    tracks_by_id = _by_id(root, "Tracks", "Track")
    track_ids = _ids(root.findtext("MasterTrack/Tracks")) or list(tracks_by_id)
    missing = [t for t in track_ids if t not in tracks_by_id]
    if missing:
        raise GpifError(f"MasterTrack lists track id {missing[0]} that is not in <Tracks>")
    infos = [_track_info(tracks_by_id[t]) for t in track_ids]
    masters = [_master_bar(el, k) for k, el in enumerate(root.iterfind("MasterBars/MasterBar"))]
    if not masters:
        raise GpifError("no master bars")
    bars, voices, beats = _by_id(root, "Bars", "Bar"), _by_id(root, "Voices", "Voice"), _by_id(root, "Beats", "Beat")
    notes_xml = _by_id(root, "Notes", "Note")
    rhythms = {k: _rhythm_quarters(el) for k, el in _by_id(root, "Rhythms", "Rhythm").items()}

    # staff columns of each track in MasterBar/Bars
    columns: list[list[int]] = []
    col = 0
    for info in infos:
        columns.append(list(range(col, col + info.staves)))
        col += info.staves

    order = play_order(masters)
    bar_len = [RESOLUTION * 4 * m.numerator // m.denominator for m in masters]
    starts, sigs, t = [], [], 0
    for i in order:
        m = masters[i]
        starts.append(t)
        if not sigs or (sigs[-1].numerator, sigs[-1].denominator) != (m.numerator, m.denominator):
            sigs.append(TimeSignature(t, m.numerator, m.denominator))
        t += bar_len[i]

    reader = _VoiceReader(voices, beats, notes_xml, rhythms)
    autos = _tempo_automations(root)
    # an automation's position is a fraction of the bar as the first track plays it: of that track's
    # longest voice where it overfills the meter (seen in a GP8 file with a 4/4 bar of 73 32nd
    # triplets in its first track; its gp5 export agrees; an overfull bar in another track does not count)
    span = {i: max([bar_len[i]] + [round(reader.length(b) * RESOLUTION)
                                   for b in _staff_bars(masters, i, range(1), bars) if b is not None])
            for i in autos if 0 <= i < len(masters) and any(pos > 0 for pos, _, _ in autos[i])}
    events = sorted((bar_start + round(pos * span.get(i, bar_len[i])), qpm, linear)
                    for bar_start, i in zip(starts, order) for pos, qpm, linear in autos.get(i, []))
    tempo_at: dict[int, float] = {}
    for k, (tick, qpm, linear) in enumerate(events):
        # a linear ramp becomes a step to its target at its start (as the gp3-5 reader reads one)
        tempo_at[tick] = events[k + 1][1] if linear and k + 1 < len(events) else qpm
    tempo_at.setdefault(0, 120.0)  # Guitar Pro's default before a first automation
    tempos = [TempoChange(k, v) for k, v in sorted(tempo_at.items())]
    tempos = [x for j, x in enumerate(tempos) if j == 0 or x.qpm != tempos[j - 1].qpm]

    pickup = 0  # a pickup bar (anacrusis) holds less than its meter: its notes end on the next bar line
    if root.find("MasterTrack/Anacrusis") is not None:
        content = max((reader.length(b) for b in _staff_bars(masters, 0, range(col), bars) if b is not None), default=0)
        pickup = max(bar_len[0] - round(content * RESOLUTION), 0) if content else 0

    tracks = []
    for info, cols in zip(infos, columns):
        played = [(s + (pickup if i == 0 else 0), _staff_bars(masters, i, cols, bars)) for s, i in zip(starts, order)]
        notes = reader.track_notes(info, played)
        tuning = tuple(reversed(info.strings)) if info.fretted and info.strings else None
        tracks.append(Track(name=info.name, program=info.program, is_drum=info.is_drum, notes=notes, tuning=tuning))
    warnings = []
    if reader.grace_notes:
        warnings.append(f"{reader.grace_notes} grace note{'s' * (reader.grace_notes != 1)} left out")
    if reader.no_pitch:
        warnings.append(f"{reader.no_pitch} note{'s' * (reader.no_pitch != 1)} without a pitch left out")
    return Song(tracks=tracks, tempos=tempos, time_signatures=sigs, title=_text(root, "Score/Title"), warnings=warnings)


SIMILE_BACK = {"Simple": 1, "FirstOfDouble": 2, "SecondOfDouble": 2}  # bars back a simile mark repeats


def _staff_bars(masters: list[SimpleNamespace], i: int, cols, bars: dict[str, ET.Element]) -> list[ET.Element | None]:
    """The <Bar> of each staff column at master bar ``i`` (None: no bar); simile marks resolved to the bar they repeat."""
    out = []
    for c in cols:
        k, bar = i, None
        for _ in range(len(masters)):
            bid = masters[k].bars[c] if c < len(masters[k].bars) else "-1"
            if bid == "-1":
                bar = None
                break
            if bid not in bars:
                raise GpifError(f"master bar {k} lists bar id {bid} that is not in <Bars>")
            bar = bars[bid]
            back = SIMILE_BACK.get(_text(bar, "SimileMark"), 0)
            if not back or k - back < 0:
                break
            k -= back
        out.append(bar)
    return out


class _VoiceReader:
    """Notes of a track from its bars, with beat/note parsing cached by id (ids are shared)."""

    def __init__(self, voices, beats, notes, rhythms):
        self.voices, self.beats, self.notes, self.rhythms = voices, beats, notes, rhythms
        self._beat_cache: dict[str, tuple[Fraction, bool, int, list[_NoteInfo]]] = {}
        self._note_cache: dict[str, _NoteInfo] = {}
        self.grace_notes = 0  # grace notes left out (counted per played bar)
        self.no_pitch = 0

    def beat(self, bid: str) -> tuple[Fraction, bool, int, list[_NoteInfo]]:
        """(length in quarters, is grace, velocity, notes) of a beat."""
        if bid in self._beat_cache:
            return self._beat_cache[bid]
        el = self.beats.get(bid)
        if el is None:
            raise GpifError(f"voice lists beat id {bid} that is not in <Beats>")
        rh = el.find("Rhythm")
        rid = rh.get("ref", "") if rh is not None else ""
        if rid not in self.rhythms:
            raise GpifError(f"beat {bid}: rhythm id {rid!r} is not in <Rhythms>")
        grace = el.find("GraceNotes") is not None
        velocity = DYNAMICS.get(_text(el, "Dynamic", "F"), DEFAULT_VELOCITY)
        notes = []
        for nid in _ids(el.findtext("Notes")):
            if nid == "-1":
                continue
            if nid not in self._note_cache:
                if nid not in self.notes:
                    raise GpifError(f"beat {bid}: note id {nid} is not in <Notes>")
                self._note_cache[nid] = _note_info(self.notes[nid])
            notes.append(self._note_cache[nid])
        out = (self.rhythms[rid], grace, velocity, notes)
        self._beat_cache[bid] = out
        return out

    def _voice_beats(self, bar: ET.Element) -> list[tuple[int, list[str]]]:
        """(voice slot 0..3, beat ids) of each voice a bar has."""
        out = []
        for slot, vid in enumerate(_ids(bar.findtext("Voices"))):
            if vid == "-1":
                continue
            if vid not in self.voices:
                raise GpifError(f"bar {bar.get('id')}: voice id {vid} is not in <Voices>")
            out.append((slot, [b for b in _ids(self.voices[vid].findtext("Beats")) if b != "-1"]))
        return out

    def length(self, bar: ET.Element) -> Fraction:
        """Longest voice of a bar, in quarter notes (grace beats excluded)."""
        best = Fraction(0)
        for _, beat_ids in self._voice_beats(bar):
            total = Fraction(0)
            for bid in beat_ids:
                q, grace, _, _ = self.beat(bid)
                total += 0 if grace else q
            best = max(best, total)
        return best

    def track_notes(self, info: _TrackInfo, played: list[tuple[int, list[ET.Element]]]) -> list[Note]:
        """Notes of one track; ``played``: (start tick, the bar of each staff) per bar heard."""
        open_notes: dict[tuple, list] = {}
        recs: list[list] = []
        for bar_start, staff_bars in played:
            for s, bar in enumerate(staff_bars):
                if bar is None:
                    continue
                for v, beat_ids in self._voice_beats(bar):
                    pos = Fraction(bar_start)
                    for bid in beat_ids:
                        q, grace, velocity, notes = self.beat(bid)
                        if grace:
                            self.grace_notes += len(notes)
                            continue
                        b0, b1 = pos, pos + q * RESOLUTION
                        pos = b1
                        for n in notes:
                            pitch = _pitch(info, n)
                            if pitch is None:
                                self.no_pitch += 1
                                continue
                            key = (s, v, "s", n.string) if n.string is not None and not info.is_drum else (s, v, "p", pitch)
                            if n.tie_destination and key in open_notes:
                                prev = open_notes[key]
                                prev[1] = max(prev[1], b1)
                                continue
                            end = min(b1, b0 + DEAD_NOTE_TICKS) if n.dead else b1
                            vel = min(max(velocity - 16 * n.ghost + n.accent, 1), 127)
                            fretted = info.fretted and n.string is not None and n.fret is not None and info.strings \
                                and 0 <= n.string < len(info.strings)
                            rec = [b0, end, pitch, vel, len(info.strings) - n.string if fretted else None,
                                   n.fret if fretted else None]
                            recs.append(rec)
                            open_notes[key] = rec
        out = []
        for b0, b1, pitch, vel, string, fret in recs:
            s, e = round(b0), round(b1)
            out.append(Note(s, max(1, e - s), pitch, vel, string, fret))
        return out
