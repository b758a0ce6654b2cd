"""The generation stage (stemfill/generate): pattern libraries, the phrase plan and the drum decoder, on songs
and rolls built here, and the shipped model filling a song from its other tracks alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from stemfill.cli import app
from stemfill.errors import StemfillError
from stemfill.generate.decoder import DrumDecoder, decode_roll_drums
from stemfill.generate.drums import PatternConfig
from stemfill.generate.library import (CRASH, FORMAT, MAX_BAR, PatternLibrary, build_library, is_fill,
                                       library_inputs, load_library)
from stemfill.generate.plan import Bar, PlanConfig, grid_bars, make_plan, song_bars
from stemfill.pianoroll.roll import DRUM_KIT, N_DRUM_CLASSES
from stemfill.song.io import read_song, write_song
from stemfill.song.song import Note, Song, TimeSignature, Track

K = {name: i for i, (name, _, _) in enumerate(DRUM_KIT)}
KEY = {name: key for name, key, _ in DRUM_KIT}
runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def _bar(hits: dict[str, list[int]], length: int = 48) -> np.ndarray:
    b = np.zeros((N_DRUM_CLASSES, MAX_BAR), dtype=bool)
    for name, steps in hits.items():
        b[K[name], steps] = True
    return b


GROOVE_A = _bar({"kick": [0, 24], "snare": [12, 36], "closed hi-hat": list(range(0, 48, 6))})
GROOVE_B = _bar({"kick": [0, 18, 30], "snare": [12, 36], "ride": list(range(0, 48, 12))})
FILL = _bar({"kick": [0], "snare": [12, 24, 27, 30, 33], "low tom": [36, 39], "mid tom": [42, 45]})


def _library(phrases=True) -> PatternLibrary:
    bits = np.stack([GROOVE_A, GROOVE_B, FILL])
    lib = PatternLibrary(bits, np.array([48, 48, 48]), np.array(["4/4"] * 3), np.array([10, 10, 2]),
                         np.array([False, False, True]),
                         meta={"format": FORMAT, "steps_per_beat": 12, "classes": N_DRUM_CLASSES})
    if phrases:
        lib.phrases = np.array([[0, 0, 0, 0], [0, 0, 0, 2], [1, 1, 1, 1], [1, 1, 1, 2]])
        lib.phrase_crash = np.zeros((4, 4), dtype=bool)
        lib.phrase_count = np.array([5, 2, 5, 2])
    return lib


def _probs(patterns: list[np.ndarray], noise: float = 0.05) -> np.ndarray:
    """P (classes, T) that plays ``patterns`` bar after bar, with a little mass everywhere."""
    p = np.full((N_DRUM_CLASSES, 48 * len(patterns)), noise, dtype=np.float32)
    for i, pat in enumerate(patterns):
        p[:, i * 48:(i + 1) * 48][pat[:, :48]] = 0.8
    return p


def _decode(p, plan, unit="phrase"):
    dec = DrumDecoder(_library(), PatternConfig(unit=unit, phrase_temperature=0.0, temperature=0.0))
    T = p.shape[1]
    from stemfill.generate.drums import decode_drums

    hits, done = decode_drums(p, np.ones(T, bool), plan, dec.library, dec.patterns, np.random.default_rng(0))
    return hits, done


@pytest.mark.parametrize("unit", ["phrase", "bar"])
def test_a_groove_repeats_through_its_section_and_changes_at_the_section(unit):
    p = _probs([GROOVE_A] * 8 + [GROOVE_B] * 8)
    bars = grid_bars(p.shape[1])
    plan = make_plan(bars, cfg=PlanConfig(fill_section=0.0, fill_phrase=0.0), sections=False)
    plan.section_start[8] = True
    hits, done = _decode(p, plan, unit)
    assert done.all()
    for b in range(16):
        got = hits[:, b * 48:(b + 1) * 48]
        want = (GROOVE_A if b < 8 else GROOVE_B)[:, :48].copy()
        if plan.crash[b]:
            want[K["closed hi-hat"], 0] = want[K["ride"], 0] = False
            want[CRASH, 0] = True
        assert (got == want).all(), f"bar {b}"


def test_time_keepers_score_as_one_when_merged():
    """With ``merge_time`` the fit does not care which time keeper plays the 8ths (hi-hat or ride): the network's
    P of one is the P of the other; without it, only the hi-hat groove fits a hi-hat P."""
    from stemfill.generate.drums import _bar_scores

    hat = _bar({"kick": [0, 24], "snare": [12, 36], "closed hi-hat": list(range(0, 48, 6))})
    ride = _bar({"kick": [0, 24], "snare": [12, 36], "ride": list(range(0, 48, 6))})
    lib = PatternLibrary(np.stack([hat, ride]), np.array([48, 48]), np.array(["4/4"] * 2), np.array([1, 1]),
                         np.array([False, False]), meta={"format": FORMAT})
    p = _probs([hat])[None]
    _, merged = _bar_scores(lib, "4/4", 48, p, PatternConfig(merge_time=True))
    _, apart = _bar_scores(lib, "4/4", 48, p, PatternConfig(merge_time=False))
    assert merged[0, 0] == pytest.approx(merged[0, 1])
    assert apart[0, 0] > apart[0, 1] + 1.0


def test_toms_score_as_one_when_merged():
    """With ``merge_toms`` a fill on the low tom fits a P on the high tom as well as one on the high tom does."""
    from stemfill.generate.drums import _bar_scores

    low = _bar({"kick": [0], "snare": [12, 24], "low tom": [36, 39, 42]})
    high = _bar({"kick": [0], "snare": [12, 24], "high tom": [36, 39, 42]})
    lib = PatternLibrary(np.stack([low, high]), np.array([48, 48]), np.array(["4/4"] * 2), np.array([1, 1]),
                         np.array([True, True]), meta={"format": FORMAT})
    p = _probs([high])[None]
    _, merged = _bar_scores(lib, "4/4", 48, p, PatternConfig(merge_toms=True))
    _, apart = _bar_scores(lib, "4/4", 48, p, PatternConfig())
    assert merged[0, 0] == pytest.approx(merged[0, 1])
    assert apart[0, 1] > apart[0, 0] + 0.5  # apart, only the high tom fill fits a P on the high tom


def test_density_slack_costs_a_full_groove_where_the_network_expects_few_hits():
    """``density_slack``: past the expected count + slack hits a bar, a pattern pays the density cost even under
    ``density_margin`` x the expected count; where the network expects a full groove it changes nothing."""
    from stemfill.generate.drums import _bar_scores

    sparse = _bar({"kick": [0], "closed hi-hat": [0, 12, 24, 36]})
    lib = PatternLibrary(np.stack([GROOVE_A, sparse]), np.array([48, 48]), np.array(["4/4"] * 2), np.array([1, 1]),
                         np.array([False, False]), meta={"format": FORMAT})
    quiet = _probs([sparse], noise=0.0)[None] * 1.5  # 6 hits expected; the groove has 12
    loud = _probs([GROOVE_A], noise=0.0)[None]  # 9.6 expected
    for p, changes in ((quiet, True), (loud, False)):
        _, base = _bar_scores(lib, "4/4", 48, p, PatternConfig())
        _, slack = _bar_scores(lib, "4/4", 48, p, PatternConfig(density_slack=3.0))
        assert (slack[0, 0] < base[0, 0] - 1e-6) == changes
        assert slack[0, 1] == pytest.approx(base[0, 1])


def test_vary_prefers_a_phrase_that_changes_over_a_loop_of_equal_fit():
    """Two phrases fit the network's P equally (bars A and A' differ in their time keeper only, and time keepers
    score as one); ``vary`` takes the one whose bars change; without it the loop wins by its count."""
    from stemfill.generate.drums import decode_drums

    a2 = _bar({"kick": [0, 24], "snare": [12, 36], "open hi-hat": list(range(0, 48, 6))})
    lib = PatternLibrary(np.stack([GROOVE_A, a2]), np.array([48, 48]), np.array(["4/4"] * 2), np.array([5, 5]),
                         np.array([False, False]), meta={"format": FORMAT})
    lib.phrases = np.array([[0, 0, 0, 0], [0, 1, 0, 1]])
    lib.phrase_crash = np.zeros((2, 4), dtype=bool)
    lib.phrase_count = np.array([9, 1])
    p = _probs([GROOVE_A] * 4)
    plan = make_plan(grid_bars(p.shape[1]), cfg=PlanConfig(fill_section=0.0, fill_phrase=0.0), sections=False)
    got = {}
    for vary in (0.0, 0.5):
        cfg = PatternConfig(phrase_temperature=0.0, vary=vary, w_common=0.1, merge_time=True)
        hits, _ = decode_drums(p, np.ones(p.shape[1], bool), plan, lib, cfg, np.random.default_rng(0))
        got[vary] = hits[K["open hi-hat"]].any()
    assert got == {0.0: False, 0.5: True}


def test_the_critic_picks_among_the_best_drawn_phrases(tmp_path):
    """A critic (here: one that finds dense bars fake) chooses among the ``critic_top`` best-drawn phrases of a
    4/4 slot; without it the phrase that fits the network's P best plays. It is saved and read back."""
    from stemfill.evaluation.realism import feature_names
    from stemfill.generate.critic import FORMAT as CRITIC_FORMAT
    from stemfill.generate.critic import Critic, load_critic
    from stemfill.generate.drums import decode_drums

    sparse = _bar({"kick": [0, 24], "snare": [12, 36]})
    lib = PatternLibrary(np.stack([GROOVE_A, sparse]), np.array([48, 48]), np.array(["4/4"] * 2), np.array([5, 5]),
                         np.array([False, False]), meta={"format": FORMAT})
    lib.phrases = np.array([[0, 0, 0, 0], [1, 1, 1, 1]])
    lib.phrase_crash = np.zeros((2, 4), dtype=bool)
    lib.phrase_count = np.array([5, 5])
    names = feature_names("drums")
    coef = np.zeros(len(names))
    coef[names.index("density")] = 1.0
    critic = Critic(np.zeros(len(names)), np.ones(len(names)), coef, 0.0,
                    {"format": CRITIC_FORMAT, "stem": "drums", "features": names})
    critic = load_critic(critic.save(tmp_path / "c.npz"), "drums")
    p = _probs([GROOVE_A] * 4)
    T = p.shape[1]
    plan = make_plan(grid_bars(T), cfg=PlanConfig(fill_section=0.0, fill_phrase=0.0), sections=False)
    parts = np.zeros((2, 48, T), bool)
    got = {}
    for w in (0.0, 100.0):
        cfg = PatternConfig(phrase_temperature=0.0, w_critic=w, critic_top=2)
        hits, _ = decode_drums(p, np.ones(T, bool), plan, lib, cfg, np.random.default_rng(0), critic, parts, None)
        got[w] = bool(hits[K["closed hi-hat"]].any())
    assert got == {0.0: True, 100.0: False}
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a critic")
    with pytest.raises(StemfillError, match="bad.npz: not a stemfill critic"):
        load_critic(bad)
    with pytest.raises(StemfillError, match="c.npz: a critic of the drums, not of the bass"):
        load_critic(tmp_path / "c.npz", "bass")
    Critic(np.zeros(3), np.ones(3), np.zeros(3), 0.0, {"format": CRITIC_FORMAT, "stem": "drums", "features": ["a"]}).save(bad)
    with pytest.raises(StemfillError, match="other features"):
        load_critic(bad)


