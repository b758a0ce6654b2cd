"""The public Python API: the few functions under both the CLI (`stemfill midi`, `render`) and `stemfill studio`.

    import stemfill

    song = stemfill.read("examples/riff.mid")
    take = stemfill.fill(song, add=["bass"], bars="5-12", density="high", seed=1)
    take.song.write("riff-bass.mid")
    stemfill.render(take.song, "riff-bass.wav")

Every function raises ``StemfillError`` (one line naming the file or option and the problem) on bad input, the
same message the CLI prints. ``fill`` checks every option before it touches the model (``plan_fill`` is that
check on its own, for callers that want to refuse a request before reading a song, as the CLI does).
Heavy modules (torch, onnxruntime, FluidSynth's helpers) are imported where they are first needed.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence, Union

from stemfill.errors import StemfillError

if TYPE_CHECKING:
    import numpy as np

    from stemfill.generate.controls import ControlRequest
    from stemfill.song.song import Song, Track

PathLike = Union[str, "os.PathLike[str]"]
# a control: one level for every added stem ("high", "low", "auto", a number), or per stem ("drums=high"),
# or several of those; None or () leaves it to the model
Control = Union[None, str, float, Sequence[Union[str, float]]]

__all__ = ["Take", "FillPlan", "read", "write", "plan_fill", "fill", "render"]


def _as_list(value: Control) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (str, int, float)):
        return [str(value)]
    return [str(v) for v in value]


def read(path: PathLike) -> "Song":
    """Read a MIDI (.mid/.midi/.kar) or Guitar Pro (.gp3/.gp4/.gp5/.gpx/.gp) file into a ``Song``.

    What the reader could not take over as written is in ``song.warnings`` (one line each)."""
    from stemfill.song.io import read_song

    return read_song(path)


def write(song: "Song", path: PathLike, *, source: PathLike | None = None,
          notes: list[str] | None = None) -> Path:
    """Write ``song`` as .mid/.midi or .gp5, atomically; never over ``source`` (the file it was read from).

    A Guitar Pro ``source`` written to .gp5 keeps its own tracks exactly as they were in the tab and appends
    the new ones. ``notes``: a list that gets the tab writer's one-line notes (tunings chosen, notes dropped)."""
    from stemfill.song.io import write_song

    return write_song(song, path, source=source, report=notes)


@dataclass
class Take:
    """One fill of a song: the song with its new tracks, and how they were made."""

    song: "Song"  # the input's tracks (a replaced stem's left out), then one new track per added stem
    added: list["Track"]  # the new tracks, in the order asked
    engine: str  # what ran the network: "onnx" (onnxruntime) or "torch"
    key: tuple[int, bool] | None  # (tonic pitch class, minor) of a new bass/guitar that followed no bass or guitar
    key_source: str | None  # "given" (key=), "other tracks" or "model"; None where the song set the key
    roll: "np.ndarray" = field(repr=False)  # the filled piano roll (3, P, T): drums, bass, guitar
    generated: "np.ndarray" = field(repr=False)  # (3, T) bool: the steps each channel generated
    stems: list[str] = field(default_factory=list)  # the stems asked for
    seed: int = 0
    removed: list["Track"] = field(default_factory=list)  # the song's tracks ``replace=True`` left out
    notes: list[str] = field(default_factory=list)  # what the decoder could not do as asked, one line each

    @property
    def key_name(self) -> str | None:
        """The key of the new bass/guitar, e.g. 'E minor', where the model or ``key=`` chose it."""
        if self.key is None:
            return None
        from stemfill.pianoroll.key import key_name

        return key_name(*self.key)

    def write(self, path: PathLike, *, source: PathLike | None = None, notes: list[str] | None = None) -> Path:
        """``write(take.song, path, ...)``."""
        return write(self.song, path, source=source, notes=notes)


