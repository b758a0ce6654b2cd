"""The bass and guitar keep their groove (stemfill/generate/groove.py) and the phrase measure of it, on rolls built
here."""

from __future__ import annotations

import numpy as np

from stemfill.evaluation.phrase import rhythm_repeats
from stemfill.generate.groove import COUNT_SLACK, bar_rhythms, choose_rhythms, groove_line, onset_logits
from stemfill.generate.plan import grid_bars
from stemfill.pianoroll.fast import decode_line

BAR = 48
P = 48


def _rhythm(*steps: int) -> np.ndarray:
    r = np.zeros(BAR, dtype=bool)
    r[list(steps)] = True
    return r


def _line_p(rhythms: list[np.ndarray], pitch: int = 16, weak: dict | None = None, floor: float = 0.02) -> np.ndarray:
    """P (P, T) of a line that starts a note at each rhythm's steps (P 0.9 on ``pitch``, dipping to 0.05 for the
    step before each start so the rise marks it); ``weak`` {bar: (step, P)}: one more note start there, an octave
    up at that P (the held note's P does not dip for it)."""
    T = BAR * len(rhythms)
    p = np.full((P, T), floor, dtype=np.float32)
    for b, r in enumerate(rhythms):
        s = np.flatnonzero(r)
        ends = list(s[1:]) + [BAR]
        for a, e in zip(s, ends):
            p[pitch, b * BAR + a:b * BAR + e - 1] = 0.9
    for b, (step, q) in (weak or {}).items():
        t = b * BAR + step
        p[pitch + 12, t:t + 3] = q
    return p


def test_rhythm_repeats_counts_bars_with_the_same_note_starts():
    x = np.zeros((P, 4 * BAR), dtype=bool)
    for b, steps in enumerate([(0, 24), (0, 24), (0, 12, 24), ()]):
        for s in steps:
            x[10 + b, b * BAR + s:b * BAR + s + 6] = True  # the pitch changes: only the times count
    assert rhythm_repeats(x, "bass") == (1, 2)  # bars 1-2 the same; 2-3 differ; bar 4 plays nothing


def test_bars_take_the_rhythm_the_song_already_plays_unless_the_network_says_otherwise():
    """Bar 3 adds one weak note start to the groove of the others: it takes the groove. Bar 5 plays another
    rhythm strongly: it keeps it. With no change cost every bar keeps its own."""
    a, a_plus, b = _rhythm(0, 18, 24), _rhythm(0, 18, 24, 36), _rhythm(0, 6, 12, 24, 30, 36)
    own = [a, a, a_plus, a, b, b]
    bars = grid_bars(6 * BAR)
    logit = np.full(6 * BAR, -4.0)
    for k, r in enumerate(own):
        logit[k * BAR:(k + 1) * BAR][r] = 3.0
    logit[2 * BAR + 36] = -0.5  # bar 3's extra start: the weakest of its starts
    none = np.zeros(6, dtype=bool)
    phrase = np.zeros(6, dtype=bool)
    got = choose_rhythms(own, logit, bars, 1.0, phrase, none)
    assert [np.array_equal(g, e) for g, e in zip(got, [a, a, a, a, b, b])] == [True] * 6
    kept = choose_rhythms(own, logit, bars, 0.0, phrase, none)
    assert all(np.array_equal(g, o) for g, o in zip(kept, own))


def test_a_section_start_changes_the_groove_for_free_and_a_far_denser_rhythm_is_never_taken():
    a, b = _rhythm(0, 24), _rhythm(0, 12, 24, 36)
    dense = _rhythm(*range(0, 48, 6))  # 8 starts: more than COUNT_SLACK away from a's 2
    assert dense.sum() - a.sum() > COUNT_SLACK
    own = [a, a, b, b, dense]
    bars = grid_bars(5 * BAR)
    logit = np.full(5 * BAR, -4.0)
    for k, r in enumerate(own):
        logit[k * BAR:(k + 1) * BAR][r] = 0.2  # weakly supported: the change cost decides
    section = np.array([False, False, True, False, False])
    got = choose_rhythms(own, logit, bars, 50.0, np.zeros(5, dtype=bool), section)
    assert np.array_equal(got[1], a) and np.array_equal(got[2], b) and np.array_equal(got[3], b)
    sparse = choose_rhythms([a, a, a], np.full(3 * BAR, 0.0), grid_bars(3 * BAR), 50.0,
                            np.zeros(3, dtype=bool), np.zeros(3, dtype=bool))
    assert all(np.array_equal(g, a) for g in sparse)
    assert not any(np.array_equal(g, dense) for g in got[:4])