def test_a_fill_lands_before_the_section_change_and_a_crash_follows():
    p = _probs([GROOVE_A] * 8 + [GROOVE_B] * 8)
    bars = grid_bars(p.shape[1])
    plan = make_plan(bars, cfg=PlanConfig(fill_section=1.0, fill_phrase=0.0), sections=False)
    plan.section_start[8] = True
    plan.fill[7] = True  # the planner's decision, as make_plan takes it for a section start
    plan.crash[8] = True
    plan.constrain_fills = True
    hits, _ = _decode(p, plan)
    assert (hits[:, 7 * 48:8 * 48] == FILL[:, :48]).all()  # the real fill, in the bar before the section
    assert hits[CRASH, 8 * 48]  # a crash on the section's downbeat ...
    assert not hits[K["ride"], 8 * 48]  # ... instead of the ride there
    assert not hits[:, :7 * 48][[K["low tom"], K["mid tom"]]].any()  # no fill anywhere else


def test_the_planner_puts_fills_before_sections_at_the_rate_asked():
    bars = grid_bars(48 * 400)
    roll = np.zeros((3, 48, 48 * 400), bool)
    plan = make_plan(bars, roll, np.ones((3, 48 * 400), bool), cfg=PlanConfig(fill_section=1.0, fill_phrase=0.25),
                     rng=np.random.default_rng(1), sections=False)
    ends = np.flatnonzero(plan.phrase_start[1:])  # bars before a phrase start
    assert 0.15 < plan.fill[ends].mean() < 0.35
    other = np.setdiff1d(np.arange(399), ends)
    assert not plan.fill[other].any()
    after = plan.crash[1:][plan.fill[:-1]]
    assert 0.2 < after.mean() < 0.6  # a crash after about 40 % of the planned fills ...
    assert not plan.crash[1:][~plan.fill[:-1]].any()  # ... and nowhere else (no section starts here)
    always = make_plan(bars, roll, np.ones((3, 48 * 400), bool), rng=np.random.default_rng(1), sections=False,
                       cfg=PlanConfig(fill_section=1.0, fill_phrase=0.25, crash_after_fill=1.0))
    assert always.crash[1:][always.fill[:-1]].all()
    forced = make_plan(bars[:16], cfg=PlanConfig(fill_phrase=0.0, crash_after_fill=0.0), forced_fills={5},
                       sections=False)
    assert forced.fill[5] and forced.fill.sum() == 1
    assert forced.crash[6] and forced.crash.sum() == 1  # a fill the user asked for always crashes after


