"""The evaluation harness, the baseline systems and `stemfill eval`, on tiny synthetic chunks built in code."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from stemfill.cli import app
from stemfill.datasets.chunks import Chunks, save_shard
from stemfill.errors import StemfillError
from stemfill.evaluation import harness as H
from stemfill.evaluation.baselines import RetrievalSystem, get_system
from stemfill.evaluation.metrics import AGREEMENT

P, L = 48, 96  # 2 bars of 4/4 at 12 steps per beat
SYSTEMS = ("real", "random", "rule", "retrieval")


def synth(n: int, seed: int) -> np.ndarray:
    """Rock-ish chunks: groove drums, a root bass on quarters, a triad on half notes; every 4th chunk lacks guitar."""
    rng = np.random.default_rng(seed)
    rolls = np.zeros((n, 3, P, L), dtype=bool)
    for i in range(n):
        root = int(rng.integers(0, 12))
        rolls[i, 0, 0, ::24] = True
        rolls[i, 0, 1, 12::24] = True
        rolls[i, 0, 4, ::6] = True
        for t in range(0, L, 12):
            rolls[i, 1, root + 4, t:t + 10] = True
        if i % 4:
            for t in range(0, L, 24):
                rolls[i, 2, [root + 4, root + 8, root + 11], t:t + 20] = True
    return rolls


def chunks_of(rolls: np.ndarray) -> Chunks:
    n = len(rolls)
    return Chunks(rolls, np.arange(n) // 2, np.zeros(n, dtype=np.int64), [{} for _ in range((n + 1) // 2)],
                  {"steps_per_beat": 12, "chunk_len": L})


@pytest.fixture(scope="module")
def train() -> Chunks:
    return chunks_of(synth(16, 1))


@pytest.fixture(scope="module")
def test_chunks() -> Chunks:
    return chunks_of(synth(12, 2))


KNOWN_PATTERNS = [np.array(k) for k in itertools.product([True, False], repeat=3) if not all(k) and any(k)]


@pytest.mark.parametrize("name", SYSTEMS)
def test_systems_fill_unknown_and_keep_known(name, train, test_chunks):
    system = get_system(name, train_chunks=train)
    truth = test_chunks.rolls[:6]
    for known1 in KNOWN_PATTERNS:
        known = np.tile(known1, (len(truth), 1))
        masked = np.where(known[:, :, None, None], truth, False)
        rng = np.random.default_rng(0)
        kw = {"truth": truth} if name == "real" else {}
        out = system.fill(masked, known, rng, **kw)
        assert out.shape == truth.shape and out.dtype == bool
        assert np.array_equal(out[:, known1], truth[:, known1]), f"{name} changed a known channel"
        if name == "rule":  # the rule plays every missing stem
            assert out[:, ~known1].any(axis=(2, 3)).all()
        if name == "real":  # the oracle: the truth itself
            assert np.array_equal(out, truth)
        again = system.fill(masked, known, np.random.default_rng(0), **kw)
        assert np.array_equal(out, again), f"{name} is not reproducible under a seeded rng"


def test_rule_groove_and_roots():
    rolls = np.zeros((1, 3, P, L), dtype=bool)
    rolls[0, 2, [2, 6, 9], 0:L] = True  # guitar D major (D2 F#2 A2) throughout
    known = np.array([[False, False, True]])
    out = get_system("rule").fill(rolls, known, np.random.default_rng(0))
    drums = out[0, 0]
    assert np.array_equal(np.flatnonzero(drums[0]), [0, 24, 48, 72])  # kick 1 and 3
    assert np.array_equal(np.flatnonzero(drums[1]), [12, 36, 60, 84])  # snare 2 and 4
    assert np.array_equal(np.flatnonzero(drums[4]), np.arange(0, L, 6))  # closed hat 8ths
    bass_rows = np.flatnonzero(out[0, 1].any(axis=1))
    assert len(bass_rows) == 1 and (24 + bass_rows[0]) % 12 == 2 and 28 <= 24 + bass_rows[0] <= 52  # D in E1-E3
    # guitar from a bass on A: power chord unless a third shows in the context
    rolls = np.zeros((1, 3, P, L), dtype=bool)
    rolls[0, 1, 9, :] = True  # A1
    rolls[0, 1, 12, 40:44] = True  # a C (minor third of A) in bar 1
    out = get_system("rule").fill(rolls, np.array([[True, True, False]]), np.random.default_rng(0))
    first_half_pcs = {r % 12 for r in np.flatnonzero(out[0, 2, :, :24].any(axis=1))}
    assert first_half_pcs == {9, 0, 4}  # A minor from the chunk's C


def test_retrieval_returns_the_nearest_training_stem(train):
    system = RetrievalSystem(train)
    q = train.rolls[5:6].copy()
    q[:, 1] = False
    out = system.fill(q, np.array([[True, False, True]]), np.random.default_rng(0))
    # train chunks 4 and 5 may share guitar pitches; the lent bass must be that of a chunk whose guitar matches
    donors = [i for i in range(len(train)) if np.array_equal(train.rolls[i, 2], q[0, 2])]
    assert any(np.array_equal(out[0, 1], train.rolls[i, 1]) for i in donors)


def test_retrieval_picks_the_first_of_equal_neighbours_whatever_the_batch(train):
    """Exact cosines: among training chunks with the same context the first one lends its stem, for any
    batch size (float32 rounding of normalised features used to break such ties by summation order)."""
    rolls = train.rolls.copy()
    rolls[9] = rolls[3]
    rolls[9, 1] = np.roll(rolls[3, 1], 5, axis=0)  # same drums and guitar as chunk 3, another bass
    twins = chunks_of(rolls)
    q = rolls[[3, 9, 3, 0]].copy()
    q[:, 1] = False
    known = np.tile([True, False, True], (len(q), 1))
    outs = [RetrievalSystem(twins, batch=b).fill(q, known, np.random.default_rng(0)) for b in (1, 3, 256)]
    for out in outs:
        assert np.array_equal(out[0, 1], rolls[3, 1]) and np.array_equal(out[1, 1], rolls[3, 1])
        assert np.array_equal(out, outs[0])


def test_random_density_matches_training(train):
    system = get_system("random", train_chunks=train)
    rolls = np.zeros((64, 3, P, L), dtype=bool)
    out = system.fill(rolls, np.tile([True, False, True], (64, 1)), np.random.default_rng(0))
    want = train.rolls[:, 1].mean()
    assert out[:, 1].mean() == pytest.approx(want, rel=0.1)


def test_harness_real_is_perfect_and_keys(test_chunks, train):
    report, examples = H.evaluate_many({n: get_system(n, train_chunks=train) for n in SYSTEMS}, test_chunks,
                                       n_examples=1)
    res = report["results"]
    assert set(res) == set(SYSTEMS)
    keys = {"drums", "bass", "guitar", "drums+bass:drums", "drums+bass:bass", "drums+guitar:drums",
            "drums+guitar:guitar", "bass+guitar:bass", "bass+guitar:guitar"}
    assert set(res["real"]) == keys
    real = res["real"]
    for key, r in real.items():
        assert r["fidelity/known_exact"] == 1.0
        for m in AGREEMENT:
            if m in r:
                assert r[m] == pytest.approx(1.0), (key, m)
        assert r["dist/FD"] == pytest.approx(0.0, abs=1e-6)
        assert r["dist/OA_pitch"] == pytest.approx(1.0, abs=1e-6)
        assert all(v == pytest.approx(0.0) for k, v in r.items() if k.endswith("/absdiff"))
    assert res["real"]["guitar"]["n"] == 9 and res["real"]["bass"]["n"] == 12  # guitar in 9 of 12 chunks
    assert res["real"]["bass+guitar:bass"]["n"] == 9
    assert res["random"]["bass"]["agree/frame_F1"] < 0.5
    for r in res.values():
        assert r["bass"]["fidelity/known_exact"] == 1.0
    assert examples and {"system", "case", "real", "generated"} <= set(examples[0])
    md = H.markdown(report)
    assert "### bass+guitar:guitar" in md and "| real |" in md
    # a two-stem case scores two stems from one fill: its time counts once in the system's total
    rnd = res["random"]
    assert rnd["bass+guitar:bass"]["case"] == rnd["bass+guitar:guitar"]["case"] == "bass+guitar"
    once = {r["case"]: r["fill_seconds"] for r in rnd.values()}
    assert H.fill_seconds_total(rnd) == pytest.approx(sum(once.values()))
    fake = {"drums": {"case": "drums", "fill_seconds": 1.0}, "drums+bass:drums": {"case": "drums+bass",
            "fill_seconds": 5.0}, "drums+bass:bass": {"case": "drums+bass", "fill_seconds": 5.0}}
    assert H.fill_seconds_total(fake) == 6.0  # not 11


def test_the_triple_case_takes_chunks_with_all_stems_and_other_tracks(train):
    """``--triples``: all three stems missing, on the chunks whose song has other tracks to hear; every system
    fills it (retrieval, with nothing known to compare, draws a candidate) and keeps nothing else."""
    rolls = synth(12, 2)
    ctx = np.zeros((12, 2, P, L), dtype=bool)
    ctx[::2, 0, 24, :12] = True  # every other chunk has a piano chord
    chunks = chunks_of(rolls)
    chunks.context = ctx
    cases = H.make_cases(chunks.present, ("triple",), ctx.reshape(12, -1).any(1))
    assert [c.name for c in cases] == ["drums+bass+guitar"] and cases[0].missing == (0, 1, 2)
    assert set(cases[0].idx) == {i for i in range(0, 12, 2) if i % 4}  # other tracks and a guitar
    assert H.make_cases(chunks.present, ("triple",))[0].idx.size == 0  # nothing heard: no chunk
    report, _ = H.evaluate_many({n: get_system(n, train_chunks=train) for n in SYSTEMS}, chunks,
                                kinds=("triple",))
    res = report["results"]
    for n in SYSTEMS:
        assert set(res[n]) == {"drums+bass+guitar:drums", "drums+bass+guitar:bass", "drums+bass+guitar:guitar"}
        assert res[n]["drums+bass+guitar:bass"]["n"] == 3
    assert res["real"]["drums+bass+guitar:guitar"]["agree/onset_F1"] == pytest.approx(1.0)
    assert res["retrieval"]["drums+bass+guitar:drums"]["agree/onset_F1"] > 0.5  # a real training groove
    with pytest.raises(StemfillError, match="unknown case kind"):
        H.make_cases(chunks.present, ("quad",))


def test_harness_seeded_limit_and_reproducible(test_chunks, train):
    a = H.evaluate(get_system("random", train_chunks=train), test_chunks, seed=3, limit=5)
    b = H.evaluate(get_system("random", train_chunks=train), test_chunks, seed=3, limit=5)
    for r in (*a.values(), *b.values()):
        r.pop("fill_seconds")  # wall time, the one thing allowed to differ
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert a["bass"]["n"] == 5
    c = H.evaluate(get_system("random", train_chunks=train), test_chunks, seed=4, limit=5)
    assert c["bass"]["agree/frame_F1"] != a["bass"]["agree/frame_F1"]


class _Meddler:
    """A broken system: fills the stem but also flips a cell of a known channel."""

    name = "meddler"

    def fill(self, rolls, known, rng):
        out = rolls.copy()
        out[:, 0, 5, 5] ^= True
        return out


class _WrongShape:
    name = "wrong"

    def fill(self, rolls, known, rng):
        return rolls[..., :-1]


def test_harness_reports_broken_systems(test_chunks):
    res = H.evaluate(_Meddler(), test_chunks, kinds=("single",))
    assert res["bass"]["fidelity/known_exact"] == 0.0
    assert res["drums"]["fidelity/known_exact"] == 1.0  # drums is the filled channel there
    with pytest.raises(StemfillError, match="returned shape"):
        H.evaluate(_WrongShape(), test_chunks)


# --------------------------------------------------------------------------- on disk and the CLI


def write_folder(root: Path, splits: dict[str, np.ndarray]) -> Path:
    songs = []
    for split, rolls in splits.items():
        for j in range(0, len(rolls), 4):
            sid = f"{split}{j}"
            shard = f"shards/{sid}.npz"
            save_shard(root / shard, rolls[j:j + 4], np.arange(len(rolls[j:j + 4])) * L)
            songs.append({"id": sid, "path": f"{sid}.mid", "hash": sid, "split": split, "stems": ["drums", "bass"],
                          "tempo": 120.0, "bars": 2, "n_steps": L, "n_chunks": len(rolls[j:j + 4]), "shard": shard})
    config = {"steps_per_beat": 12, "chunk_len": L, "n_pitches": P}
    (root / "manifest.json").write_text(json.dumps({"config": config, "songs": songs, "skipped": []}))
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_folder(tmp_path_factory.mktemp("chunks"), {"train": synth(8, 1), "test": synth(8, 2)})


def test_cli_eval_writes_json_and_plots(folder, tmp_path):
    out, plots = tmp_path / "r.json", tmp_path / "plots"
    r = CliRunner().invoke(app, ["eval", "--data", str(folder), "--system", "real", "--system", "rule",
                                 "--limit", "6", "--no-pairs", "--json", str(out), "--plot", str(plots)])
    assert r.exit_code == 0, r.output
    rep = json.loads(out.read_text())
    assert set(rep["results"]) == {"real", "rule"} and set(rep["results"]["rule"]) == {"drums", "bass", "guitar"}
    assert rep["config"]["n_selected"] == 6 and rep["config"]["split"] == "test"
    assert rep["results"]["real"]["bass"]["agree/onset_F1"] == 1.0
    assert len(list(plots.glob("rule-*.png"))) == 3  # one example per case; none for 'real' (it is the truth)
    assert not list(plots.glob("real-*.png"))
    assert "fill bass" in r.output


@pytest.mark.parametrize("args, message", [
    (["--split", "valid"], "has no chunks"),
    (["--system", "model", "--model", "nope.pt"], "no such model file"),
    (["--system", "model"], "models/default: model and chunks differ"),  # the embedded default, as `midi` uses
    (["--system", "oracle"], "unknown system"),
    (["--realism", "--classifier", "forest"], "--classifier 'forest': expected one of logistic, boosting"),
])
def test_cli_eval_errors(folder, args, message):
    r = CliRunner().invoke(app, ["eval", "--data", str(folder), *args])
    assert r.exit_code == 1
    assert message in r.output and len(r.output.strip().splitlines()) == 1


def test_cli_eval_no_manifest(tmp_path):
    r = CliRunner().invoke(app, ["eval", "--data", str(tmp_path)])
    assert r.exit_code == 1 and "no manifest.json" in r.output


def _save_tiny_model(where: Path, window: int) -> Path:
    import torch

    from stemfill.pianoroll.diffusion import DiffusionConfig, SamplingConfig
    from stemfill.pianoroll.model import build_model, save_pretrained
    from stemfill.pianoroll.unet import UNetConfig

    torch.manual_seed(0)
    net = UNetConfig(channels=(4, 8), down=((2, 2),), layers=(0, 1), norm_groups=4, time_dim=16, attention=False,
                     prior_logit=0.5)
    return save_pretrained(build_model(net, DiffusionConfig(window=window, density=(0.3, 0.3, 0.3)),
                                       sampling=SamplingConfig(sample_steps=1)), where)


def test_cli_eval_model_and_shape_check(folder, tmp_path):
    """A real (tiny, untrained) model through the CLI: known stems come back exactly, the fill has notes;
    a model trained on another window length is refused in one line before any filling."""
    model = _save_tiny_model(tmp_path / "m", window=L)
    out = tmp_path / "m.json"
    r = CliRunner().invoke(app, ["eval", "--data", str(folder), "--system", "model", "--model", str(model),
                                 "--limit", "3", "--json", str(out)])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())["results"]["model"]
    assert res["bass"]["fidelity/known_exact"] == 1.0 and res["bass"]["stat/density/gen"] > 0
    other = _save_tiny_model(tmp_path / "m2", window=2 * L)
    r = CliRunner().invoke(app, ["eval", "--data", str(folder), "--system", "model", "--model", str(other)])
    assert r.exit_code == 1 and "model and chunks differ" in r.output and f"length {2 * L} (model) vs {L}" in r.output


# --------------------------------------------------------------------------- the paper's per-stem models


def _save_paper_model(where: Path, stem: str, seed: int) -> Path:
    import torch

    from stemfill.pianoroll.diffusion import DiffusionConfig, SamplingConfig
    from stemfill.pianoroll.model import build_model, save_pretrained
    from stemfill.pianoroll.unet import UNetConfig

    torch.manual_seed(seed)
    # untrained, very small nets biased towards notes (prior logit > 0), so a filled channel is visibly non-empty
    net = UNetConfig(channels=(4, 8), down=((2, 2),), layers=(0, 1), norm_groups=4, time_dim=16, attention=False,
                     prior_logit=0.5)
    m = build_model(net, DiffusionConfig(objective="atassi", remove_only=stem, density=(0.3, 0.3, 0.3), window=L),
                    sampling=SamplingConfig(sample_steps=1))
    return save_pretrained(m, where)


@pytest.fixture(scope="module")
def paper_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("paper")
    for i, stem in enumerate(("drums", "bass", "guitar")):
        _save_paper_model(root / stem, stem, i)
    return root


def _spy(system, calls):
    """Record (stem channel, known mask) of every model call of a PaperSystem."""
    for c, m in system.models.items():
        def wrapped(model, rolls, known, _c=c, _f=m._fill, **kw):
            calls.append((_c, np.array(known)))
            return _f(model, rolls, known, **kw)
        m._fill = wrapped


def test_paper_system_fills_only_unknown_and_chains(paper_dir, test_chunks):
    from stemfill.evaluation.baselines import PaperSystem

    system = get_system("paper", model_path=paper_dir)
    assert isinstance(system, PaperSystem) and sorted(system.models) == [0, 1, 2]
    system.check(test_chunks)
    rolls = test_chunks.rolls[:2]
    for k in ([False, True, True], [True, False, True], [True, True, False], [False, True, False]):
        known = np.tile(np.array(k), (len(rolls), 1))
        masked = rolls & known[:, :, None, None]
        calls = []
        _spy(system, calls)
        out = system.fill(masked, known, np.random.default_rng(0))
        assert out.dtype == bool and out.shape == rolls.shape
        assert np.array_equal(out[known], rolls[known])  # known channels bit-exact
        assert out[~known].any(axis=(1, 2)).all()  # every unknown channel got notes
        missing = [c for c in range(3) if not k[c]]
        assert [c for c, _ in calls] == missing  # one call per missing stem, drums -> bass -> guitar
        if len(missing) == 2:  # the second model sees the first one's output as known
            assert not calls[0][1][:, 2].any() and calls[1][1][:, 0].all()
            again = system.fill(masked, known, np.random.default_rng(0))
            assert np.array_equal(out, again)  # seeded


def test_paper_system_mixed_rows_and_comma_list(paper_dir, test_chunks, tmp_path):
    # folder names do not matter: the stem comes from config remove_only
    import shutil

    for src, dst in (("guitar", "a"), ("drums", "b"), ("bass", "c")):
        shutil.copytree(paper_dir / src, tmp_path / dst)
    system = get_system("paper", model_path=",".join(str(tmp_path / d) for d in "abc"))
    assert {c: str(m.path) for c, m in system.models.items()} == {
        0: str(tmp_path / "b"), 1: str(tmp_path / "c"), 2: str(tmp_path / "a")}
    rolls = test_chunks.rolls[:3]
    known = np.array([[True, False, True], [False, True, True], [True, True, True]])  # rows differ in one batch
    out = system.fill(rolls & known[:, :, None, None], known, np.random.default_rng(1))
    assert np.array_equal(out[known], rolls[known])
    assert out[0, 1].any() and out[1, 0].any()
    assert np.array_equal(out[2], rolls[2])  # nothing missing: untouched


def test_paper_system_errors(paper_dir, tmp_path):
    (tmp_path / "two").mkdir()
    for s in ("drums", "bass"):
        (tmp_path / "two" / s).symlink_to(paper_dir / s)
    with pytest.raises(StemfillError, match="no model for guitar"):
        get_system("paper", model_path=tmp_path / "two")
    with pytest.raises(StemfillError, match="two models fill drums"):
        get_system("paper", model_path=",".join(str(paper_dir / s) for s in ("drums", "bass", "drums")))
    _save_paper_model(tmp_path / "plain", "", 0)
    with pytest.raises(StemfillError, match="remove_only is empty"):
        get_system("paper", model_path=",".join(str(p) for p in (paper_dir / "drums", paper_dir / "bass",
                                                                   tmp_path / "plain")))
    with pytest.raises(StemfillError, match="no drums/, bass/ or guitar/"):
        get_system("paper", model_path=tmp_path / "plain")
    with pytest.raises(StemfillError, match="needs --paper-models"):
        get_system("paper")
    with pytest.raises(StemfillError) as info:
        get_system("paper", model_path=tmp_path / "two")
    assert len(str(info.value).splitlines()) == 1


def test_cli_eval_paper(folder, paper_dir, tmp_path):
    out = tmp_path / "p.json"
    r = CliRunner().invoke(app, ["eval", "--data", str(folder), "-s", "paper", "--paper-models", str(paper_dir),
                                 "--limit", "2", "--no-pairs", "--json", str(out)])
    assert r.exit_code == 0, r.output
    rep = json.loads(out.read_text())
    assert rep["config"]["paper_models"] == str(paper_dir)
    res = rep["results"]["paper"]
    assert all(v["fidelity/known_exact"] == 1.0 for v in res.values() if v["n"])
    r = CliRunner().invoke(app, ["eval", "--data", str(folder), "-s", "paper"])
    assert r.exit_code == 1 and "needs --paper-models" in r.output and len(r.output.strip().splitlines()) == 1
