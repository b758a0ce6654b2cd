"""Write the tiny malformed MIDI files beside this script (run once; the bytes are committed).

    python tests/data/make_midi_fixtures.py

Each file is a one-bar song (or a broken piece of one) named after what is wrong with it.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import mido

HERE = Path(__file__).resolve().parent


def song_bytes(midi_type: int = 1, ticks_per_beat: int = 480, tempo: int = 500_000, notes: bool = True) -> bytes:
    """A conductor track (tempo, 4/4) and one piano track with a C major arpeggio."""
    mid = mido.MidiFile(type=midi_type, ticks_per_beat=ticks_per_beat)
    mid.tracks.append(mido.MidiTrack([
        mido.MetaMessage("set_tempo", tempo=tempo),
        mido.MetaMessage("time_signature", numerator=4, denominator=4),
    ]))
    track = mido.MidiTrack([mido.MetaMessage("track_name", name="Piano")])
    if notes:
        for pitch in (60, 64, 67):
            track.append(mido.Message("note_on", note=pitch, velocity=80, time=0))
            track.append(mido.Message("note_off", note=pitch, velocity=0, time=480))
    mid.tracks.append(track)
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


def with_division(data: bytes, division: int) -> bytes:
    return data[:12] + struct.pack(">h", division) + data[14:]


FIXTURES = {
    "empty.mid": b"",
    "not-midi.mid": b"RIFF\x00\x00\x00\x00WAVEfmt this is not a MIDI file\n",
    "truncated.mid": song_bytes()[:40],
    "type2.mid": song_bytes(midi_type=2),
    "zero-ticks-per-beat.mid": with_division(song_bytes(), 0),
    "smpte-division.mid": with_division(song_bytes(), -((25 << 8) - 40)),  # 25 fps, 40 ticks per frame
    "zero-tempo.mid": song_bytes(tempo=0),
    "no-notes.mid": song_bytes(notes=False),
}


def main() -> None:
    for name, data in FIXTURES.items():
        assert len(data) < 1024, name
        (HERE / name).write_bytes(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