@dataclass(frozen=True)
class FillPlan:
    """A fill request whose options are checked (``plan_fill``); ``run(song)`` makes the take."""

    add: tuple[str, ...]
    request: "ControlRequest"
    temperatures: dict[str, float]
    engine: str
    model: Path | None = None  # None: the shipped model
    bars: str | None = None
    like: Path | None = None
    like_bars: str | None = None
    style: str | None = None
    seed: int = 0
    steps: int | None = None
    candidates: int | None = None
    replace: bool = False
    guidance: float | None = None
    key: str | None = None
    drums: Any = field(default="model", compare=False)  # "model", None (cells) or a generate.DrumDecoder
    rests: bool = True  # the new parts rest where the model's rest models say a player would

    def model_path(self) -> Path:
        """The model folder or file this plan runs (the shipped model unless ``model`` was given)."""
        from stemfill.pianoroll.model import default_model_path

        return self.model if self.model is not None else default_model_path()

    def load_model(self, cache: dict | None = None):
        """The model this plan's request runs on (onnxruntime or torch, ``fast.load_fill_model``), from
        ``cache`` (a dict kept by the caller, e.g. a server's) where it was loaded before."""
        from stemfill.pianoroll.fast import load_fill_model

        path = self.model_path()
        wants = not self.request.empty()
        if cache is None:
            return load_fill_model(path, self.engine, controls=wants, candidates=self.candidates)
        k = (str(Path(path).resolve()), self.engine, wants, self.candidates)
        if k not in cache:
            cache[k] = load_fill_model(path, self.engine, controls=wants, candidates=self.candidates)
        return cache[k]

    def run(self, song: "Song", *, cache: dict | None = None,
            progress: Callable[[int, int], None] | None = None) -> Take:
        """Fill ``song`` (it is not changed) as planned: what `stemfill midi` does between reading and writing.
        ``progress(done, total)``: called as the model's windows are filled."""
        from stemfill.pianoroll.config import with_temperature
        from stemfill.generate.controls import read_reference, resolve_controls
        from stemfill.pianoroll.fill import fill_song

        model_path = self.model_path()
        reference = read_reference(self.like, self.like_bars) if self.like is not None else None
        if self.style is not None:
            from stemfill.generate.styles import style_roll

            reference = style_roll(self.style)
        m = self.load_model(cache)
        if self.temperatures:
            m = copy.copy(m)  # a cached model keeps its own sampling settings
            m.sampling = with_temperature(m.sampling, self.temperatures)
        controls = None
        add = list(self.add)
        if not self.request.empty():
            if m.controls is None:
                raise StemfillError(f"{model_path}: this model has no controls (--density, --complexity, --register, "
                                    "--fills, --like); use one trained with `stemfill train --controls`")
            stems = list(dict.fromkeys(add))
            if self.style is not None:  # a style is a drum groove; the other stems play as the model hears the song
                controls = resolve_controls(self.request, ["drums"], m.controls, reference, f"style {self.style}")
                controls.update({k: v for k, v in resolve_controls(self.request, stems, m.controls).items()
                                 if k != "drums"})
            else:
                controls = resolve_controls(self.request, stems, m.controls, reference, str(self.like))
        drums = self.drums
        if not isinstance(drums, (str, type(None))) and drums.rests is None:  # --library: the model's own rests
            from stemfill.generate.critic import model_folder
            from stemfill.generate.rests import get_rests

            drums = dataclasses.replace(drums, rests=get_rests(model_folder(m), "drums"))
        res = fill_song(song, add, m, steps=self.steps, seed=self.seed, bars=self.bars, candidates=self.candidates,
                        replace=self.replace, guidance=self.guidance, key=self.key, controls=controls,
                        progress=progress, drums=drums, rests=self.rests)
        from stemfill.song.bars import clip_track, last_bar_end

        end = last_bar_end(song)  # the new parts end where the song's last bar does: no bar added
        for t in res.added:
            clip_track(t, end)
        return Take(song=res.song, added=list(res.added), engine=res.engine, key=res.key, key_source=res.key_source,
                    roll=res.roll, generated=res.generated, stems=list(dict.fromkeys(add)), seed=self.seed,
                    removed=list(res.removed), notes=list(res.notes))


def plan_fill(add: str | Sequence[str], *, bars: str | None = None, density: Control = None,
              complexity: Control = None, register: Control = None, fills: str | None = None,
              style: str | None = None, like: PathLike | None = None, like_bars: str | None = None, seed: int = 0,
              temperature: Control = None, model: PathLike | None = None, steps: int | None = None,
              candidates: int | None = None, replace: bool = False, guidance: float | None = None,
              key: str | None = None, engine: str | None = None, drum_decoder: str | None = None,
              library: PathLike | None = None, rests: bool = True) -> FillPlan:
    """Check a fill request without reading any song or model; StemfillError with one line where it is wrong.

    The options are `stemfill midi`'s (see ``fill``)."""
    from stemfill.pianoroll.config import parse_temperature
    from stemfill.generate.controls import parse_controls
    from stemfill.pianoroll.fast import check_engine
    from stemfill.song.bars import parse_bars

    stems = [add] if isinstance(add, str) else list(add)
    if bars:
        parse_bars(bars)  # the syntax, before anything is read
    engine = check_engine(engine)
    if like_bars:
        parse_bars(like_bars)
    if like_bars and like is None:
        raise StemfillError("--like-bars needs --like FILE")
    if style is not None:
        from stemfill.generate.styles import check_style

        if like is not None:
            raise StemfillError("--style and --like both name a part to play like; give one")
        style = check_style(style, stems)
    try:
        temperatures = parse_temperature(_as_list(temperature), stems)
    except ValueError as e:
        raise StemfillError(str(e)) from None
    request = parse_controls(stems, {"density": _as_list(density), "complexity": _as_list(complexity),
                                     "register": _as_list(register)},
                             fills=fills, like=str(like) if like else style, like_bars=like_bars)
    drums = _drum_decoder(drum_decoder, library, stems)
    return FillPlan(add=tuple(stems), request=request, temperatures=temperatures, engine=engine, drums=drums,
                    model=Path(model) if model is not None else None, bars=bars or None,
                    like=Path(like) if like is not None else None, like_bars=like_bars, style=style, seed=int(seed),
                    steps=steps, candidates=candidates, replace=replace, guidance=guidance, key=key,
                    rests=bool(rests))


