"""Controls: per-bar attributes, the planes a model reads, the CLI's control options and --like."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from stemfill.cli import app
from stemfill.errors import StemfillError
from stemfill.generate.controls import (BAR, LEVELS, N_CONTROL_PLANES, ControlConfig, StemControls, bar_attributes,
                                        control_planes, fit_quantiles, groove, groove_distance, parse_controls,
                                        read_reference, reference_controls, resolve_controls, slot_index,
                                        training_planes)
from stemfill.pianoroll.diffusion import DiffusionConfig, SamplingConfig
from stemfill.pianoroll.fill import fill_chunks, fill_song
from stemfill.pianoroll.grid import N_PITCHES
from stemfill.pianoroll.model import build_model, load_model, save_pretrained
from stemfill.pianoroll.unet import UNetConfig
from stemfill.song.midi import write_midi
from symbolic_toy import toy_rolls, toy_song
from wired_model import wired_model

TINY = dict(channels=(8, 16), down=((2, 2),), layers=(0, 1), norm_groups=4, time_dim=16, attention=False)
L = 4 * BAR


def _roll() -> np.ndarray:
    """One 4-bar chunk: drums hit every 8th note (kick on beats, hats between), a fill of toms in bar 2's
    last beat; bass on every beat at row 10, one off-beat note in bar 1; guitar 3-note chords on beats."""
    x = np.zeros((1, 3, N_PITCHES, L), dtype=bool)
    for t in range(0, L, 6):
        x[0, 0, 0 if t % 12 == 0 else 4, t] = True
    for t in (BAR + 36, BAR + 39, BAR + 42, BAR + 45):
        x[0, 0, 7, t] = True  # low tom
    for t in range(0, L, 12):
        x[0, 1, 10, t:t + 10] = True
    x[0, 1, 12, 18:22] = True
    for t in range(0, L, 12):
        x[0, 2, [20, 24, 27], t:t + 6] = True
    return x


def test_bar_attributes_measure_what_they_say():
    raw, plays = bar_attributes(torch.from_numpy(_roll()))
    assert plays.all()
    d = raw[("drums", "density")][0].tolist()
    assert d == [8, 12, 8, 8]  # 8th notes; bar 2 adds 4 tom hits
    assert raw[("drums", "fill")][0].tolist() == [0, 1, 0, 0]
    assert raw[("drums", "toms")][0, 1] == pytest.approx(4 / 12)
    assert raw[("drums", "syncopation")][0, 0] == pytest.approx(0.5)  # hats between the beats
    assert raw[("bass", "density")][0].tolist() == [5, 4, 4, 4]
    assert raw[("bass", "syncopation")][0, 0] == pytest.approx(1 / 5)
    assert raw[("bass", "register")][0, 1] == pytest.approx(10)
    assert raw[("guitar", "polyphony")][0, 0] == pytest.approx(3)
    g = groove(torch.from_numpy(_roll()))[0]
    assert g.shape == (3, N_PITCHES, BAR)
    assert g[0, 0, 0] == 1 and g[0, 7, 36] == pytest.approx(0.25)  # the kick in every bar, the tom in one of four
    assert (g[1, :, 18] == 0.25).all() and (g[1, :, 0] == 1).all()  # pitched: one row per step, the same in all rows


def test_quantiles_map_levels_to_real_parts_and_numbers_back():
    rolls = np.concatenate([_roll(), toy_rolls(30, seed=2)])
    q = fit_quantiles(rolls)
    cfg = ControlConfig(quantiles=q)
    assert set(q) >= {"drums.density", "bass.register", "guitar.polyphony", "drums.toms", "bass.syncopation"}
    lo, hi = cfg.from_unit("drums", "density", 0.1), cfg.from_unit("drums", "density", 0.9)
    assert lo <= hi
    assert cfg.to_unit("drums", "density", hi) >= cfg.to_unit("drums", "density", lo)
    assert cfg.to_unit("drums", "fill", 1.0) == 1.0  # shares pass through


def test_training_planes_give_only_the_target_stems_controls():
    x = torch.from_numpy(np.concatenate([_roll(), _roll()]))
    cfg = ControlConfig(quantiles=fit_quantiles(x.numpy()), given_prob=1.0, groove_prob=1.0)
    target = torch.tensor([[False, True, False], [True, False, False]])
    p = training_planes(x, target, cfg, torch.Generator().manual_seed(0))
    assert p.shape == (2, N_CONTROL_PLANES, N_PITCHES, L)
    bass_given = slot_index("bass", "density") + 1
    drums_given = slot_index("drums", "density") + 1
    assert (p[0, bass_given] == 1).all() and (p[0, drums_given] == 0).all()
    assert (p[1, drums_given] == 1).all() and (p[1, bass_given] == 0).all()
    fill = slot_index("drums", "polyphony")  # drums' fourth slot is the fill flag
    assert p[1, fill, 0, BAR + 5] == 1 and p[1, fill, 0, 5] == 0
    none = training_planes(x, target, ControlConfig(quantiles=cfg.quantiles, given_prob=0.0, groove_prob=0.0))
    assert (none == 0).all()


def test_control_planes_follow_the_request():
    p = control_planes({"drums": StemControls({"density": 0.85}, fill_every=4)}, 8 * BAR, N_PITCHES)
    i = slot_index("drums", "density")
    assert (p[i] == np.float32(0.85)).all() and (p[i + 1] == 1).all()
    f = slot_index("drums", "polyphony")
    per_bar = p[f, 0, ::BAR].tolist()
    assert per_bar == [0, 0, 0, 1, 0, 0, 0, 1] and (p[f + 1] == 1).all()
    assert (p[slot_index("bass", "density") + 1] == 0).all()


@pytest.mark.parametrize("add,options,fills,message", [
    (["drums"], {"density": ["extreme"]}, None, "use low, mid, high, auto or a number"),
    (["drums"], {"density": ["bass=high"]}, None, "bass is not being added"),
    (["drums"], {"density": ["piano=high"]}, None, "unknown stem 'piano'"),
    (["drums"], {"register": ["low"]}, None, "applies to bass and guitar"),
    (["bass"], {"density": ["-3"]}, None, "finite and >= 0"),
    (["bass"], {}, "often", "--fills applies to drums"),
    (["drums"], {}, "sometimes", "use none, phrase, often, sections or auto"),
])
def test_bad_controls_are_one_clear_error(add, options, fills, message):
    with pytest.raises(StemfillError, match=message.replace("(", r"\(")):
        parse_controls(add, options, fills)


def test_levels_numbers_and_a_reference_resolve_to_percentiles():
    roll = _roll()
    cfg = ControlConfig(quantiles=fit_quantiles(np.concatenate([roll, toy_rolls(30, seed=2)])))
    req = parse_controls(["drums", "bass"], {"density": ["drums=high", "bass=4"], "register": ["40"]}, "none")
    out = resolve_controls(req, ["drums", "bass"], cfg)
    assert out["drums"].values["density"] == LEVELS["high"] and out["drums"].fill_every == 0
    assert out["bass"].values["density"] == pytest.approx(float(cfg.to_unit("bass", "density", 4.0)))
    assert out["bass"].values["register"] == pytest.approx(float(cfg.to_unit("bass", "register", 40.0 - 24)))
    ref = reference_controls(roll[0], "drums", cfg)
    assert ref.groove.shape == (N_PITCHES, BAR) and set(ref.values) == {"density", "syncopation", "toms"}
    liked = resolve_controls(parse_controls(["drums"], {"density": ["low"]}), ["drums"], cfg, roll[0])
    assert liked["drums"].values["density"] == LEVELS["low"]  # the explicit control overrides the reference
    assert liked["drums"].groove is not None
    no_guitar = roll[0].copy()
    no_guitar[2] = False
    with pytest.raises(StemfillError, match="has no guitar part"):
        resolve_controls(parse_controls(["guitar"], {}), ["guitar"], cfg, no_guitar, "ref.mid")
    assert groove_distance(ref.groove, ref.groove) == 0


def _tiny_with_controls(seed: int = 0):
    torch.manual_seed(seed)
    cfg = ControlConfig(quantiles=fit_quantiles(toy_rolls(40, seed=1)))
    m = build_model(UNetConfig(**TINY, prior_logit=-1.0, control_planes=N_CONTROL_PLANES),
                    DiffusionConfig(density=(0.1, 0.1, 0.1)), cfg, sampling=SamplingConfig(sample_steps=2))
    torch.nn.init.normal_(m.net.conv_out.weight, std=0.5)
    with torch.no_grad():
        m.net.conv_in.weight[:, -N_CONTROL_PLANES:] = 2.0  # so that the controls change the fill
    return m


def test_a_model_with_controls_saves_them_and_fills_with_and_without(tmp_path):
    m = _tiny_with_controls()
    d = save_pretrained(m, tmp_path / "m")
    assert json.loads((d / "config.json").read_text())["controls"]["quantiles"] == m.controls.quantiles
    m2 = load_model(d)
    assert m2.controls == m.controls and m2.control_planes == N_CONTROL_PLANES
    rolls = toy_rolls(4, seed=3)
    known = np.ones((4, 3), dtype=bool)
    known[:, 0] = False
    high = np.stack([control_planes({"drums": StemControls({"density": 0.9})}, rolls.shape[-1], N_PITCHES)] * 4)
    a = fill_chunks(m2, rolls, known, seed=1)
    b = fill_chunks(m2, rolls, known, seed=1, controls=high)
    assert (a != b).any() and (b[:, 1:] == rolls[:, 1:]).all()  # known stems exact
    song = toy_song(bars=8, stems=("bass", "guitar"))
    r1 = fill_song(song, ["drums"], m2, seed=0)
    r2 = fill_song(song, ["drums"], m2, seed=0, controls={"drums": StemControls({"density": 0.9})})
    assert (r1.roll[0] != r2.roll[0]).any() and (r1.roll[1:] == r2.roll[1:]).all()
    with pytest.raises(StemfillError, match="not being added"):
        fill_song(song, ["drums"], m2, controls={"bass": StemControls({"density": 0.9})})


def _drum_roll(path) -> np.ndarray:
    """The drums of a written file as a roll (P, T) (read_reference: the file as the --like reader sees it)."""
    return read_reference(path)[0]


def _fill_cli(tmp_path, model, song, *args) -> np.ndarray:
    out = tmp_path / "out.mid"
    out.unlink(missing_ok=True)
    r = CliRunner().invoke(app, ["midi", str(song), "--add", "drums", "--model", str(model), "-o", str(out), *args])
    assert r.exit_code == 0, r.output
    return _drum_roll(out)


def _cli_song(tmp_path):
    song = tmp_path / "song.mid"
    write_midi(toy_song(bars=8, stems=("bass", "guitar")), song)
    return song


def test_cli_density_moves_the_part(tmp_path):
    """A model wired to play the rows under the requested density (wired_model): --density high writes more
    drums than low, auto none; so the CLI's --density reaches the fill."""
    m = save_pretrained(wired_model("density"), tmp_path / "m")
    song = _cli_song(tmp_path)
    auto = _fill_cli(tmp_path, m, song)
    low = _fill_cli(tmp_path, m, song, "--density", "low")
    high = _fill_cli(tmp_path, m, song, "--density", "drums=high")
    assert auto.sum() == 0
    assert set(np.flatnonzero(low.any(1))) == {0}  # low: the first row (the kick) only
    assert set(np.flatnonzero(high.any(1))) == set(range(18))  # high: rows 0-17
    assert high.sum() > 10 * low.sum() > 0