def test_bars_of_a_meter_without_patterns_keep_their_hits_and_say_so():
    lib = _library()
    T = 36 * 4
    drums = np.zeros((48, T), bool)
    drums[K["kick"], ::36] = True
    notes: list[str] = []
    bars = [Bar(s, 36, "3/4") for s in range(0, T, 36)]
    out = decode_roll_drums(DrumDecoder(lib), drums, np.full((48, T), 0.1, np.float32), np.ones(T, bool), bars,
                            notes=notes)
    assert (out == drums).all()
    assert notes and "3/4" in notes[0]


def _drum_song(path, meter=(4, 4), bars=8, pattern=None, name="Drums"):
    q = 480
    bar = q * 4 * meter[0] // meter[1]
    pattern = pattern or {"kick": [0], "snare": [bar // 2]}
    notes = [Note(b * bar + t, q // 4, KEY[k], 100) for b in range(bars) for k, ts in pattern.items() for t in ts]
    song = Song([Track(name, program=0, is_drum=True, notes=notes)], time_signatures=[TimeSignature(0, *meter)],
                resolution=q)
    write_song(song, path)
    return path


def test_library_build_reads_bars_in_their_meter_and_phrases(tmp_path):
    a = _drum_song(tmp_path / "songs" / "waltz.mid", (3, 4), 8, {"kick": [0], "snare": [480, 960]})
    _drum_song(tmp_path / "songs" / "rock.mid", (4, 4), 6, {"kick": [0, 960], "snare": [480, 1440]})
    lib = build_library(library_inputs([tmp_path / "songs"]))
    assert sorted(lib.meter.tolist()) == ["3/4", "4/4"]
    w = int(np.flatnonzero(lib.meter == "3/4")[0])
    assert lib.length[w] == 36 and lib.count[w] == 8
    assert lib.bits[w, K["kick"], 0] and lib.bits[w, K["snare"], [12, 24]].all()
    assert len(lib.phrases) == 2 and set(lib.phrase_count.tolist()) == {5, 3}  # 8 - 3 and 6 - 3 runs of 4
    out = lib.save(tmp_path / "lib.npz")
    back = load_library(out)
    assert (back.bits == lib.bits).all() and (back.phrases == lib.phrases).all()
    # a 3/4 song decoded with it plays the waltz bar, in 36-step bars
    song = read_song(a)
    bars = song_bars(song, 36 * 8)
    assert [b.length for b in bars] == [36] * 8
    p = np.full((48, 36 * 8), 0.02, np.float32)
    p[K["kick"], ::36] = 0.9
    out = decode_roll_drums(DrumDecoder(back), np.zeros((48, 36 * 8), bool), p, np.ones(36 * 8, bool), bars,
                            sections=False)
    assert out[K["kick"], ::36].all() and out[K["snare"], 12::36].all() and out.sum() == 24


def test_is_fill():
    assert is_fill(FILL, 48) and not is_fill(GROOVE_A, 48)


def test_library_refusals(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a library")
    with pytest.raises(StemfillError, match="bad.npz: not a stemfill drum pattern library"):
        load_library(bad)
    lib = _library()
    lib.meta = dict(lib.meta, steps_per_beat=4)
    other_grid = lib.save(tmp_path / "grid.npz")
    with pytest.raises(StemfillError, match="grid.npz: built for another grid"):
        load_library(other_grid)
    empty = _library()
    empty.fill[:] = True
    with pytest.raises(StemfillError, match="holds no drum grooves"):
        load_library(empty.save(tmp_path / "empty.npz"))
    with pytest.raises(StemfillError, match="no such pattern library"):
        load_library(tmp_path / "missing.npz")


def test_cli_library_build_and_use(tmp_path):
    _drum_song(tmp_path / "in" / "a.mid")
    lib = tmp_path / "lib.npz"
    r = runner.invoke(app, ["library", "build", str(tmp_path / "in"), "-o", str(lib)])
    assert r.exit_code == 0, r.output
    assert "1 bar patterns" in r.output and "1 phrases" in r.output  # one distinct bar, one distinct phrase
    # a folder with no drums: one line, exit 1, nothing written
    (tmp_path / "nodrums").mkdir()
    write_song(Song([Track("Bass", program=33, notes=[Note(0, 480, 40, 90)])]), tmp_path / "nodrums" / "b.mid")
    r = runner.invoke(app, ["library", "build", str(tmp_path / "nodrums"), "-o", str(tmp_path / "x.npz")])
    assert r.exit_code == 1 and "no drum bars" in r.output and not (tmp_path / "x.npz").exists()
    # --library checked before the song is read: a bad library, or no drums to add
    song = tmp_path / "riff.mid"
    _drum_song(song)
    r = runner.invoke(app, ["midi", str(tmp_path / "nosong.mid"), "--add", "drums", "--library", str(tmp_path / "bad.npz")])
    assert r.exit_code == 1 and "bad.npz: no such pattern library" in r.output
    r = runner.invoke(app, ["midi", str(song), "--add", "bass", "--library", str(lib), "-o", str(tmp_path / "o.mid")])
    assert r.exit_code == 1 and "drums are not being added" in r.output
    r = runner.invoke(app, ["midi", str(song), "--add", "drums", "--drum-decoder", "beats"])
    assert r.exit_code == 1 and "choose patterns or cells" in r.output


def test_the_shipped_library_reads_and_names_its_sources():
    from stemfill.generate.library import default_library_path

    lib = load_library(default_library_path())
    assert len(lib.phrases) > 1000 and "4/4" in lib.meters() and "3/4" in lib.meters()
    assert {s["source"] for s in lib.meta["sources"]} <= {"corpus", "corpus-extra", "onyxite", "gmd"}
    cfg = json.loads((default_library_path().parent / "config.json").read_text())
    assert cfg["sampling"]["drum_decoder"] == "patterns"


def test_the_shipped_model_writes_a_band_under_a_piano_alone(tmp_path):
    """No drums, bass or guitar in the song: the model writes all three from the other tracks, which stay
    note for note."""
    q = 480
    chords = [(57, 60, 64), (53, 57, 60), (48, 52, 55), (55, 59, 62)]  # Am F C G
    piano = [Note(b * 4 * q + k * q, q, p, 70) for b in range(16) for k in range(4) for p in chords[b % 4]]
    strings = [Note(b * 4 * q, 4 * q, chords[b % 4][0] + 12, 60) for b in range(16)]
    song = Song([Track("Piano", program=0, notes=piano), Track("Strings", program=48, notes=strings)])
    src = write_song(song, tmp_path / "piano.mid")
    out = tmp_path / "band.mid"
    r = runner.invoke(app, ["midi", str(src), "--add", "drums", "--add", "bass", "--add", "guitar", "-o", str(out)])
    assert r.exit_code == 0, r.output
    back = read_song(out)
    by = {t.name: t for t in back.tracks}
    assert sorted((n.start, n.pitch) for n in by["Piano"].notes) == sorted((n.start, n.pitch) for n in piano)
    assert sorted((n.start, n.pitch) for n in by["Strings"].notes) == sorted((n.start, n.pitch) for n in strings)
    for name in ("Drums (stemfill)", "Bass (stemfill)", "Guitar (stemfill)"):
        assert len(by[name].notes) > 16, name
    # the new bass plays in the piano's key: most of its notes are A minor / C major scale tones
    scale = {0, 2, 4, 5, 7, 9, 11}
    bass_pc = [n.pitch % 12 for n in by["Bass (stemfill)"].notes]
    assert np.mean([pc in scale for pc in bass_pc]) > 0.8


def test_the_drum_critic_is_read_from_the_models_own_folder(tmp_path):
    """A critic learns one model's decoder: a model folder without ``drum-critic.npz`` decodes without a critic
    (the shipped one is not borrowed), one with it uses it, and a file of another stem there is refused."""
    from stemfill.generate.critic import Critic, load_critic
    from stemfill.generate.decoder import drum_decoder_for
    from stemfill.pianoroll.fast import load_onnx_model
    from stemfill.pianoroll.model import default_model_path, load_model

    shipped = default_model_path()
    assert drum_decoder_for(load_model(shipped)).critic is not None
    own = tmp_path / "run"
    own.mkdir()
    for name in ("model.safetensors", "config.json", "model.onnx"):
        shutil.copyfile(shipped / name, own / name)
    assert drum_decoder_for(load_model(own)).critic is None
    assert drum_decoder_for(load_onnx_model(own)).critic is None
    shutil.copyfile(shipped / "drum-critic.npz", own / "drum-critic.npz")
    assert drum_decoder_for(load_model(own)).critic is not None
    assert drum_decoder_for(load_onnx_model(own)).critic is not None
    c = load_critic(own / "drum-critic.npz")
    (own / "drum-critic.npz").unlink()
    Critic(c.mean, c.scale, c.coef, c.intercept, dict(c.meta, stem="bass")).save(own / "drum-critic.npz")
    with pytest.raises(StemfillError, match="drum-critic.npz: a critic of the bass, not of the drums"):
        drum_decoder_for(load_model(own))


def test_drum_controls_are_met_by_real_phrases(tmp_path):
    """With a drum --density the shipped model still plays real phrases (every drum bar is a bar of the shipped
    library, but for a planned crash on its downbeat) and their density follows the request;
    --drum-decoder cells plays cells instead."""
    from stemfill.generate.drums import DOWNBEAT_YIELDS
    from stemfill.generate.library import get_library
    from stemfill.pianoroll.grid import CHANNEL
    from stemfill.pianoroll.roll import encode
    from stemfill.song.io import read_song

    lib = get_library()
    yields = [CRASH] + list(DOWNBEAT_YIELDS)  # a planned crash replaces the time keepers' downbeat

    def key(bar: np.ndarray) -> bytes:
        b = np.zeros((N_DRUM_CLASSES, MAX_BAR), dtype=bool)
        b[:, :48] = bar[:, :48]
        b[yields, 0] = False
        return b.tobytes()

    known_bars = {key(lib.bits[i]) for i in np.flatnonzero(lib.length == 48)}
    src = ROOT / "examples" / "riff.mid"
    hits, library_bars = {}, {}
    for name, args in (("auto", []), ("low", ["--density", "drums=low"]), ("high", ["--density", "drums=high"]),
                       ("cells", ["--density", "drums=high", "--drum-decoder", "cells"])):
        out = tmp_path / f"{name}.mid"
        r = runner.invoke(app, ["midi", str(src), "--add", "drums", "--replace", "-o", str(out), *args])
        assert r.exit_code == 0, r.output
        song = read_song(out)
        hits[name] = sum(len(t.notes) for t in song.tracks if t.is_drum)
        d = encode(song)[CHANNEL["drums"], :N_DRUM_CLASSES]
        bars = [d[:, b:b + 48] for b in range(0, d.shape[1] - 47, 48) if d[:, b:b + 48].any()]
        library_bars[name] = np.mean([key(bar) in known_bars for bar in bars])
    assert hits["low"] < hits["auto"] < hits["high"], hits
    assert library_bars["low"] == library_bars["high"] == library_bars["auto"] == 1.0, library_bars
    assert library_bars["cells"] < 0.5, library_bars


def _request_cfg():
    from stemfill.generate.controls import ControlConfig

    return ControlConfig(quantiles={"drums.density": list(np.linspace(0, 30, 21)),
                                    "drums.syncopation": list(np.linspace(0, 1, 21)),
                                    "drums.toms": list(np.linspace(0, 0.5, 21))})


def test_drum_targets_read_the_request_back_from_the_planes():
    """What fill_song and fill_chunks give the network as control planes comes back per bar, in raw units."""
    from stemfill.generate.controls import StemControls, control_planes, drum_targets

    cfg = _request_cfg()
    planes = control_planes({"drums": StemControls({"density": 0.25, "syncopation": 0.5}, fill_every=4)}, 8 * 48, 4)
    t = drum_targets(planes, cfg, grid_bars(8 * 48))
    assert t.density == pytest.approx([7.5] * 8)
    assert t.syncopation == pytest.approx([0.5] * 8)
    assert np.isnan(t.toms).all() and t.groove is None
    assert t.fill.tolist() == [0, 0, 0, 1, 0, 0, 0, 1]
    assert drum_targets(control_planes({"bass": StemControls({"density": 0.9})}, 96, 4), cfg, grid_bars(96)) is None


def test_a_drum_request_chooses_the_phrases_that_meet_it():
    """The pattern decoder follows a requested density and syncopation per bar: among real phrases that fit
    the network about as well, the sparse one where little is asked, the dense one where much is."""
    from stemfill.generate.controls import DrumTargets
    from stemfill.generate.drums import decode_drums

    sparse = _bar({"kick": [0, 24], "snare": [12, 36], "closed hi-hat": [0, 12, 24, 36]})  # 8 hits, on the beat
    dense = _bar({"kick": [0, 18, 24, 42], "snare": [12, 36], "closed hi-hat": list(range(0, 48, 3))})  # 22
    lib = PatternLibrary(np.stack([sparse, dense]), np.array([48, 48]), np.array(["4/4"] * 2), np.array([5, 5]),
                         np.array([False, False]), meta={"format": FORMAT})
    lib.phrases = np.array([[0, 0, 0, 0], [1, 1, 1, 1]])
    lib.phrase_crash = np.zeros((2, 4), dtype=bool)
    lib.phrase_count = np.array([5, 5])
    p = (_probs([sparse] * 4, noise=0.0) * 0.5 + _probs([dense] * 4, noise=0.0) * 0.5)
    bars = grid_bars(4 * 48)
    plan = make_plan(bars, cfg=PlanConfig(fill_section=0.0, fill_phrase=0.0), sections=False)
    nan = np.full(4, np.nan)
    played = {}
    for name, t in (("auto", None), ("low", DrumTargets(np.full(4, 8.0), nan, nan, np.full(4, -1))),
                    ("high", DrumTargets(np.full(4, 22.0), nan, nan, np.full(4, -1))),
                    ("on the beat", DrumTargets(nan, np.zeros(4), nan, np.full(4, -1))),
                    ("off the beat", DrumTargets(nan, np.full(4, 0.6), nan, np.full(4, -1)))):
        hits, done = decode_drums(p, np.ones(4 * 48, bool), plan, lib, PatternConfig(phrase_temperature=0.0),
                                  np.random.default_rng(0), targets=t)
        assert done.all()
        played[name] = int(hits.sum())
    assert played["low"] == played["on the beat"] == 4 * 8
    assert played["high"] == played["off the beat"] == 4 * 22


def test_requested_fills_bind_every_bar_of_a_phrase():
    """A request's fill flags (fill_every 2: bars 2 and 4 end in a fill, 1 and 3 do not) hold in every bar of the
    phrase, by the controls' own measure of a fill, though the library's phrases fill only in their last bar."""
    import torch

    from stemfill.generate.controls import DrumTargets, bar_attributes

    p = _probs([GROOVE_A] * 4)
    nan = np.full(4, np.nan)
    dec = DrumDecoder(_library(), PatternConfig(phrase_temperature=0.0))
    roll = np.zeros((N_DRUM_CLASSES, 4 * 48), dtype=bool)
    out = decode_roll_drums(dec, roll, p, np.ones(4 * 48, bool), sections=False,
                            targets=DrumTargets(nan, nan, nan, np.array([0, 1, 0, 1])))
    three = np.zeros((1, 3, N_DRUM_CLASSES, 4 * 48), dtype=bool)
    three[0, 0] = out
    raw, _ = bar_attributes(torch.from_numpy(three))
    assert raw[("drums", "fill")][0].tolist() == [0, 1, 0, 1]
    assert out[CRASH, 2 * 48]  # a crash on the downbeat after the requested fill


def _band_parts(intro: int = 8, body: int = 16, P: int = 48):
    """(bass, guitar, other) rolls (P, T): ``intro`` bars of a lone, sparse keyboard (a chord a bar), then
    ``body`` bars of bass 8ths, guitar chords on the beat and the keyboard."""
    T = (intro + body) * 48
    bass, guitar, keys = (np.zeros((P, T), dtype=bool) for _ in range(3))
    for b in range(intro + body):
        s = b * 48
        keys[[20, 24, 27], s:s + 40] = True
        if b >= intro:
            for k in range(8):
                bass[10, s + 6 * k:s + 6 * k + 5] = True
            for k in range(4):
                guitar[[22, 26, 29], s + 12 * k:s + 12 * k + 10] = True
    return bass, guitar, keys


def test_the_shipped_rest_model_rests_a_sparse_intro_and_plays_the_band():
    """With only a keyboard chord a bar for 8 bars, then a full band, the shipped rest model rests (some of) the
    intro and none of the band's bars; the decoder then plays nothing there and comes in with a crash."""
    from stemfill.generate.rests import get_rests
    from stemfill.pianoroll.model import default_model_path

    rests = get_rests(default_model_path())
    assert rests is not None and 0 < rests.threshold < 1
    bass, guitar, keys = _band_parts()
    bars = grid_bars(bass.shape[1])
    r = rests.rests([bass, guitar, keys], bars)
    assert r[:8].sum() >= 4 and not r[8:].any(), r
    from dataclasses import replace

    dec = DrumDecoder(_library(), PatternConfig(phrase_temperature=0.0), rests=replace(rests, crash_entry=1.0))
    T = bass.shape[1]
    p = _probs([GROOVE_A] * (T // 48))
    parts = np.stack([bass, guitar])
    roll = np.zeros((3, 48, T), dtype=bool)
    roll[1], roll[2] = bass, guitar
    known = np.ones((3, T), dtype=bool)
    known[0] = False
    other = np.stack([keys, keys & ~np.pad(keys, ((0, 0), (1, 0)))[:, :-1]])  # sounding, onset
    out = decode_roll_drums(dec, np.zeros((N_DRUM_CLASSES, T), dtype=bool), p, np.ones(T, bool), bars, roll, known,
                            other, parts=parts)
    played = [out[:, b.start:b.start + 48].any() for b in bars]
    assert [not x for x in played] == r.tolist()
    last_rest = int(np.flatnonzero(r).max())
    if r[last_rest - 1]:  # two bars of rest or more: the drums come in with a crash
        assert out[CRASH, bars[last_rest + 1].start]
    without = decode_roll_drums(replace(dec, rests=None), np.zeros((N_DRUM_CLASSES, T), dtype=bool), p,
                                np.ones(T, bool), bars, roll, known, other, parts=parts)
    assert all(without[:, b.start:b.start + 48].any() for b in bars)


def test_rest_models_round_trip_and_refuse_what_they_are_not(tmp_path):
    from stemfill.generate.rests import FEATURES, load_rests, train_rests

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, len(FEATURES)))
    y = X[:, 1] < -0.8
    m = train_rests("drums", X, y, {"trained_on": "a test"})
    m.threshold = 0.4
    back = load_rests(m.save(tmp_path / "drum-rests.json"))
    assert back.threshold == 0.4 and back.meta["trained_on"] == "a test"
    assert np.allclose(back.chance(X), m.chance(X))
    assert ((back.chance(X) > 0.5) == y).mean() > 0.9
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(StemfillError, match="bad.json: not a stemfill rest model"):
        load_rests(bad)
    d = json.loads((tmp_path / "drum-rests.json").read_text())
    with pytest.raises(StemfillError, match="drum-rests.json: a rest model of the drums, not of the bass"):
        load_rests(tmp_path / "drum-rests.json", "bass")
    for change, message in (({"format": "x"}, "format"), ({"features": ["a"]}, "other features")):
        p = tmp_path / "other.json"
        p.write_text(json.dumps({**d, **change}))
        with pytest.raises(StemfillError, match=f"other.json: .*{message}"):
            load_rests(p)


def test_the_drums_rest_before_the_song_starts_but_not_in_its_silent_bars():
    """Bars before the other parts first play rest (a count-in, silence at a file's start); a silent bar later
    in the song does not (real drummers play through 92 % of those: a drum break)."""
    from stemfill.generate.rests import get_rests
    from stemfill.pianoroll.model import default_model_path

    rests = get_rests(default_model_path())
    bass, guitar, keys = _band_parts(intro=0, body=20)
    for x in (bass, guitar, keys):
        x[:, :3 * 48] = False  # nothing plays in bars 1-3
        x[:, 12 * 48:13 * 48] = False  # nor in bar 13
    r = rests.rests([bass, guitar, keys], grid_bars(bass.shape[1]))
    assert r[:3].all() and not r[12] and not r[3:].any(), r


def test_the_new_bass_rests_in_a_sparse_intro_and_known_notes_stay():
    """The shipped bass rest model clears the new bass in (some of) the bars of a keyboard-only intro with no
    drums, none of the band's bars, and never a known cell (here: a bass note known in bar 2)."""
    from types import SimpleNamespace

    from stemfill.pianoroll.fill import _rest_pitched
    from stemfill.pianoroll.model import default_model_path

    bass, guitar, keys = _band_parts()
    T = bass.shape[1]
    drums = np.zeros_like(bass)
    for b in range(8, T // 48):
        drums[[0, 1, 4], b * 48:b * 48 + 48:12] = True  # kick, snare, hi-hat from bar 9
    R = np.stack([drums, np.ones_like(bass) & (np.arange(48)[:, None] == 10), guitar])  # a new bass in every bar
    kn = np.ones_like(R)
    kn[1] = False
    kn[1, :, 48:96] = True  # bar 2 of the bass is known
    R[1, :, 48:96] = False
    R[1, 12, 48:60] = True
    other = np.stack([keys, keys & ~np.pad(keys, ((0, 0), (1, 0)))[:, :-1]])
    before = R.copy()
    _rest_pitched(SimpleNamespace(folder=default_model_path()), R, kn, other, grid_bars(T), T)
    rested = [not R[1, :, b * 48:(b + 1) * 48].any() for b in range(T // 48)]
    assert sum(rested[:8]) >= 3 and not any(rested[8:]), rested
    assert (R[kn] == before[kn]).all() and R[1, 12, 48:60].all()
    assert (R[[0, 2]] == before[[0, 2]]).all()


def test_midi_rests_before_the_song_starts_unless_no_rests(tmp_path):
    """`stemfill midi --add drums` leaves the two silent bars before a song's bass and guitar come in empty (the
    bars before the other parts play); --no-rests plays them too."""
    q, bar = 480, 1920
    bass = [Note(b * bar + k * q, q - 20, 40 + (b // 2) % 2 * 5, 90) for b in range(2, 18) for k in range(4)]
    gtr = [Note(b * bar + k * 2 * q, 2 * q - 20, p, 80) for b in range(2, 18) for k in range(2) for p in (52, 56, 59)]
    song = Song([Track("Bass", program=33, notes=bass), Track("Guitar", program=29, notes=gtr)],
                time_signatures=[TimeSignature(0, 4, 4)], resolution=q)
    src = write_song(song, tmp_path / "late.mid") or tmp_path / "late.mid"
    first = {}
    for name, args in (("rests", []), ("no-rests", ["--no-rests"])):
        out = tmp_path / f"{name}.mid"
        r = runner.invoke(app, ["midi", str(src), "--add", "drums", "-o", str(out), *args])
        assert r.exit_code == 0, r.output
        drums = [n for t in read_song(out).tracks if t.is_drum for n in t.notes]
        assert drums
        first[name] = min(n.start for n in drums) * q // read_song(out).resolution
    assert first["rests"] >= 2 * bar and first["no-rests"] < 2 * bar, first