def fill(song: "Song", add: str | Sequence[str], *, bars: str | None = None, density: Control = None,
         complexity: Control = None, register: Control = None, fills: str | None = None, style: str | None = None,
         like: PathLike | None = None, like_bars: str | None = None, seed: int = 0, temperature: Control = None,
         model: PathLike | None = None, steps: int | None = None, candidates: int | None = None,
         replace: bool = False, guidance: float | None = None, key: str | None = None,
         engine: str | None = None, drum_decoder: str | None = None, library: PathLike | None = None,
         rests: bool = True) -> Take:
    """Add the stems ``add`` ("drums", "bass", "guitar") to a copy of ``song``; its own notes stay as they are.

    - ``bars``: only generate in these bars ('17-24', '17-' to the end, '17'); an existing stem keeps its notes
      outside them.
    - ``density``, ``complexity``, ``register``: low, mid, high, auto or a number, for every added stem, or per
      stem as "drums=high" (a list for several); ``fills``: none, phrase, often, sections or auto (drums).
    - ``style``: drums in a built-in groove (rock, reggae, funk, ...); ``like``: a file whose same stem the new
      part should play like (``like_bars``: which of its bars).
    - ``seed``: same seed, same take; ``temperature``: 0 (the likeliest notes) to 2, or per stem "drums=1".
    - ``model``: a model folder, .safetensors or ckpt.pt (default: the shipped model); ``engine``: auto, onnx
      or torch; ``steps``, ``candidates``, ``guidance``, ``key``, ``replace``: as `stemfill midi` has them.
    - ``drum_decoder``: "patterns" (whole real phrases from a library, planned by the song's phrases and
      sections) or "cells" (the likeliest hits one by one); default: the model's own. ``library``: a drum
      pattern library (``stemfill library build``) instead of the shipped one.
    - ``rests``: the new parts rest where the model's rest models say a player would (intros, breaks, the bars
      before the song starts); False plays every bar.
    """
    return plan_fill(add, bars=bars, density=density, complexity=complexity, register=register, fills=fills,
                     style=style, like=like, like_bars=like_bars, seed=seed, temperature=temperature, model=model,
                     steps=steps, candidates=candidates, replace=replace, guidance=guidance, key=key,
                     engine=engine, drum_decoder=drum_decoder, library=library, rests=rests).run(song)


def _drum_decoder(which: str | None, library: PathLike | None, add: list[str]):
    """--drum-decoder / --library -> what ``fill_song`` takes as ``drums``: "model", None (cells) or a
    ``generate.DrumDecoder`` (its library read here, before any song or model)."""
    if which is not None and which not in ("patterns", "cells"):
        raise StemfillError(f"--drum-decoder {which!r}: choose patterns or cells")
    if library is not None and which == "cells":
        raise StemfillError("--library is for the pattern decoder; drop --drum-decoder cells")
    if library is None and which != "patterns":
        return None if which == "cells" else "model"
    if library is not None and "drums" not in add:
        raise StemfillError(f"{library}: --library plays drums, and drums are not being added (--add drums)")
    from stemfill.generate.decoder import DrumDecoder
    from stemfill.generate.library import get_library

    return DrumDecoder(get_library(library))


def render(song: "Song", out: PathLike, *, soundfont: PathLike | None = None) -> dict[str, Any]:
    """Render ``song`` to a stereo 44.1 kHz 16-bit .wav or .flac with FluidSynth and a General MIDI soundfont
    (default: STEMFILL_SOUNDFONT or the system's), as `stemfill render` does; written atomically.
    Returns {"output", "seconds", "notes", "tracks", "soundfont"}."""
    from stemfill.audio.render import RENDER_EXTS, check_renderer, render_song_file
    from stemfill.files import check_output_path

    check_output_path(out, exts=RENDER_EXTS)
    sf2 = check_renderer(soundfont)
    return render_song_file(song, out, sf2)
