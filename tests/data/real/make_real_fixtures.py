"""How the small real fixtures in this folder were made (needs ../shared/data; run from the project root).

    python tests/data/real/make_real_fixtures.py

MIDI songs are cut to their first BEATS beats with mido: every event before the cut is kept
(tempo, meter, names, programs, controllers), notes sounding at the cut end there, and
nothing after it is written. The Guitar Pro tab is copied as it is.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import mido

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[2].parent / "shared" / "data"
BEATS = 64

SOURCES = {
    "satisfaction-excerpt.mid": SHARED / "corpus" / "karaoke" / "0516fff6-Satisfac.mid",
    "build-me-up-break-me-down-excerpt.mid": SHARED / "onyxite" / "dream-theater__build-me-up-break-me-down.mid",
}
COPIES = {"demo-v5.gp5": SHARED / "guitarpro" / "Demo v5.gp5"}


def cut_midi(src: Path, dst: Path, beats: int) -> None:
    """Keep the first ``beats`` beats of every track."""
    mid = mido.MidiFile(src)
    cut = beats * mid.ticks_per_beat
    out = mido.MidiFile(type=mid.type, ticks_per_beat=mid.ticks_per_beat)
    for track in mid.tracks:
        events, now, sounding = [], 0, {}
        for msg in track:
            now += msg.time
            if msg.type == "end_of_track" or now >= cut:
                continue
            if msg.type == "note_on" and msg.velocity > 0:
                sounding[(msg.channel, msg.note)] = sounding.get((msg.channel, msg.note), 0) + 1
            elif msg.type in ("note_off", "note_on") and sounding.get((msg.channel, msg.note)):
                sounding[(msg.channel, msg.note)] -= 1
            events.append((now, msg))
        for (ch, note), n in sorted(sounding.items()):
            events += [(cut, mido.Message("note_off", channel=ch, note=note))] * n
        new, last = mido.MidiTrack(), 0
        for t, msg in events:
            new.append(msg.copy(time=t - last))
            last = t
        new.append(mido.MetaMessage("end_of_track", time=max(cut - last, 0)))
        out.tracks.append(new)
    out.save(dst)


if __name__ == "__main__":
    for name, src in SOURCES.items():
        cut_midi(src, HERE / name, BEATS)
    for name, src in COPIES.items():
        shutil.copyfile(src, HERE / name)
    print("\n".join(f"{p.name}: {p.stat().st_size} bytes" for p in sorted(HERE.iterdir()) if p.suffix != ".py"))
