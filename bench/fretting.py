"""How playable the strings and frets of written bass and guitar parts are: stemfill's against real tabs.

    python bench/fretting.py                  # real tabs + parts the shipped model adds (about 2 min on 2 CPUs)
    python bench/fretting.py --no-model       # real tabs only (seconds)

Rows, for bass and for guitar:

* ``tab``: the real tabs' own parts (../shared/data/guitarpro gp3/gp4/gp5 files with 100+ notes
  in a bass or guitar track, not a vocal line tabbed on a guitar staff; byte-identical copies once),
  strings and frets as the tabber wrote them;
* ``tab, refretted``: the same notes put on strings by ``fretting.fret_notes`` (the tab's tuning and
  capo); ``string as tab`` is the share of notes it puts on the string the tabber chose;
* ``tab, lowest fret``: the same notes placed as the GP5 writer did before fretting.py (each
  chord on the free strings with the lowest fret sum; kept here as the baseline);
* ``added``: parts the shipped model adds (``fill_song``, bars 1-32, ``--replace`` where the song
  has the stem) to songs from ../shared/data/guitarpro and ../shared/data/midi, written to GP5 by
  ``write_guitarpro`` and read back: what a user opens;
* ``added, lowest fret``: the same added notes placed by the old rule.

Columns: notes; strings used (share of notes on each string, string 1 = highest, as a compact
list); ``in hand``: share of consecutive onsets whose stopped notes together lie within four
frets (a span of 3; an onset of open strings only counts as in hand); mean and largest hand
shift (lowest stopped fret, onset to onset); largest chord span (stopped notes of one onset);
share of chords (2+ notes) within 4 frets of span; highest fret; share of open strings; share on
the tabber's string; notes dropped (or left out by the writer) / moved by octaves.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stemfill.song.fretting import MAX_FRET, fret_notes
from stemfill.song.song import Note, Song
from stemfill.song.stems import _NOT_STEM, classify_track

DATA = ROOT.parent / "shared" / "data"
ADD_SONGS = (  # (file, stems to add): GP songs get a new part over bars 1-32 in place of their own
    ("guitarpro/Demo v5.gp5", ("bass", "guitar")),
    ("guitarpro/dadagp-progmetal.gp3", ("bass", "guitar")),
    ("guitarpro/freedark-b72b8a5d.gp3", ("bass", "guitar")),
    ("midi/All The Small Things.mid", ("bass", "guitar")),
    ("midi/Girls Just Want to Have Fun.mid", ("bass", "guitar")),
    ("midi/Funkytown.mid", ("bass",)),
    ("midi/What a Fool Believes.mid", ("guitar",)),
)
BARS = "1-32"
OLD_TUNING = {"bass": (43, 38, 33, 28), "guitar": (64, 59, 55, 50, 45, 40)}


def onsets(notes: list[Note]) -> list[list[Note]]:
    by: dict[int, list[Note]] = {}
    for n in notes:
        by.setdefault(n.start, []).append(n)
    return [by[t] for t in sorted(by)]


def measure(parts: list[tuple[list[Note], int]]) -> dict:
    """Metrics pooled over parts [(notes with string/fret, number of strings)]."""
    n = 0
    strings: Counter = Counter()
    pairs = in_hand = 0
    shifts: list[int] = []
    spans: list[int] = []
    top = opens = 0
    for notes, _ in parts:
        n += len(notes)
        strings.update(x.string for x in notes)
        top = max([top] + [x.fret for x in notes])
        opens += sum(x.fret == 0 for x in notes)
        prev = None
        for g in onsets(notes):
            stopped = [x.fret for x in g if x.fret > 0]
            if len(g) > 1:
                spans.append(max(stopped) - min(stopped) if stopped else 0)
            if prev is not None:
                pairs += 1
                both = prev + stopped
                in_hand += (not stopped or not prev or max(both) - min(both) <= 3)
                if stopped and prev:
                    shifts.append(abs(min(stopped) - min(prev)))
            if stopped:  # an onset of open strings leaves the hand where it was
                prev = stopped
    k = max(strings) if strings else 0
    use = "/".join(f"{100 * strings[s] / max(n, 1):.0f}" for s in range(1, k + 1))
    return {"notes": n, "strings": use, "in_hand": in_hand / max(pairs, 1),
            "shift": float(np.mean(shifts)) if shifts else 0.0, "max_shift": max(shifts, default=0),
            "max_span": max(spans, default=0), "top": top, "open": opens / max(n, 1),
            "chords_ok": sum(s <= 4 for s in spans) / len(spans) if spans else None}


def lowest_fret(notes: list[Note], tuning: tuple[int, ...]) -> list[Note]:
    """The GP5 writer's placement before fretting.py: per chord, free strings with the lowest fret sum."""
    low, high = min(tuning), max(tuning) + MAX_FRET
    busy: dict[int, int] = {}  # string -> end
    out = []
    for g in onsets(sorted(notes, key=lambda x: (x.start, x.pitch))):
        t = g[0].start
        free = [s for s in range(1, len(tuning) + 1) if busy.get(s, 0) <= t]
        pitches = []
        for x in sorted(g, key=lambda x: x.pitch):
            p = x.pitch
            while p < low:
                p += 12
            while p > high:
                p -= 12
            pitches.append((x, p))
        strs = sorted(free, key=lambda s: (tuning[s - 1], -s))
        best = _min_sum([p for _, p in pitches], strs, tuning)
        for k, (x, p) in enumerate(pitches):
            if best is not None:
                s = best[k]
            else:
                ok = [s for s in range(1, len(tuning) + 1) if 0 <= p - tuning[s - 1] <= MAX_FRET]
                s = min(ok, key=lambda s: (busy.get(s, 0) > t, p - tuning[s - 1]))
            busy[s] = x.end
            out.append(Note(x.start, x.duration, p, x.velocity, s, p - tuning[s - 1]))
    return out


