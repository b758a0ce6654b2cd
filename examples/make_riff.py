"""Write examples/riff.mid: a 16-bar rock riff (drums + rhythm guitar, no bass), written for stemfill,
and examples/drums.mid: its drums alone.

    python examples/make_riff.py

Original material, free to use. The README's quick start adds a bass part to riff.mid;
drums.mid is for adding bass and guitar at once (``--add bass --add guitar --key "E minor"``).
"""

from pathlib import Path

import mido

TPB = 480
BAR = 4 * TPB
EIGHTH = TPB // 2
# one chord root per half bar (E, E, G, A | C, D, E, E ...), power chords root+fifth+octave
ROOTS = [40, 40, 43, 45, 48, 50, 40, 40] * 4


def events(notes):
    """(start, dur, pitch, vel) -> delta-timed note_on/off messages."""
    ev = []
    for s, d, p, v in notes:
        ev.append((s, 1, p, v))
        ev.append((s + d, 0, p, 0))
    ev.sort(key=lambda e: (e[0], e[1]))
    t, out = 0, []
    for time, on, p, v in ev:
        out.append((time - t, on, p, v))
        t = time
    return out


def track(name, channel, program, notes):
    tr = mido.MidiTrack([mido.MetaMessage("track_name", name=name, time=0)])
    tr.append(mido.Message("program_change", channel=channel, program=program, time=0))
    for dt, on, p, v in events(notes):
        tr.append(mido.Message("note_on" if on else "note_off", channel=channel, note=p, velocity=v, time=dt))
    return tr


def main(out=Path(__file__).with_name("riff.mid")):
    guitar, drums = [], []
    for half, root in enumerate(ROOTS):
        t0 = half * BAR // 2
        for k in range(4):  # palm-muted eighths
            for p in (root, root + 7, root + 12):
                guitar.append((t0 + k * EIGHTH, EIGHTH - 20, p, 90 if k == 0 else 70))
    for bar in range(16):
        t0 = bar * BAR
        for k in range(8):
            drums.append((t0 + k * EIGHTH, 60, 42, 80))
        for beat in (0, 2):
            drums.append((t0 + beat * TPB, 60, 36, 110))
        drums.append((t0 + 2 * TPB + EIGHTH, 60, 36, 90))
        for beat in (1, 3):
            drums.append((t0 + beat * TPB, 60, 38, 110))
    drums.append((0, 60, 49, 110))
    mid = mido.MidiFile(type=1, ticks_per_beat=TPB)
    meta = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(128), time=0),
                           mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0)])
    mid.tracks += [meta, track("Rhythm Guitar", 0, 29, guitar), track("Drums", 9, 0, drums)]
    mid.save(out)
    print(f"wrote {out}")
    alone = mido.MidiFile(type=1, ticks_per_beat=TPB)
    alone.tracks += [meta, track("Drums", 9, 0, drums)]
    alone.save(out.with_name("drums.mid"))
    print(f"wrote {out.with_name('drums.mid')}")


if __name__ == "__main__":
    main()
