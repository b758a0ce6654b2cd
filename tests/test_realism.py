"""The realism measure (classifier two-sample test, tell-tale statistics) on tiny synthetic rolls made in code."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from stemfill.cli import app
from stemfill.datasets.chunks import Chunks, save_shard
from stemfill.errors import StemfillError
from stemfill.evaluation import harness as H
from stemfill.evaluation import realism as R
from stemfill.evaluation.baselines import get_system
from stemfill.pianoroll.roll import DRUM_KIT

P, L = 48, 192  # one 4-bar window at 12 steps per beat
KIT = {name: i for i, (name, _, _) in enumerate(DRUM_KIT)}
SONGS, PER_SONG = 30, 6  # 180 chunks a side


def drums(rng: np.random.Generator, toms: bool) -> np.ndarray:
    """A rock groove with random extra kicks, snare ghosts and hi-hat gaps; ``toms``: a tom fill in the last
    beat and a crash on the first downbeat."""
    x = np.zeros((P, L), dtype=bool)
    for bar in range(4):
        t0 = bar * 48
        x[KIT["kick"], [t0, t0 + 24]] = True
        x[KIT["snare"], [t0 + 12, t0 + 36]] = True
        x[KIT["closed hi-hat"], t0:t0 + 48:6] = rng.random(8) < 0.85
        x[KIT["kick"], t0 + 6 * rng.integers(0, 8)] |= rng.random() < 0.5
        x[KIT["snare"], t0 + 3 * rng.integers(0, 16)] |= rng.random() < 0.3
    if toms:
        rows = rng.choice([KIT["low tom"], KIT["mid tom"], KIT["high tom"]], size=4)
        x[rows, [180, 183, 186, 189]] = True
        x[KIT["crash"], 0] = True
    return x


def bass(rng: np.random.Generator, moving: bool) -> np.ndarray:
    """Eighth-note-ish bass from a random root: ``moving`` walks by 2, 3, 5 or 7 semitones every note,
    otherwise every note is the root (a drone)."""
    x = np.zeros((P, L), dtype=bool)
    row = int(rng.integers(8, 20))
    t = 0
    while t < L:
        length = int(rng.choice([6, 12, 12, 24]))
        x[row, t:min(L, t + length - 1)] = True
        t += length
        if moving:
            row = int(np.clip(row + rng.choice([-7, -5, -3, -2, 2, 3, 5, 7]), 0, P - 1))
    return x


def chunks_with(stem: int, make, n: int, seed: int) -> np.ndarray:
    """(n, 3, P, L) chunks with only channel ``stem`` filled by ``make(rng)``."""
    rng = np.random.default_rng(seed)
    rolls = np.zeros((n, 3, P, L), dtype=bool)
    for i in range(n):
        rolls[i, stem] = make(rng)
    return rolls


def accuracy(stem: int, make_real, make_fake, seed: int = 0) -> dict:
    n = SONGS * PER_SONG
    groups = np.arange(n) // PER_SONG
    real = R.segment_features(chunks_with(stem, make_real, n, seed), stem)
    fake = R.segment_features(chunks_with(stem, make_fake, n, seed + 1), stem)
    return R.two_sample_accuracy(real, fake, groups, seed=seed)


@pytest.mark.parametrize("classifier", R.CLASSIFIERS)
def test_same_distribution_is_near_chance(classifier):
    n = SONGS * PER_SONG
    groups = np.arange(n) // PER_SONG
    for stem, make in ((0, lambda r: drums(r, toms=r.random() < 0.5)), (1, lambda r: bass(r, moving=True))):
        real = R.segment_features(chunks_with(stem, make, n, 10), stem)
        fake = R.segment_features(chunks_with(stem, make, n, 11), stem)
        t = R.two_sample_accuracy(real, fake, groups, seed=0, classifier=classifier)
        assert t["folds"] == 5 and t["n_real"] == t["n_fake"] == n
        assert abs(t["accuracy"] - 0.5) < 0.1, (stem, t)
        assert 0 <= t["std"] < 0.15


def test_control_real_against_real_is_near_chance():
    n = SONGS * PER_SONG
    rolls = chunks_with(0, lambda r: drums(r, toms=r.random() < 0.5), n, 7)
    t = R.control_accuracy(R.segment_features(rolls, 0), np.arange(n) // PER_SONG, seed=0)
    assert t["n_real"] == t["n_fake"] == n // 2  # every song (6 chunks) deals 3 rows to each side
    assert abs(t["accuracy"] - 0.5) < 0.1, t


def test_different_distributions_are_told_apart():
    no_toms = accuracy(0, lambda r: drums(r, toms=True), lambda r: drums(r, toms=False))
    assert no_toms["accuracy"] > 0.95, no_toms
    drone = accuracy(1, lambda r: bass(r, moving=True), lambda r: bass(r, moving=False))
    assert drone["accuracy"] > 0.95, drone


def test_identical_pairs_score_exactly_chance_and_edge_cases():
    rolls = chunks_with(1, lambda r: bass(r, moving=True), 40, 3)
    f = R.segment_features(rolls, 1)
    t = R.two_sample_accuracy(f, f, np.arange(40) // 4, seed=0)  # each real row has an identical filled twin
    assert t["accuracy"] == 0.5
    one_song = R.two_sample_accuracy(f, f, np.zeros(40), seed=0)
    assert one_song["accuracy"] is None and one_song["folds"] == 0
    with pytest.raises(ValueError, match="groups"):
        R.two_sample_accuracy(f, f[:10], np.arange(40), seed=0)
    with pytest.raises(ValueError, match="unknown classifier"):
        R.two_sample_accuracy(f, f, np.arange(40) // 4, classifier="forest")


def test_feature_shapes_and_context_features():
    rolls = np.zeros((2, 3, P, L), dtype=bool)
    rolls[:, 1, 12, 0:11] = True  # bass C at step 0
    rolls[:, 1, 19, 12:23] = True  # G at beat 2
    other = np.zeros((2, 2, P, L), dtype=bool)
    other[1, 0, 24, 0:23] = True  # context sounds a C (row 24 % 12 = 0) over both notes
    other[1, 1, 24, 0] = True  # and starts it at step 0 only
    for c, stem in enumerate(("drums", "bass", "guitar")):
        f = R.segment_features(rolls, c, other=other)
        assert f.shape == (2, len(R.feature_names(stem))) and np.isfinite(f).all()
    f = dict(zip(R.feature_names("bass"), R.segment_features(rolls, 1, other=other).T))
    assert f["pos/0"][0] == f["pos/12"][0] == 0.5
    assert f["co_onset"].tolist() == [0.0, 0.5]
    assert f["pc_in_rest"].tolist() == [0.0, 0.5]  # the C agrees with the context, the G does not
    assert f["interval/7"][0] == 1.0 and f["density"][0] == 0.5 and f["notes_per_onset"][0] == 1.0


def test_telltales_on_a_hand_made_roll():
    roll = np.zeros((3, P, L), dtype=bool)
    d = roll[0]
    d[KIT["kick"], [0, 48, 96, 144]] = True
    d[KIT["snare"], [24, 72]] = True
    d[KIT["closed hi-hat"], 0:96:12] = True  # 8 hits
    d[KIT["low tom"], 180] = d[KIT["high tom"], 186] = True
    d[KIT["crash"], 0] = d[KIT["ride"], 96] = True  # 18 hits in all
    b = roll[1]
    for i, row in enumerate((5, 5, 7, 5, 12)):  # intervals 0, 2, 2, 7
        b[row, 12 * i:12 * i + 11] = True
    g = roll[2]
    g[[0, 4, 7], 0:40] = True  # a triad on step 0
    g[[5, 12], 96:140] = True  # a power chord on step 96: interval 5 between the lowest notes
    t = R.telltales(roll)
    assert t["drums"] == pytest.approx({"toms": 2 / 18, "cymbals": 2 / 18, "hihats": 8 / 18, "notes_per_bar": 18 / 4})
    assert t["bass"] == pytest.approx({"repeat_rate": 0.25, "median_interval": 2.0, "notes_per_onset": 1.0,
                                       "notes_per_bar": 5 / 4})
    assert t["guitar"] == pytest.approx({"repeat_rate": 0.0, "median_interval": 5.0, "notes_per_onset": 2.5,
                                         "notes_per_bar": 5 / 4})
    # pooled over a batch: the median interval is the mean of the chunks' medians
    second = np.zeros((P, L), dtype=bool)
    second[3, 0:10] = second[3, 12:22] = second[4, 24:30] = True  # intervals 0, 1: median 0.5
    both = R.stem_telltales(np.stack([b, second]), "bass")
    assert both["median_interval"] == pytest.approx((2.0 + 0.5) / 2)
    assert both["repeat_rate"] == pytest.approx(2 / 6)
    empty = R.telltales(np.zeros((3, P, L), dtype=bool))
    assert empty["drums"]["toms"] is None and empty["bass"]["repeat_rate"] is None
    assert empty["guitar"]["notes_per_bar"] == 0.0


# --------------------------------------------------------------------------- in the harness and the CLI


def band(n: int, seed: int) -> np.ndarray:
    """Chunks with all three stems: grooves with tom fills, moving bass, a guitar triad on every half bar."""
    rng = np.random.default_rng(seed)
    rolls = np.zeros((n, 3, P, L), dtype=bool)
    for i in range(n):
        rolls[i, 0] = drums(rng, toms=True)
        rolls[i, 1] = bass(rng, moving=True)
        for t in range(0, L, 24):
            root = int(rng.integers(0, 12))
            rolls[i, 2, [root, root + 4, root + 7], t:t + 20] = True
    return rolls


def test_harness_realism_keys_and_real_is_chance():
    rolls = band(48, 5)
    chunks = Chunks(rolls, np.arange(48) // 4, np.zeros(48, dtype=np.int64), [{} for _ in range(12)],
                    {"steps_per_beat": 12, "chunk_len": L})
    report, _ = H.evaluate_many({n: get_system(n) for n in ("real", "rule")}, chunks, kinds=("single",),
                                realism=True)
    assert report["config"]["realism"] == "logistic"
    real, rule = report["results"]["real"], report["results"]["rule"]
    for key in ("drums", "bass", "guitar"):
        assert real[key]["realism/accuracy"] == 0.5  # filled == real: every pair is predicted alike
        assert real[key]["realism/folds"] == 5
        assert abs(real[key]["realism/control_accuracy"] - 0.5) < 0.25  # 24 chunks a side: a loose floor
        stats = R.TELLTALES[key]
        for s in stats:
            assert real[key][f"telltale/{s}/gen"] == real[key][f"telltale/{s}/real"]
    assert rule["drums"]["realism/accuracy"] > 0.9  # the rule groove never plays toms or crashes
    assert rule["drums"]["telltale/toms/gen"] == 0.0 and rule["drums"]["telltale/toms/real"] > 0
    assert rule["bass"]["telltale/repeat_rate/gen"] > rule["bass"]["telltale/repeat_rate/real"]
    header, rows = H.realism_rows(report, "drums")
    assert header[0] == "system" and [r[0] for r in rows][-1] == "real parts" and "rule" in [r[0] for r in rows]
    boosted, _ = H.evaluate_many({"rule": get_system("rule")}, chunks, kinds=("single",), realism="boosting")
    assert boosted["config"]["realism"] == "boosting" and boosted["results"]["rule"]["drums"]["realism/accuracy"] > 0.9
    with pytest.raises(StemfillError, match="unknown realism classifier"):
        H.evaluate(get_system("rule"), chunks, kinds=("single",), realism="forest")
    plain, _ = H.evaluate_many({"rule": get_system("rule")}, chunks, kinds=("single",))
    assert not any(k.startswith(("realism/", "telltale/")) for k in plain["results"]["rule"]["bass"])
    assert H.realism_rows(plain, "bass") is None


def write_folder(root, splits: dict[str, np.ndarray]):
    """A chunks folder as `stemfill convert` writes it: one song of 4 chunks a shard."""
    songs = []
    for split, rolls in splits.items():
        for j in range(0, len(rolls), 4):
            sid, shard = f"{split}{j}", f"shards/{split}{j}.npz"
            save_shard(root / shard, rolls[j:j + 4], np.arange(len(rolls[j:j + 4])) * L)
            songs.append({"id": sid, "path": f"{sid}.mid", "hash": sid, "split": split,
                          "stems": ["drums", "bass", "guitar"], "tempo": 120.0, "bars": 16, "n_steps": 4 * L,
                          "n_chunks": len(rolls[j:j + 4]), "shard": shard})
    config = {"steps_per_beat": 12, "chunk_len": L, "n_pitches": P}
    (root / "manifest.json").write_text(json.dumps({"config": config, "songs": songs, "skipped": []}))
    return root


def test_cli_eval_realism(tmp_path):
    folder = write_folder(tmp_path, {"train": band(8, 1), "test": band(24, 2)})
    out = tmp_path / "r.json"
    r = CliRunner().invoke(app, ["eval", "--data", str(folder), "--system", "real", "--system", "rule",
                                 "--no-pairs", "--realism", "--json", str(out)])
    assert r.exit_code == 0, r.output
    rep = json.loads(out.read_text())
    assert rep["results"]["real"]["bass"]["realism/accuracy"] == 0.5
    assert rep["results"]["rule"]["drums"]["telltale/toms/gen"] == 0.0
    assert "realism drums" in r.output and "real parts" in r.output