def off_neck(notes: list[Note], tuning: tuple[int, ...]) -> int:
    """Notes the old placement moved by octaves: below the lowest string or above fret 24."""
    return sum(not min(tuning) <= x.pitch <= max(tuning) + MAX_FRET for x in notes)


def _min_sum(pitches: list[int], strs: list[int], tuning: tuple[int, ...]) -> list[int] | None:
    k, m = len(pitches), len(strs)
    if k > m:
        return None
    inf = float("inf")
    best = [[inf] * (m + 1) for _ in range(k + 1)]
    for j in range(m + 1):
        best[k][j] = 0
    for i in range(k - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            f = pitches[i] - tuning[strs[j] - 1]
            best[i][j] = min(f + best[i + 1][j + 1] if 0 <= f <= MAX_FRET else inf, best[i][j + 1])
    if best[0][0] == inf:
        return None
    out, j = [], 0
    for i in range(k):
        while True:
            f = pitches[i] - tuning[strs[j] - 1]
            if 0 <= f <= MAX_FRET and f + best[i + 1][j + 1] == best[i][j]:
                out.append(strs[j])
                j += 1
                break
            j += 1
    return out


def real_tabs() -> dict[str, list]:
    """stem -> [(name, notes, tuning with capo)] for the tabs' bass and guitar tracks of 100+ notes."""
    from stemfill.song.guitarpro import read_guitarpro, tab_of

    out: dict[str, list] = {"bass": [], "guitar": []}
    seen = set()
    for f in sorted((DATA / "guitarpro").glob("*.gp[345]")):
        h = hashlib.sha1(f.read_bytes()).hexdigest()
        if h in seen:
            continue
        seen.add(h)
        try:
            song = read_guitarpro(f)
        except Exception:  # noqa: BLE001, S112 - the collection has deliberately unreadable files
            continue
        for t in song.tracks:
            stem = classify_track(t)
            tab = tab_of(t)
            sung = _NOT_STEM.search(t.name) and not any(w in t.name.lower() for w in ("guit", "gtr", "bass"))
            if stem in out and len(t.notes) >= 100 and tab is not None and not sung:  # not "Voice (Axl)" in tab
                tuning = tuple(p + tab[1] for p in tab[0])  # frets counted from the capo
                out[stem].append((f"{f.name}:{t.name}", t.notes, tuning))
    return out


def added_parts() -> dict[str, list]:
    """stem -> [(name, notes as read back from the written GP5, tuning, notes as generated)]."""
    from stemfill.pianoroll.fill import fill_song
    from stemfill.pianoroll.model import default_model_path, load_model
    from stemfill.song.guitarpro import read_guitarpro, write_guitarpro
    from stemfill.song.io import read_song

    model = load_model(default_model_path())
    out: dict[str, list] = {"bass": [], "guitar": []}
    with tempfile.TemporaryDirectory() as d:
        for rel, stems in ADD_SONGS:
            f = DATA / rel
            if not f.exists():
                print(f"skipping {rel}: not found", file=sys.stderr)
                continue
            song = read_song(f)
            for stem in stems:
                t0 = time.time()
                has = bool(song.stem_tracks(stem))
                new = fill_song(song, [stem], model, seed=0, bars=BARS, replace=False).song if has else \
                    fill_song(_first_bars(song, 32), [stem], model, seed=0).song
                said = write_guitarpro(new, Path(d) / "out.gp5")
                back = read_guitarpro(Path(d) / "out.gp5").tracks[-1]
                gen = new.tracks[-1].notes
                out[stem].append((f"{f.name}+{stem}", back.notes, back.tuning, gen))
                print(f"  {f.name} +{stem}: {len(gen)} notes, {time.time() - t0:.1f} s; {'; '.join(said[-3:])}",
                      file=sys.stderr)
    return out


def _first_bars(song: Song, bars: int) -> Song:
    from dataclasses import replace

    starts = song.bar_starts()
    end = starts[bars] if len(starts) > bars else song.end
    tracks = [replace(t, notes=[n for n in t.notes if n.start < end]) for t in song.tracks]
    return Song(tracks=tracks, tempos=song.tempos, time_signatures=song.time_signatures, resolution=song.resolution,
                title=song.title)


def same_string(placed: list[list[Note]], tab: list) -> str:
    """Share of notes put on the string the tabber chose."""
    same = total = 0
    for notes, (_, orig, _) in zip(placed, tab):
        where = {(x.start, x.pitch): x.string for x in orig}
        total += len(notes)
        same += sum(where.get((x.start, x.pitch)) == x.string for x in notes)
    return f"{100 * same / max(total, 1):.0f} %"


def row(label: str, m: dict, extra: str = "", same: str = "") -> str:
    return (f"| {label} | {m['notes']} | {m['strings']} | {100 * m['in_hand']:.0f} % | {m['shift']:.1f} | "
            f"{m['max_shift']} | {m['max_span'] if m['chords_ok'] is not None else '-'} | "
            f"{'-' if m['chords_ok'] is None else format(100 * m['chords_ok'], '.0f') + ' %'} | {m['top']} | "
            f"{100 * m['open']:.0f} % | {same} | {extra} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-model", action="store_true", help="real tabs only")
    args = ap.parse_args()
    t0 = time.time()
    tabs = real_tabs()
    added = {"bass": [], "guitar": []} if args.no_model else added_parts()
    print("| part | notes | strings used, % (1 = highest) | in hand | mean shift | max shift | max chord span | "
          "chords ≤ 4 frets | top fret | open | string as tab | dropped / moved |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for stem in ("bass", "guitar"):
        tab = tabs[stem]
        print(row(f"{stem}: tab ({len(tab)} parts)", measure([(n, len(t)) for _, n, t in tab])))
        refret = [fret_notes(n, t) for _, n, t in tab]
        lost = sum(len(r.dropped) for r in refret), sum(len(r.moved) for r in refret)
        print(row(f"{stem}: tab, refretted", measure([(r.notes, len(t)) for r, (_, _, t) in zip(refret, tab)]),
                  f"{lost[0]} / {lost[1]}", same_string([r.notes for r in refret], tab)))
        low = [lowest_fret(n, t) for _, n, t in tab]
        print(row(f"{stem}: tab, lowest fret", measure([(x, len(t)) for x, (_, _, t) in zip(low, tab)]),
                  f"- / {sum(off_neck(n, t) for _, n, t in tab)}", same_string(low, tab)))
        if added[stem]:
            a = added[stem]
            gen = sum(len(g) for *_, g in a)
            back = sum(len(n) for _, n, _, _ in a)
            tunings = Counter(len(t) for _, _, t, _ in a)
            print(row(f"{stem}: added ({len(a)} parts; {', '.join(f'{v}x {k}-string' for k, v in sorted(tunings.items()))})",
                      measure([(n, len(t)) for _, n, t, _ in a]), f"{gen - back} / -"))
            old = OLD_TUNING[stem]  # the writer's one tuning before fretting.py
            print(row(f"{stem}: added, lowest fret ({len(old)}-string)", measure([(lowest_fret(g, old), len(old)) for *_, g in a]),
                      f"- / {sum(off_neck(g, old) for *_, g in a)}"))
    print(f"\n{time.time() - t0:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