def test_cli_fills_put_fills_where_asked(tmp_path):
    """A model wired to play toms where the fill flag is set: --fills phrase writes a fill in every 4th bar
    (bars 4 and 8 of 8, as bar_attributes counts a fill) and nowhere else; --fills none and auto, none."""
    m = save_pretrained(wired_model("fill"), tmp_path / "m")
    song = _cli_song(tmp_path)
    for args, fill_bars in ((["--fills", "phrase"], [3, 7]), (["--fills", "often"], [1, 3, 5, 7]),
                            (["--fills", "none"], []), ([], [])):
        d = _fill_cli(tmp_path, m, song, *args)
        d = d[:, :d.shape[1] // BAR * BAR]
        roll = np.zeros((1, 3) + d.shape, dtype=bool)
        roll[0, 0] = d
        raw, _ = bar_attributes(torch.from_numpy(roll))
        assert np.flatnonzero(raw[("drums", "fill")][0].numpy()).tolist() == fill_bars, args
        assert set(np.flatnonzero(d.any(1))) <= {7, 8, 9} if fill_bars else d.sum() == 0  # toms only


def test_cli_like_takes_the_references_groove(tmp_path):
    """A model wired to play where the requested groove has an onset in at least half the bars: with --like,
    the new drums play the reference's groove exactly (groove distance 0); without it, nothing (distance 2)."""
    m = save_pretrained(wired_model("groove"), tmp_path / "m")
    song = _cli_song(tmp_path)
    ref = tmp_path / "ref.mid"
    write_midi(toy_song(bars=4, stems=("drums", "guitar")), ref)
    want = groove(torch.from_numpy(read_reference(ref)[None]))[0, 0].numpy()
    auto = _fill_cli(tmp_path, m, song)
    for args in (["--like", str(ref)], ["--like", str(ref), "--like-bars", "1-2"]):
        liked = _fill_cli(tmp_path, m, song, *args)
        got = groove(torch.from_numpy(np.stack([liked, 0 * liked, 0 * liked])[None]))[0, 0].numpy()
        assert liked.sum() > 0 and groove_distance(got, want) == 0
    assert auto.sum() == 0 and groove_distance(np.zeros_like(want), want) == 2


def test_cli_control_errors(tmp_path):
    m = save_pretrained(_tiny_with_controls(), tmp_path / "m")
    song = _cli_song(tmp_path)
    ref = tmp_path / "ref.mid"
    write_midi(toy_song(bars=4, stems=("drums", "guitar")), ref)
    run = CliRunner().invoke
    r = run(app, ["midi", str(song), "--add", "bass", "--replace", "--model", str(m), "--like", str(ref),
                  "-o", str(tmp_path / "x.mid")])
    assert r.exit_code == 1 and f"{ref}: has no bass part" in r.output and not (tmp_path / "x.mid").exists()
    r = run(app, ["midi", str(song), "--add", "drums", "--density", "loud", "-o", str(tmp_path / "y.mid")])
    assert r.exit_code == 1 and "--density 'loud'" in r.output and "Traceback" not in r.output
    plain = save_pretrained(build_model(UNetConfig(**TINY), DiffusionConfig()), tmp_path / "plain")
    r = run(app, ["midi", str(song), "--add", "drums", "--model", str(plain), "--density", "low",
                  "-o", str(tmp_path / "z.mid")])
    assert r.exit_code == 1 and "has no controls" in r.output


def test_styles_are_drum_references_and_other_words_are_reported():
    from stemfill.generate.styles import STYLES, check_style, prompt_styles, style_roll

    cfg = ControlConfig(quantiles=fit_quantiles(np.concatenate([_roll(), toy_rolls(30, seed=2)])))
    for name in STYLES:
        ref = reference_controls(style_roll(name), "drums", cfg)
        assert not ref.empty() and ref.groove.sum() > 0
    one_drop = reference_controls(style_roll("reggae"), "drums", cfg).groove
    assert one_drop[0, 0] == 0 and one_drop[0, 24] == 1  # no kick on beat 1, one on beat 3
    assert check_style("Jazz", ["drums"]) == "swing"
    with pytest.raises(StemfillError, match="known styles are rock, reggae"):
        check_style("polka", ["drums"])
    with pytest.raises(StemfillError, match="drums are not being added"):
        check_style("reggae", ["bass"])
    assert prompt_styles(["reggae", "dreamy"], ["drums"]) == ("reggae", ["dreamy"])
    assert prompt_styles(["funky"], ["bass"]) == (None, ["funky"])  # no bass styles: reported as not used


def test_cli_style(tmp_path):
    """--style reggae: the groove-wired model plays the built-in one-drop bar (no kick on beat 1, one on beat 3),
    where auto plays nothing."""
    from stemfill.generate.styles import style_roll

    m = save_pretrained(wired_model("groove"), tmp_path / "m")
    song = _cli_song(tmp_path)
    auto = _fill_cli(tmp_path, m, song)
    d = _fill_cli(tmp_path, m, song, "--style", "reggae")
    want = groove(torch.from_numpy(style_roll("reggae")[None]))[0, 0].numpy()
    got = groove(torch.from_numpy(np.stack([d, 0 * d, 0 * d])[None]))[0, 0].numpy()
    assert auto.sum() == 0 and d.sum() > 0 and groove_distance(got, (want >= 0.5) * want) == 0
    assert not d[0, 0::BAR].any() and d[0, 24::BAR].all()  # one drop: the kick on beat 3, never on beat 1
    r = CliRunner().invoke(app, ["midi", str(song), "--add", "drums", "--style", "polka", "-o", str(tmp_path / "o.mid")])
    assert r.exit_code == 1 and "known styles" in r.output


def test_cli_train_with_controls_from_a_model_without(tmp_path):
    """--controls --init-from: the new control inputs start at zero (same fill as the old model at step 0),
    the quantiles come from the training chunks, and the trained model takes controls."""
    from stemfill.datasets.convert import convert
    from stemfill.pianoroll.train import start_from

    src = tmp_path / "songs"
    src.mkdir()
    for i in range(4):
        write_midi(toy_song(bars=12, stems=("drums", "guitar", "bass")), src / f"s{i}.mid")
    data = tmp_path / "chunks"
    convert([src], data, jobs=1, progress=False, seed=0)
    torch.manual_seed(0)
    old_model = build_model(UNetConfig(**TINY, prior_logit=-1.0), DiffusionConfig(density=(0.1, 0.1, 0.1)),
                            sampling=SamplingConfig(sample_steps=2))
    torch.nn.init.normal_(old_model.net.conv_out.weight, std=0.5)
    old = save_pretrained(old_model, tmp_path / "old")
    cfg = ControlConfig(quantiles=fit_quantiles(toy_rolls(20, seed=1)))
    fresh = start_from(str(old), 0, N_CONTROL_PLANES, cfg, 10.0)
    rolls = toy_rolls(3, seed=4)
    known = np.ones((3, 3), dtype=bool)
    known[:, 0] = False
    high = np.stack([control_planes({"drums": StemControls({"density": 0.9})}, rolls.shape[-1], N_PITCHES)] * 3)
    assert (fill_chunks(load_model(old), rolls, known, seed=2) == fill_chunks(fresh, rolls, known, seed=2,
                                                                              controls=high)).all()
    run = tmp_path / "run"
    r = CliRunner().invoke(app, ["train", "--data", str(data), "-o", str(run), "--init-from", str(old), "--controls",
                                 "--no-context", "--steps", "2", "--batch", "4", "--warmup", "1", "--sample-every", "0",
                                 "--device", "cpu"])
    assert r.exit_code == 0, r.output
    saved = json.loads((run / "model" / "config.json").read_text())
    assert saved["unet"]["control_planes"] == N_CONTROL_PLANES and saved["unet"]["control_scale"] == 10.0
    assert saved["controls"]["quantiles"]["drums.density"][-1] > 0
    trained = load_model(run / "model")
    assert trained.controls is not None and trained.context_planes == 0


# --- assertions that mutation testing showed missing (scripts/mutation.sh, docs/benchmarks.md) -----------


def test_percentiles_map_raw_values_both_ways():
    cfg = ControlConfig(quantiles={"bass.density": [float(i) for i in range(21)],
                                   "drums.toms": [0.0] * 10 + [0.1 * i for i in range(1, 12)]})
    assert cfg.to_unit("bass", "density", 10.0) == pytest.approx(0.5)
    assert cfg.to_unit("bass", "density", 5.0) == pytest.approx(0.25)
    assert cfg.to_unit("bass", "density", 0.0) == pytest.approx(0.0, abs=1e-5)
    assert cfg.to_unit("bass", "density", 99.0) == pytest.approx(1.0)  # past the top: the top
    assert cfg.from_unit("bass", "density", 0.25) == pytest.approx(5.0)
    assert cfg.from_unit("bass", "density", 1.0) == pytest.approx(20.0)
    t = cfg.to_unit("bass", "density", torch.tensor([5.0, 10.0]))
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32 and torch.allclose(t, torch.tensor([0.25, 0.5]))
    # a value tied with many quantiles (bars without toms) takes the middle of their range: 0 .. 9/20
    assert cfg.to_unit("drums", "toms", 0.0) == pytest.approx(0.225, abs=1e-4)
    assert cfg.to_unit("drums", "fill", 0.7) == 0.7 and cfg.from_unit("drums", "fill", 0.7) == 0.7  # shares pass
    with pytest.raises(ValueError, match="no quantiles for guitar.density"):
        cfg.to_unit("guitar", "density", 3.0)


def test_groove_counts_only_the_bars_a_stem_plays():
    x = np.zeros((1, 3, N_PITCHES, L), dtype=bool)
    x[0, 0, 0, [0, 2 * BAR]] = True  # a kick on beat 1 of bars 1 and 3 only
    x[0, 0, 4, 2 * BAR + 6] = True
    x[0, 1, 10, BAR + 12:BAR + 20] = True  # the bass plays once, in bar 2
    g = groove(torch.from_numpy(x))[0]
    assert g[0, 0, 0] == 1.0 and g[0, 4, 6] == 0.5  # share of the 2 bars the drums play in, not of 4
    assert (g[1, :, 12] == 1.0).all() and g[1].sum() == N_PITCHES  # the bass's one start, in every row


def test_groove_distance_edge_cases():
    a = np.zeros((N_PITCHES, BAR))
    b = a.copy()
    b[0, 0] = 1
    assert groove_distance(a, a) == 0.0 and groove_distance(a, b) == 2.0 and groove_distance(b, a) == 2.0
    c = a.copy()
    c[0, 0] = c[1, 6] = 3  # normalised: half of it on b's cell
    assert groove_distance(b, c) == pytest.approx(1.0) and groove_distance(c, 2 * c) == 0.0


def test_parse_controls_per_stem_lists_and_like_bars():
    req = parse_controls(["drums", "bass"], {"density": ["drums=high, bass=3"], "complexity": ["low"]},
                         like="ref.mid", like_bars="2-3")
    assert req.levels == {"density": {"drums": "high", "bass": 3.0}, "complexity": {"drums": "low", "bass": "low"}}
    assert req.like == "ref.mid" and req.like_bars == "2-3"
    assert parse_controls(["drums"], {"density": ["high", "auto"]}).levels == {"density": {}}  # auto: given back
    with pytest.raises(StemfillError, match="--register applies to bass and guitar"):
        parse_controls(["drums"], {"register": ["high"]})


def test_resolve_controls_fills_sections_and_numbers():
    cfg = ControlConfig(quantiles={"bass.density": [float(i) for i in range(21)],
                                   "bass.register": [float(i) for i in range(21)]})
    out = resolve_controls(parse_controls(["drums", "bass"], {"register": ["bass=34"]}, fills="sections"),
                           ["drums", "bass"], cfg)
    assert out["drums"].fill_sections and out["drums"].fill_every is None
    assert out["bass"].values == {"register": pytest.approx(0.5)}  # MIDI 34 = row 10 of 0..20
    out = resolve_controls(parse_controls(["drums"], {}, fills="often"), ["drums"], cfg)
    assert out["drums"].fill_every == 2 and not out["drums"].fill_sections


def test_reference_controls_fill_rate_and_short_references():
    cfg = ControlConfig(quantiles=fit_quantiles(np.concatenate([_roll(), toy_rolls(30, seed=2)])))
    roll = _roll()[0]  # bar 2 of 4 ends in a fill: a quarter of the bars
    assert reference_controls(roll, "drums", cfg).fill_every == 4
    assert reference_controls(np.tile(roll[..., :BAR], 4), "drums", cfg).fill_every == 0  # no fills
    assert reference_controls(roll[..., :BAR - 1], "drums", cfg).empty()  # shorter than a bar
    ref = reference_controls(roll, "bass", cfg)
    assert ref.fill_every is None and set(ref.values) == {"density", "syncopation", "register"}


def test_training_planes_give_what_the_config_says():
    x0 = torch.from_numpy(_roll())
    target = torch.tensor([[True, True, False]])
    cfg = ControlConfig(quantiles=fit_quantiles(toy_rolls(30, seed=2)), given_prob=1.0, groove_prob=0.0)
    p = training_planes(x0, target, cfg, torch.Generator().manual_seed(0))
    g = slot_index("drums", "groove")
    assert not p[0, g].any() and not p[0, g + 1].any()  # grooves never given
    d = slot_index("drums", "density")
    assert (p[0, d + 1] == 1).all() and p[0, d].max() > 0  # every attribute given, every bar
    assert not p[0, slot_index("guitar", "density") + 1].any()  # not a target
    cfg = ControlConfig(quantiles=cfg.quantiles, given_prob=0.0, groove_prob=1.0)
    p = training_planes(x0, target, cfg, torch.Generator().manual_seed(0))
    assert not p[0, d + 1].any() and (p[0, g + 1] == 1).all()
    assert torch.equal(p[0, g, :, :BAR], groove(x0)[0, 0])  # the drums' own groove, bar after bar


def test_read_reference_cuts_whole_bars(tmp_path):
    ref = tmp_path / "ref.mid"
    write_midi(toy_song(bars=4, stems=("drums", "guitar")), ref)
    whole = read_reference(ref)
    two = read_reference(ref, "2-3")
    assert two.shape[-1] == 2 * BAR and np.array_equal(two, whole[..., BAR:3 * BAR])
    assert read_reference(ref, "2").shape[-1] == BAR


def test_control_planes_by_song_bar():
    T = 4 * BAR
    dens = slot_index("drums", "density")
    fill = slot_index("drums", "polyphony")  # the drums' fill flag
    p = control_planes({"drums": StemControls({"density": 0.9}, fill_every=4)}, T, N_PITCHES, start=2 * BAR)
    assert p.shape == (N_CONTROL_PLANES, N_PITCHES, T) and p.dtype == np.float32
    assert (p[dens] == np.float32(0.9)).all() and (p[dens + 1] == 1).all()
    want = np.zeros(T, np.float32)
    want[BAR:2 * BAR] = 1  # the window starts at song bar 2: its second bar is song bar 3, a 4th bar
    assert (p[fill] == want).all() and (p[fill + 1] == 1).all()
    p = control_planes({"drums": StemControls(fill_bars=(1, 4))}, T, N_PITCHES, start=BAR)
    want = np.zeros(T, np.float32)
    want[:BAR] = want[3 * BAR:] = 1  # song bars 1 and 4: given, and a fill, there only
    assert (p[fill] == want).all() and (p[fill + 1] == want).all()
    others = np.ones(N_CONTROL_PLANES, bool)
    others[[fill, fill + 1]] = False
    assert not p[others].any()


def test_fit_quantiles_of_known_densities():
    rolls = np.zeros((40, 3, N_PITCHES, L), dtype=bool)
    for k in range(40):  # chunk k: k + 1 kicks in every bar, and no bass or guitar
        for b in range(4):
            rolls[k, 0, 0, b * BAR:b * BAR + k + 1] = True
    q = fit_quantiles(rolls, max_chunks=40)
    want = np.quantile(np.repeat(np.arange(1, 41), 4), np.linspace(0, 1, 21))
    assert q["drums.density"] == [round(float(x), 4) for x in want] and len(q["drums.density"]) == 21
    assert q["bass.density"] == [0.0] * 21  # no bar plays the bass
    sub = fit_quantiles(rolls, max_chunks=10, seed=1)  # a seeded pick of 10 distinct chunks
    assert sub == fit_quantiles(rolls, max_chunks=10, seed=1) and len(set(sub["drums.density"])) > 5
