"""Which realism features give a filled stem away: the boosting two-sample test with each feature group left out,
and with that group alone (docs/generation.md, "What still gives the guitar away").

Not part of the product: a diagnostic kept so that its numbers can be re-measured.

    python bench/trials/realism_features.py --data CHUNKS --split valid --stem guitar --limit 600

The shipped model fills the chunks with ``--stem`` alone missing (the rest known, the song's other tracks heard;
its decoder as shipped), and the test of ``stemfill eval --realism --classifier boosting`` (folds grouped by
song) is run on all of ``evaluation.realism.segment_features``, then without each group (the onset positions,
the intervals, the note lengths, each other feature) and on that group alone. A group whose removal lowers the
accuracy is one the classifier relies on.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--split", default="valid", choices=("valid", "test"))
    ap.add_argument("--stem", default="guitar", choices=("drums", "bass", "guitar"))
    ap.add_argument("--limit", type=int, default=600)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    from stemfill.datasets.chunks import load_chunks
    from stemfill.evaluation import harness
    from stemfill.evaluation.realism import feature_names, segment_features, two_sample_accuracy
    from stemfill.pianoroll import fill as F
    from stemfill.pianoroll.model import default_model_path, load_model
    from stemfill.song.song import STEMS

    c = STEMS.index(a.stem)
    ch = load_chunks(a.data, a.split)
    sel = harness.select(len(ch), a.limit, a.seed)
    others = [o for o in range(3) if o != c]
    sel = sel[ch.present[sel, c] & ch.present[sel][:, others].any(axis=1)]
    truth, other, song = ch.rolls[sel], ch.context[sel], ch.song_index[sel]
    known = np.ones((len(sel), 3), dtype=bool)
    known[:, c] = False
    model = load_model(default_model_path(), device="cpu")
    out = F.fill_chunks(model, np.where(known[:, :, None, None], truth, False), known, seed=a.seed, other=other)
    real = np.nan_to_num(segment_features(truth, c, other=other))
    fake = np.nan_to_num(segment_features(out, c, other=other))
    names = feature_names(a.stem)
    groups: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        key = n.split("/")[0] if "/" in n else ("duration" if n == "log2_duration" else n)
        groups.setdefault(key, []).append(i)

    def acc(cols) -> float:
        return two_sample_accuracy(real[:, cols], fake[:, cols], song, classifier="boosting")["accuracy"]

    base = acc(list(range(len(names))))
    print(f"{len(sel)} {a.split} chunks, the {a.stem} alone missing; boosting accuracy on all features {base:.3f}")
    print("| features | without them | alone |")
    print("|---|--:|--:|")
    for key, cols in groups.items():
        rest = [i for i in range(len(names)) if i not in cols]
        print(f"| {key} ({len(cols)}) | {acc(rest):.3f} ({acc(rest) - base:+.3f}) | {acc(cols):.3f} |", flush=True)
    print("\nthe most telling group's features, mean (std over chunks): real / filled")
    worst = min(groups, key=lambda k: acc([i for i in range(len(names)) if i not in groups[k]]))
    for i in groups[worst]:
        print(f"  {names[i]}: {real[:, i].mean():.3f} ({real[:, i].std():.3f}) / {fake[:, i].mean():.3f} "
              f"({fake[:, i].std():.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