def test_groove_line_plays_the_groove_with_the_networks_pitches_and_keeps_known_notes():
    """A line decoded from P whose bar 3 has one extra weak note start: the groove line plays bar 1's rhythm in
    bar 3, its notes on the pitch P holds; bar 4, known, comes back exactly; unfilled bars are untouched."""
    groove = _rhythm(0, 12, 24)
    p = _line_p([groove] * 4, weak={2: (36, 0.45)})
    x = decode_line(p[None], np.zeros((1, p.shape[1]), bool), 1.25, 0.3, 2)[0] > 0
    own = bar_rhythms(x, grid_bars(4 * BAR), np.ones(4 * BAR, dtype=bool))
    assert np.array_equal(own[0], groove) and own[2].sum() == 4, "the line decoder plays the weak start"
    known = np.zeros_like(x)
    known[20, 3 * BAR:3 * BAR + 40] = True  # bar 4 is known: one long note
    open_ = np.ones(4 * BAR, dtype=bool)
    open_[3 * BAR:] = False
    x[:, 3 * BAR:] = known[:, 3 * BAR:]
    out = groove_line(x, p, open_, grid_bars(4 * BAR), 1.0, known=known)
    got = bar_rhythms(out, grid_bars(4 * BAR), np.ones(4 * BAR, dtype=bool))
    assert np.array_equal(got[2], groove)
    assert out[16, 2 * BAR:3 * BAR].sum() >= 30 and not out[28, 2 * BAR:3 * BAR].any()
    assert (out[:, 3 * BAR:] == known[:, 3 * BAR:]).all()
    assert (out[:, :2 * BAR] == x[:, :2 * BAR]).all()
    assert (groove_line(x, p, open_, grid_bars(4 * BAR), 0.0, known=known) == x).all()


def test_onset_logits_mark_where_p_rises():
    p = np.full((4, 20), 0.01, dtype=np.float32)
    p[1, 5:12] = 0.9
    lg = onset_logits(p)
    assert lg.argmax() in (4, 5, 6) and lg[5] > 2 and lg[15] < -4


def test_decode_line_plays_the_given_note_starts():
    p = _line_p([_rhythm(0, 24)])
    starts = _rhythm(0, 12, 24, 36)
    y = decode_line(p[None], np.zeros((1, BAR), bool), 1.25, 0.3, 2, onsets=starts[None])[0] > 0
    on = y.copy()
    on[:, 1:] &= ~y[:, :-1]
    assert np.array_equal(on.any(axis=0), starts)


def test_the_shipped_model_keeps_the_new_bass_groove_and_the_known_bars():
    """The shipped model fills the bass of a 16-bar song (drums, guitar chords, a keyboard; bass bars 9-10
    known): with its ``groove`` more bars repeat the rhythm of the bar before than with it off, and the
    known bars come back exactly."""
    from dataclasses import replace

    from stemfill.pianoroll.fill import fill_roll
    from stemfill.pianoroll.model import default_model_path, load_model

    model = load_model(default_model_path())
    assert model.sampling.groove[1] > 0
    T, n = 16 * BAR, 16
    roll = np.zeros((3, P, T), dtype=bool)
    for b in range(n):
        s = b * BAR
        roll[0, [0, 4], s:s + BAR:12] = True  # kick and hi-hat on the beats
        roll[0, 1, s + 12:s + BAR:24] = True  # snare on 2 and 4
        chord = [[22, 26, 29], [19, 23, 26], [24, 28, 31], [17, 21, 24]][(b // 2) % 4]
        for k in range(4):
            roll[2, chord, s + 12 * k:s + 12 * k + 10] = True
    roll[1, 10, 8 * BAR:8 * BAR + 40] = True  # the known bass: a long note in bar 9, silence in bar 10
    known = np.ones((3, T), dtype=bool)
    known[1] = False
    known[1, 8 * BAR:10 * BAR] = True
    got = fill_roll(model, roll, known, seed=0)
    model.sampling = replace(model.sampling, groove=(0.0, 0.0, 0.0))
    plain = fill_roll(model, roll, known, seed=0)
    assert (got[1, :, 8 * BAR:10 * BAR] == roll[1, :, 8 * BAR:10 * BAR]).all()
    assert (got[[0, 2]] == roll[[0, 2]]).all()
    kept, pairs = rhythm_repeats(got[1], "bass")
    before, _ = rhythm_repeats(plain[1], "bass")
    assert pairs >= 10 and kept > before, (kept, before, pairs)


def test_groove_chords_strike_the_chord_the_guitar_holds_on_the_grooves_starts():
    """A guitar of quarter-note chords whose bar 3 adds a weak eighth: with the groove, bar 3 plays quarters
    again, each strike the chord the guitar held there, as long as its notes were."""
    from stemfill.generate.groove import groove_chords

    T = 4 * BAR
    x = np.zeros((P, T), dtype=bool)
    p = np.full((P, T), 0.02, dtype=np.float32)
    for b in range(4):
        chord = [20, 24, 27] if b < 2 else [22, 26, 29]
        for k in range(4):
            s = b * BAR + 12 * k
            x[chord, s:s + 10] = True
            p[chord, s:s + 10] = 0.9
    x[[22, 26, 29], 2 * BAR + 42:2 * BAR + 46] = True  # bar 3's extra strike, weakly held by P
    p[[22, 26, 29], 2 * BAR + 42:2 * BAR + 46] = 0.3
    out = groove_chords(x, p, np.ones(T, dtype=bool), grid_bars(T), 1.0)
    got = bar_rhythms(out, grid_bars(T), np.ones(T, dtype=bool))
    assert all(np.array_equal(r, _rhythm(0, 12, 24, 36)) for r in got)
    assert (out[:, 2 * BAR:3 * BAR].any(axis=1) == x[:, 2 * BAR:3 * BAR].any(axis=1)).all()  # the same chord
    assert (out[[22, 26, 29], 2 * BAR + 36:2 * BAR + 46].sum(axis=1) == 10).all()  # held as long as its notes
    assert (out[:, :2 * BAR] == x[:, :2 * BAR]).all() and (out[:, 3 * BAR:] == x[:, 3 * BAR:]).all()
