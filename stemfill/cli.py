"""The `stemfill` command line: a thin Typer layer over the library's functions.

Heavy modules are imported inside each command so that `stemfill --help` is fast.
Every StemfillError becomes one line on stderr and exit code 1.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from pathlib import Path
from typing import List, Optional

import typer

from stemfill.errors import StemfillError
from stemfill.pianoroll.grid import STEPS_PER_BEAT, WINDOW, WINDOW_BARS

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Add a missing instrument stem to a song.")
BARS_HELP = "Bars A-B, A- (to the end) or A; 1-based, B included."


def _show_version(value: bool) -> None:
    if value:
        from stemfill import __version__

        typer.echo(f"stemfill {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True,
                                       help="Show the version and exit.")) -> None:
    """Add a missing instrument stem to a song."""


@contextlib.contextmanager
def _tty_progress(description: str):
    """Yields ``progress(done, total)`` drawing a rich bar on stderr where stderr is a terminal, else None."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=Console(stderr=True), transient=True) as prog:
        task = prog.add_task(description, total=None)
        yield lambda done, total: prog.update(task, completed=done, total=total)


def _warn(path: Path, song) -> None:
    """What a reader could not take over as it was (e.g. notes it could not place), one line each on stderr."""
    for w in getattr(song, "warnings", ()):
        typer.echo(f"warning: {path}: {w}", err=True)


def friendly(fn):
    """Turn the project's errors (and missing files) into a one-line message and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except StemfillError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(1)
        except (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError) as e:
            typer.echo(f"error: {e.filename or ''}: {e.strerror or e}", err=True)
            raise typer.Exit(1)

    return wrapper


# === symbolic: info / plot / convert (foundation) ===========================


@app.command()
@friendly
def info(file: Path = typer.Argument(..., help="A Guitar Pro or MIDI file.")) -> None:
    """Show a song's tracks (stem, program, notes, range), tempo, meter, bars and duration."""
    from stemfill.song.info import print_info
    from stemfill.song.io import read_song

    song = read_song(file)
    _warn(file, song)
    print_info(song, source=str(file))



@app.command()
@friendly
def convert(
    inputs: List[Path] = typer.Argument(..., help="Song files or folders (searched recursively for .gp3/.gp4/.gp5/.gpx/.gp/.mid/.midi/.kar)."),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder: manifest.json + shards/."),
    chunk_len: int = typer.Option(WINDOW, "--chunk-len", help=f"Chunk length in steps ({STEPS_PER_BEAT} per beat; {WINDOW} = {WINDOW_BARS} bars of 4/4)."),
    hop: int = typer.Option(WINDOW // 2, "--hop", help="Steps between chunk starts."),
    jobs: int = typer.Option(0, "--jobs", "-j", help="Worker processes (0: one per CPU)."),
    require_all: bool = typer.Option(False, "--require-all", help="Keep only songs and chunks with drums, bass and guitar."),
    seed: int = typer.Option(0, "--seed", help="Seed of the train/valid/test split (by song content hash)."),
    guitar_variants: int = typer.Option(0, "--guitar-variants", min=0, help="Songs with two or more guitar tracks: also write up to N variants, each with one guitar track as the stem and the other guitars as context (training only; evaluation reads the songs as they are). 0: none."),
) -> None:
    """Convert songs into chunked piano-roll shards for training (resumable; broken files are skipped)."""
    from stemfill.datasets.convert import convert as run_convert

    rep = run_convert(inputs, out, chunk_len=chunk_len, hop=hop, jobs=jobs or None, require_all=require_all, seed=seed,
                      guitar_variants=guitar_variants, progress=sys.stderr.isatty(),
                      log=lambda line: typer.echo(line, err=True))
    if rep.n_songs == 0:  # every file skipped: nothing to train on
        raise StemfillError(f"{out}: no song converted: all {rep.n_files} song file{'s' * (rep.n_files != 1)} "
                            "skipped (the reasons are above and in the manifest)")


@app.command()
@friendly
def plot(
    file: Path = typer.Argument(..., help="A Guitar Pro or MIDI file."),
    out: Path = typer.Option(Path("roll.png"), "-o", "--out", help="PNG to write."),
    bars: Optional[str] = typer.Option(None, "--bars", help=BARS_HELP),
) -> None:
    """Draw a song's drums, bass and guitar piano roll as a PNG."""
    from stemfill.files import check_output_path
    from stemfill.song.bars import parse_bars
    from stemfill.song.io import read_song
    from stemfill.pianoroll.plot import plot_song

    rng = parse_bars(bars) if bars else None
    check_output_path(out, file, exts=(".png",))
    song = read_song(file)
    _warn(file, song)
    plot_song(song, out, rng, title=song.title or file.stem)
    typer.echo(f"wrote {out}")

# === symbolic: midi / train (model) =========================================


def _key_words(res) -> str:
    """' in E minor, ...': the key of new bass/guitar parts that no bass or guitar of the song set."""
    if res.key is None:
        return ""
    from stemfill.pianoroll.key import key_name

    name = key_name(*res.key)
    return {"given": f" in {name}",
            "other tracks": f" in {name}, the key of the song's other tracks (set another with --key)",
            "model": f" in {name}, chosen by the model: no bass or guitar to follow (set one with --key)"}[res.key_source]


ENGINE_WORDS = {"onnx": "onnxruntime", "torch": "torch"}  # what ran the network, as `midi` reports it


def _default_out(inp: Path, add: List[str]) -> Path:
    ext = inp.suffix.lower()
    ext = ext if ext in (".mid", ".midi", ".gp5") else (".mid" if ext == ".kar" else ".gp5")
    return inp.with_name(f"{inp.stem}-{'+'.join(add)}{ext}")


@app.command("midi")
@friendly
def midi_cmd(
    inp: Path = typer.Argument(..., metavar="IN", help="A Guitar Pro or MIDI file."),
    add: List[str] = typer.Option(..., "--add", help="Stem to add: drums, bass or guitar (repeatable)."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Output .mid or .gp5 (default: IN-<stems>.mid/.gp5 beside IN)."),
    model: Optional[Path] = typer.Option(None, "--model", help="Model folder, .safetensors or ckpt.pt (default: the shipped model)."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Denoising steps (default: the model's own)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same result)."),
    bars: Optional[str] = typer.Option(None, "--bars", help="Only generate these bars; the rest is kept. " + BARS_HELP),
    candidates: Optional[int] = typer.Option(None, "--candidates", min=1, help="Sample K fills per window, keep the one that agrees most with the others (default: the model's own)."),
    replace: bool = typer.Option(False, "--replace", help="Replace a stem the song already has."),
    guidance: Optional[float] = typer.Option(None, "--guidance", help="Classifier-free guidance scale (1 = off; default: the model's, and its chain_guidance for a guitar written over a new bass)."),
    key: Optional[str] = typer.Option(None, "--key", help="Key of the new bass/guitar, e.g. 'E minor', 'A' (only where the song has neither: drums alone carry no key)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also draw input vs filled piano roll as a PNG."),
    audio: Optional[Path] = typer.Option(None, "--audio", help="Also render the filled song to hear it (.wav/.flac; FluidSynth)."),
    soundfont: Optional[Path] = typer.Option(None, "--soundfont", help="General MIDI .sf2 for --audio (default: STEMFILL_SOUNDFONT or the system's)."),
    density: List[str] = typer.Option([], "--density", help="How busy the new part is: low, mid, high, auto or notes a bar; per stem as drums=high (repeatable). With --bars, only those bars."),
    complexity: List[str] = typer.Option([], "--complexity", help="Syncopation: low, mid, high, auto or the share of note starts off the beat (0-1); per stem as bass=low."),
    register: List[str] = typer.Option([], "--register", help="Bass/guitar pitch range: low, mid, high, auto or a MIDI note (the part's mean pitch)."),
    fills: Optional[str] = typer.Option(None, "--fills", help="Drum fills: none, phrase (every 4th bar), often (every 2nd bar), sections (before the song's section changes, as its other parts show them) or auto."),
    like: Optional[Path] = typer.Option(None, "--like", help="Play the new part in the style of this file's same stem (MIDI or Guitar Pro): its density, syncopation, register and groove."),
    like_bars: Optional[str] = typer.Option(None, "--like-bars", help="Bars of the --like file to take the style from. " + BARS_HELP),
    style: Optional[str] = typer.Option(None, "--style", help="Drums in a named groove, as --like a built-in bar: rock, reggae, funk, metal, swing, disco, halftime, punk."),
    temperature: List[str] = typer.Option([], "--temperature", help="How far the new part strays from the model's likeliest notes: 0 always plays them (plainest), 1 draws notes as often as the model expects them (toms, crashes, passing notes); one number or per stem as drums=1 (default: the model's own)."),
    engine: Optional[str] = typer.Option(None, "--engine", help="What runs the network: auto (onnxruntime where the model folder has model.onnx and no controls or candidates are asked for, else torch), onnx or torch (default: STEMFILL_ENGINE, else auto). The two draw different noise: a seed gives another fill on each."),
    drum_decoder: Optional[str] = typer.Option(None, "--drum-decoder", help="How new drums become notes: patterns (whole real phrases from a library, chosen by the model and planned by the song's phrases and sections) or cells (the likeliest hits one by one); default: the model's own (the shipped model: patterns)."),
    library: Optional[Path] = typer.Option(None, "--library", help="Drum pattern library for the pattern decoder (`stemfill library build`); default: the one shipped with the model. Implies --drum-decoder patterns."),
    rests: bool = typer.Option(True, "--rests/--no-rests", help="Let the new drums and bass rest where a player would sit out (intros, breaks, the bars before the song starts), as the model's rest models tell from the other parts; --no-rests plays every bar."),
) -> None:
    """Add missing stems (drums / bass / guitar) to a song with the diffusion model."""
    from stemfill.api import plan_fill
    from stemfill.files import check_output_path
    from stemfill.song.io import WRITE_EXTS, read_song, write_song

    plan = plan_fill(list(add), bars=bars, density=density, complexity=complexity, register=register, fills=fills,
                     style=style, like=like, like_bars=like_bars, seed=seed, temperature=temperature, model=model,
                     steps=steps, candidates=candidates, replace=replace, guidance=guidance, key=key,
                     engine=engine, drum_decoder=drum_decoder, library=library,
                     rests=rests)  # every option, before anything is read
    out = out or _default_out(inp, list(add))
    check_output_path(out, inp, exts=WRITE_EXTS)
    if plot is not None:
        check_output_path(plot, inp, exts=(".png",))
    if audio is not None:  # the renderer and the path, before the model runs
        from stemfill.audio.render import RENDER_EXTS, check_renderer

        check_output_path(audio, inp, exts=RENDER_EXTS)
        sf2 = check_renderer(soundfont)
    plan.model_path()  # no model installed: say so before reading
    song = read_song(inp)
    _warn(inp, song)
    with _tty_progress("filling windows") as progress:
        res = plan.run(song, progress=progress)  # the same path as stemfill.fill and `stemfill studio`
    for line in res.notes:  # what the decoder could not do as asked
        typer.echo(f"note: {inp}: {line}", err=True)
    if res.removed:  # --replace: the tracks it took out, by name
        typer.echo(f"replaced: removed {len(res.removed)} track{'s' * (len(res.removed) != 1)}: "
                   + ", ".join(f"{t.name or '(no name)'!r} ({len(t.notes)} notes)" for t in res.removed), err=True)
    notes: list[str] = []
    write_song(res.song, out, source=inp, report=notes)
    for line in notes:  # what the tab writer chose or could not keep (tunings, dropped notes)
        typer.echo(f"note: {out}: {line}", err=True)
    typer.echo(f"wrote {out} with {ENGINE_WORDS[res.engine]}: added "
               + ", ".join(f"{t.name} ({len(t.notes)} notes)" for t in res.added) + _key_words(res))
    if plot is not None:
        from stemfill.pianoroll.plot import plot_fill

        plot_fill(song, res.roll, res.generated, plot, title=f"{inp.name}: + {', '.join(add)}")
        typer.echo(f"wrote {plot}")
    if audio is not None:
        from stemfill.audio.render import render_song_file

        typer.echo(f"wrote {audio} ({render_song_file(res.song, audio, sf2)['seconds']:.1f} s)")


library_app = typer.Typer(no_args_is_help=True, help="Drum pattern libraries for the pattern decoder.")
app.add_typer(library_app, name="library")


@library_app.command("build")
@friendly
def library_build_cmd(
    inputs: List[Path] = typer.Argument(..., help="Song files or folders (MIDI, Guitar Pro) whose drum tracks to learn from."),
    out: Path = typer.Option(..., "-o", "--out", help="The library file to write (.npz)."),
    train_of: Optional[Path] = typer.Option(None, "--train-of", help="A chunk folder (`stemfill convert`): of the songs it holds, take only its train split (keep valid and test songs out of a library you measure)."),
    min_velocity: int = typer.Option(0, "--min-velocity", min=0, max=127, help="Leave out softer hits (ghost notes)."),
    min_count: int = typer.Option(1, "--min-count", min=1, help="Keep bars played at least this often (fills are always kept)."),
) -> None:
    """Build a drum pattern library from your own tabs and MIDI files (your band's style): every whole bar
    of their drum tracks in its own meter, and every run of 4 bars as a phrase. Use it with
    `stemfill midi --add drums --library LIB`."""
    from stemfill.files import check_output_path
    from stemfill.generate.library import build_library, library_inputs

    out = check_output_path(out, *inputs, exts=(".npz",))
    files = library_inputs(inputs, train_of)
    if not files:
        raise StemfillError(f"no song files under {', '.join(map(str, inputs))}")
    lib = build_library(files, min_velocity=min_velocity, min_count=min_count,
                        log=lambda line: typer.echo(f"warning: {line}", err=True))
    if not (~lib.fill).any():
        raise StemfillError(f"no drum bars in {', '.join(map(str, inputs))}: nothing to build a library from")
    lib.save(out)
    meters = ", ".join(f"{m} {int(((lib.meter == m) & ~lib.fill).sum())}" for m in lib.meters())
    typer.echo(f"wrote {out}: {len(lib)} bar patterns ({int(lib.fill.sum())} fills; grooves by meter: {meters}), "
               f"{len(lib.phrases)} phrases, from {sum(s['songs'] for s in lib.meta['sources'])} songs")


@app.command("studio")
@friendly
def studio_cmd(
    song: Optional[Path] = typer.Argument(None, metavar="[SONG]", help="A MIDI or Guitar Pro file to open first (optional: the page opens files too)."),
    port: int = typer.Option(0, "--port", min=0, max=65535, help="Port to listen on (0: a free one)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on. Anything but 127.0.0.1 / localhost / ::1 lets anyone who can reach the port use the studio."),
    no_browser: bool = typer.Option(False, "--no-browser", help="Print the URL only; do not open a browser."),
    model: Optional[Path] = typer.Option(None, "--model", help="Model folder, .safetensors or ckpt.pt (default: the shipped model)."),
    soundfont: Optional[Path] = typer.Option(None, "--soundfont", help="General MIDI .sf2 for listening (default: STEMFILL_SOUNDFONT or the system's, as `stemfill render`)."),
) -> None:
    """Open a local page to add parts to a song, hear the takes side by side and download the one you keep."""
    from stemfill.studio.server import serve

    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.echo(f"warning: --host {host}: anyone who can reach this port can use the studio (open files, run "
                   "the model); use 127.0.0.1 unless you mean it", err=True)
    serve(song, host=host, port=port, open_browser=not no_browser, model=model, soundfont=soundfont, echo=typer.echo)


@app.command("export-onnx")
@friendly
def export_onnx_cmd(
    model: Optional[Path] = typer.Argument(None, help="Model folder or its .safetensors (default: the shipped model)."),
) -> None:
    """Write model.onnx beside a model's weights: the network for `stemfill midi`'s onnxruntime engine."""
    from stemfill.pianoroll.export import export_onnx
    from stemfill.pianoroll.model import default_model_path

    path, diff = export_onnx(model if model is not None else default_model_path())
    typer.echo(f"wrote {path} (max |logit difference| from torch on a random batch: {diff:.1e})")


@app.command("average")
@friendly
def average_cmd(
    models: List[Path] = typer.Argument(..., help="Two or more model folders of one architecture (the first one's config is kept)."),
    out: Path = typer.Option(..., "-o", "--out", help="Folder for the averaged model."),
    weights: Optional[str] = typer.Option(None, "--weights", help="One weight per model, summing to 1, e.g. 0.5,0.5 (default: equal)."),
    note: Optional[str] = typer.Option(None, "--note", help="A line recorded in the new config.json."),
) -> None:
    """Average models' weights (a model soup; WiSE-FT between a model and its fine-tune)."""
    from stemfill.errors import ModelError
    from stemfill.pianoroll.soup import average_models, parse_weights

    try:
        w = parse_weights(weights, len(models))
    except ValueError as e:
        raise ModelError(str(e)) from None
    path = average_models(models, w, out, note=note)
    typer.echo(f"wrote {path} (weights {', '.join(f'{x:g}' for x in w)})")


@app.command("train")
@friendly
def train_cmd(
    data: Path = typer.Option(..., "--data", help="Chunks folder written by `stemfill convert`."),
    out: Path = typer.Option(..., "-o", "--out", help="Run folder: ckpt.pt, model/ (safetensors + config.json), log.jsonl, samples/."),
    steps: int = typer.Option(20000, "--steps", min=1, help="Total optimizer steps."),
    batch: int = typer.Option(32, "--batch", min=1, help="Chunks per step (per process under torchrun)."),
    lr: float = typer.Option(4e-4, "--lr", help="Peak learning rate (warm-up, then cosine)."),
    size: str = typer.Option("default", "--size", help="UNet size preset: tiny, default, large."),
    objective: str = typer.Option("bernoulli", "--objective", help="bernoulli (default) or atassi (the paper's reference)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    augment: int = typer.Option(5, "--augment", min=0, help="Pitch-shift bass+guitar by up to +-N semitones (0: off)."),
    val_every: int = typer.Option(500, "--val-every", min=1, help="Validate every N steps."),
    ckpt_every: int = typer.Option(1000, "--ckpt-every", min=1, help="Checkpoint every N steps."),
    sample_every: int = typer.Option(2000, "--sample-every", min=0, help="Write sample PNGs every N steps (0: never)."),
    warmup: int = typer.Option(500, "--warmup", min=0, help="Warm-up steps."),
    log_every: int = typer.Option(50, "--log-every", min=1, help="Write the loss to RUN/log.jsonl every N steps."),
    max_chunks: int = typer.Option(0, "--max-chunks", min=0, help="Use at most N training chunks (0: all)."),
    resume: bool = typer.Option(False, "--resume", help="Continue RUN/ckpt.pt exactly (--steps may extend it)."),
    remove_only: str = typer.Option("", "--remove-only",
                                    help="The paper's setting: always remove this one stem (a per-instrument model)."),
    context: bool = typer.Option(True, "--context/--no-context",
                                 help="Hear the songs' other tracks (keys, strings, vocals...) as always-known input."),
    context_drop: float = typer.Option(0.3, "--context-drop", min=0.0, max=1.0,
                                       help="Share of samples trained without the other tracks."),
    init_from: Optional[Path] = typer.Option(None, "--init-from",
                                             help="Start from this model's weights (new inputs start at zero)."),
    controls: bool = typer.Option(False, "--controls/--no-controls",
                                  help="Learn the controls (density, syncopation, register, polyphony, toms, fills, "
                                       "groove): each target's real attributes are given to the model sometimes."),
    key_prior: bool = typer.Option(False, "--key-prior/--no-key-prior",
                                   help="Pitch-shift only samples whose known stems hold bass or guitar notes "
                                        "(with only drums known the model learns the corpus's keys)."),
    span_prob: float = typer.Option(0.0, "--span-prob", min=0.0, max=1.0,
                                    help="Share of samples whose removed stems are known before and after a span "
                                         "(as whole-song filling's second pass and --bars see them)."),
    max_remove: int = typer.Option(2, "--max-remove", min=1, max=3,
                                   help="Remove 1..N of a chunk's stems per sample (3: all three, so the model "
                                        "learns to write a band from the other tracks alone)."),
    precision: str = typer.Option("fp32", "--precision",
                                  help="fp32, or bf16: the forward pass under bf16 autocast (about 1.7x as fast on "
                                       "CPUs with AVX512-BF16; docs/training.md)."),
) -> None:
    """Train the symbolic stem-filling model (resumable). Several processes or GPUs:
    `torchrun --nproc_per_node N -m stemfill.cli train ...` (DDP; --batch is per process)."""
    from stemfill.pianoroll.diffusion import OBJECTIVES
    from stemfill.song.song import STEMS
    from stemfill.pianoroll.train import PRESETS, TrainConfig, train

    if objective not in OBJECTIVES:
        raise StemfillError(f"--objective {objective!r}: choose from {', '.join(OBJECTIVES)}")
    if size not in PRESETS:
        raise StemfillError(f"--size {size!r}: choose from {', '.join(PRESETS)}")
    if remove_only and remove_only not in STEMS:
        raise StemfillError(f"--remove-only {remove_only!r}: choose from {', '.join(STEMS)}")
    from stemfill.pianoroll.train import PRECISIONS

    if precision not in PRECISIONS:
        raise StemfillError(f"--precision {precision!r}: choose from {', '.join(PRECISIONS)}")
    cfg = TrainConfig(data=str(data), out=str(out), steps=steps, batch=batch, lr=lr, size=size, objective=objective,
                      seed=seed, device=device, augment=augment, val_every=val_every, ckpt_every=ckpt_every,
                      sample_every=sample_every, warmup=warmup, remove_only=remove_only, log_every=log_every,
                      max_chunks=max_chunks,
                      key_prior=key_prior, span_prob=span_prob, context=context, context_drop=context_drop,
                      controls=controls, init_from=str(init_from) if init_from else "", max_remove=max_remove,
                      precision=precision)
    model_dir = train(cfg, resume=resume, progress=sys.stderr.isatty())
    typer.echo(f"wrote {model_dir} (EMA weights) and {Path(out) / 'ckpt.pt'}")

# === evaluation =============================================================


@app.command("eval")
@friendly
def eval_(
    data: Path = typer.Option(..., "--data", help="Chunks folder written by `stemfill convert`."),
    split: str = typer.Option("test", "--split", help="Split to evaluate on: train, valid, test, or band (real band parts: the onyxite test songs and the multi-track guitarpro songs; stemfill.datasets.chunks.BAND)."),
    system: Optional[List[str]] = typer.Option(
        None, "--system", "-s",
        help="System(s): real, random, rule, retrieval, model, model-cells (the model with its drums decoded cell by cell), paper (repeatable; default: all baselines, "
             "plus model with --model and paper with --paper-models)."),
    model: Optional[Path] = typer.Option(None, "--model", help="Model folder, .safetensors or ckpt.pt for the 'model' system (default: the shipped model)."),
    paper_models: Optional[str] = typer.Option(
        None, "--paper-models",
        help="For the 'paper' system: a folder holding drums/, bass/, guitar/ per-stem models, or three comma-separated model folders."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1,
                                        help="Denoising steps for the model(s) (default: each model's own)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Evaluate only N chunks (seeded pick)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the chunk pick and of every system's randomness."),
    pairs: bool = typer.Option(True, "--pairs/--no-pairs", help="Also evaluate the two-stems-missing cases."),
    triples: bool = typer.Option(False, "--triples/--no-triples",
                                 help="Also evaluate all three stems missing, on chunks whose song has other tracks "
                                      "to hear (the model writes a band from them alone)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the full report (every metric) as JSON."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Folder for real-vs-filled roll PNGs of a few examples."),
    context: bool = typer.Option(True, "--context/--no-context",
                                 help="Let the model hear the songs' other tracks (keys, strings, vocals...) where it can."),
    chunks: str = typer.Option("all", "--chunks", help="all, with-context or without-context: the chunks whose songs "
                                                       "have other pitched tracks sounding there, or not."),
    realism: bool = typer.Option(False, "--realism",
                                 help="Also test how well a small classifier tells the filled stems from the real ones "
                                      "(cross-validated by song; 0.5 = cannot tell), with tell-tale statistics."),
    classifier: str = typer.Option("logistic", "--classifier", help="The --realism classifier: logistic or boosting."),
) -> None:
    """Remove stems from real chunks, let each system fill them, and score the fills (docs/evaluation.md)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from stemfill.evaluation import harness as H

    names = list(system) if system else (["real", "random", "rule", "retrieval"] + (["model"] if model else [])
                                         + (["paper"] if paper_models else []))
    if model is not None and not model.exists():
        raise StemfillError(f"{model}: no such model file or folder")
    from stemfill.files import check_output_folder, check_output_path

    if json_out is not None:
        check_output_path(json_out, data, exts=(".json",))
    if plot is not None:
        check_output_folder(plot, data)
    kinds = (H.KINDS if pairs else ("single",)) + (("triple",) if triples else ())
    from stemfill.evaluation.realism import CLASSIFIERS

    if classifier not in CLASSIFIERS:
        raise StemfillError(f"--classifier {classifier!r}: expected one of {', '.join(CLASSIFIERS)}")
    err = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, disable=not err.is_terminal) as prog:
        def factory(name, total):
            task = prog.add_task(f"{name:>9}", total=total)
            return lambda k: prog.advance(task, k)

        report, examples = H.run(data, split, names, model, limit, seed, kinds, progress_factory=factory,
                                 n_examples=1 if plot else 0, steps=steps, paper_models=paper_models,
                                 context=context, chunk_filter=chunks, realism=classifier if realism else False)
    H.print_report(report)
    if json_out is not None:
        H.write_json(report, json_out)
        typer.echo(f"wrote {json_out}")
    if plot is not None:
        shown = [e for e in examples if e["system"] != "real"]  # 'real' would draw the truth twice
        paths = H.plot_examples(shown, plot, report["config"]["steps_per_beat"])
        typer.echo(f"wrote {len(paths)} plots to {plot}")


# === audio ==================================================================


@app.command("audio-plot")
@friendly
def audio_plot_cmd(
    input: Path = typer.Argument(..., help="Audio file (wav/flac/ogg/mp3; any rate, mono or stereo)."),
    out: Path = typer.Option(..., "-o", "--out", help="Output PNG: the Riffusion spectrogram image (512 rows, 100 columns/s)."),
    start: float = typer.Option(0.0, "--start", help="Start, in seconds."),
    duration: Optional[float] = typer.Option(None, "--duration", help="Length in seconds (default: to the end; 5.11 gives one 512x512 model input)."),
) -> None:
    """Draw an audio file's spectrogram image as the audio model sees it (low notes at the bottom, loud = dark)."""
    from stemfill.audio import spectrogram as sp
    from stemfill.files import check_output_path

    check_output_path(out, input, exts=(".png",))
    y, sr, ch = sp.load_audio(input)
    a = int(round(start * sp.SAMPLE_RATE))
    b = len(y) if duration is None else a + int(round(duration * sp.SAMPLE_RATE))
    seg = y[a:b]
    if len(seg) < sp.HOP_LENGTH:
        raise sp.AudioError(f"{input}: nothing left after --start {start:g} s (the file lasts {len(y) / sp.SAMPLE_RATE:.2f} s)")
    img = sp.audio_to_image(seg)
    sp.save_image(img, out)
    typer.echo(f"{out}: {img.shape[1]} x {img.shape[0]} ({len(seg) / sp.SAMPLE_RATE:.2f} s of {input.name}, {sr} Hz, {ch} ch)")


@app.command("audio-dataset")
@friendly
def audio_dataset_cmd(
    sources: List[Path] = typer.Argument(..., help="Song folders (stems), a MUSDB18 root (musdb), mixes (demucs) or .gp*/.mid files or folders (synthetic)."),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder of triplet shards (resumed if it exists)."),
    source: str = typer.Option("stems", "--source", help="stems | musdb | demucs | synthetic."),
    stems: Optional[str] = typer.Option(None, "--stems", help="Stems to remove, comma-separated (default: synthetic drums,bass,guitar; demucs drums; else every stem but 'other')."),
    seed: int = typer.Option(0, "--seed", help="Seed of the action words and descriptors."),
    overlap: float = typer.Option(0.0, "--overlap", help="Shared fraction of consecutive 5.11 s windows, 0..<1."),
    instructions: str = typer.Option("offline", "--instructions", help="offline (from tags/tempo/instruments) or llm (the paper's prompt)."),
    llm_url: Optional[str] = typer.Option(None, "--llm-url", help="OpenAI-compatible base URL (or STEMFILL_LLM_URL)."),
    llm_model: Optional[str] = typer.Option(None, "--llm-model", help="Model name (or STEMFILL_LLM_MODEL; default gpt-3.5-turbo)."),
    llm_key: Optional[str] = typer.Option(None, "--llm-key", help="API key (or STEMFILL_LLM_KEY)."),
    soundfont: Optional[Path] = typer.Option(None, "--soundfont", help="General MIDI .sf2 for --source synthetic (default: the system's)."),
    max_seconds: Optional[float] = typer.Option(None, "--max-seconds", help="synthetic: render only this many seconds of each song."),
    subset: str = typer.Option("train", "--subset", help="musdb: train or test."),
    demucs_repo: Optional[Path] = typer.Option(None, "--demucs-repo", help="demucs: local folder with the model's weights."),
    demucs_model: str = typer.Option("htdemucs", "--demucs-model", help="demucs: model name."),
    shard_size: int = typer.Option(128, "--shard-size", min=1, help="Triplets per shard (a song is never split)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Build (full mix, stem-removed mix, instruction) spectrogram triplets for subtractive training."""
    from stemfill.audio import triplets as T
    from stemfill.errors import AudioError

    if source not in T.SOURCES:
        raise AudioError(f"--source {source!r}: expected one of {', '.join(T.SOURCES)}")
    if instructions not in ("offline", "llm"):
        raise AudioError(f"--instructions {instructions!r}: expected offline or llm")
    if source == "stems":
        songs = T.stem_folder_songs(sources)
    elif source == "musdb":
        if len(sources) != 1:
            raise AudioError("--source musdb takes one MUSDB18 root folder")
        songs = T.musdb_songs(sources[0], subset)
    elif source == "demucs":
        songs = T.demucs_songs(sources, demucs_repo, demucs_model)
    else:
        songs = T.synthetic_songs(sources, soundfont, max_seconds=max_seconds)
    instruct = None
    if instructions == "llm":
        from stemfill.audio.instructions import LLMInstructor

        instruct = T.llm_instructor(LLMInstructor(llm_url, llm_model, llm_key))
    targets = [s.strip() for s in stems.split(",") if s.strip()] if stems else T.DEFAULT_TARGETS.get(source)
    options = {"source": source, "targets": targets, "seed": seed, "overlap": overlap, "instructions": instructions}
    man = T.build_triplets(songs, out, targets=targets, seed=seed, overlap=overlap, instruct=instruct,
                           shard_size=shard_size, progress=not quiet, options=options,
                           log=lambda m: typer.echo(m, err=True))
    typer.echo(f"{out}: {man['count']} triplets in {len(man['shards'])} shards; "
               f"{len(man['songs_done'])} songs done, {len(man['skipped'])} skipped")


@app.command("audio")
@friendly
def audio_cmd(
    input: Path = typer.Argument(..., help="Song to add a stem to (wav/flac/ogg; any rate, mono or stereo)."),
    prompt: str = typer.Option(..., "--prompt", "-p", help='Instruction, e.g. "add reggae drums".'),
    out: Path = typer.Option(..., "-o", "--out", help="Output audio file (.wav/.flac/.ogg/.mp3): input's length, rate, channels."),
    method: str = typer.Option("auto", "--method", help="auto (the paper's model if cached or --model given, else symbolic), symbolic (offline, CPU: beats + transcription + the piano-roll model), subtractive (the paper's InstructPix2Pix fine-tune) or sdedit (plain Riffusion)."),
    model: Optional[str] = typer.Option(None, "--model", help="Riffusion pipeline folder or hub id (subtractive/sdedit; default: the method's paper model)."),
    stem_out: Optional[Path] = typer.Option(None, "--stem-out", help="symbolic: also write the new stem alone (.wav/.flac)."),
    midi_out: Optional[Path] = typer.Option(None, "--midi-out", help="symbolic: also write the new stem's notes (.mid) on the tracked tempo map."),
    soundfont: Optional[Path] = typer.Option(None, "--soundfont", help="symbolic: General MIDI .sf2 to render with (default: the system's)."),
    symbolic_model: Optional[Path] = typer.Option(None, "--symbolic-model", help="symbolic: piano-roll model (default: the shipped one, as in `stemfill midi`)."),
    stem_level: float = typer.Option(-3.0, "--stem-level", help="symbolic: loudness of the new stem relative to the input, in dB."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Denoising steps (per window; default 20 for subtractive/sdedit, the model's own for symbolic)."),
    guidance: float = typer.Option(7.5, "--guidance", help="Text guidance scale (subtractive/sdedit)."),
    image_guidance: float = typer.Option(1.5, "--image-guidance", help="Image guidance scale (subtractive)."),
    strength: float = typer.Option(0.5, "--strength", help="How far the input is noised (sdedit), 0..1."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampler (and Griffin-Lim)."),
    overlap: float = typer.Option(0.5, "--overlap", help="Seconds shared by consecutive 5.11 s windows (subtractive/sdedit)."),
    griffin_lim_iters: int = typer.Option(32, "--griffin-lim-iters", min=1, help="Griffin-Lim iterations per window (subtractive/sdedit)."),
    plot_dir: Optional[Path] = typer.Option(None, "--plot-dir", help="Folder for each window's input and output spectrogram PNGs (subtractive/sdedit)."),
) -> None:
    """Add a stem to a recording: offline through the piano-roll model, or with a Riffusion-based model (docs/audio.md)."""
    from stemfill.audio.symbolic import choose_method

    chosen, why = choose_method(method, model)
    only = {"--stem-out": stem_out, "--midi-out": midi_out, "--soundfont": soundfont, "--symbolic-model": symbolic_model}
    if chosen != "symbolic" and (given := [k for k, v in only.items() if v is not None]):
        raise StemfillError(f"{', '.join(given)}: only for --method symbolic (the method is {chosen}: {why})")
    if chosen == "symbolic" and plot_dir is not None:
        raise StemfillError("--plot-dir: only for --method subtractive or sdedit")

    def announce() -> None:  # once the inputs are checked: a refusal stays one line
        typer.echo(f"method: {chosen}: {why}", err=True)

    if chosen == "symbolic":
        from stemfill.audio.symbolic import add_stem_symbolic

        r = add_stem_symbolic(input, out, prompt, stem_out=stem_out, midi_out=midi_out, soundfont=soundfont,
                              model=symbolic_model, seed=seed, steps=steps, stem_level_db=stem_level,
                              log=lambda line: typer.echo(line, err=True), on_start=announce,
                              progress=sys.stderr.isatty())
        typer.echo(f"wrote {', '.join(r.written)}: added {' and '.join(r.stems)} ({r.notes_added} notes) to "
                   f"{r.seconds:.2f} s, {r.sample_rate} Hz, {r.channels} ch, in {r.timings['total']:.1f} s")
        return
    from stemfill.audio.infer import InsertConfig, insert_stem

    cfg = InsertConfig(prompt=prompt, method=chosen, steps=steps or 20, guidance=guidance, image_guidance=image_guidance,
                       strength=strength, seed=seed, overlap=overlap, griffin_lim_iters=griffin_lim_iters)
    info = insert_stem(input, out, cfg, model=model, plot_dir=plot_dir, progress=sys.stderr.isatty(), on_start=announce)
    typer.echo(f"wrote {out} ({info['seconds']:.2f} s, {info['windows']} windows, {info['sample_rate']} Hz, "
               f"{info['channels']} ch)")


@app.command("render")
@friendly
def render_cmd(
    song: Path = typer.Argument(..., metavar="SONG", help="A MIDI or Guitar Pro file."),
    out: Path = typer.Option(..., "-o", "--out", help="Audio to write: .wav or .flac (stereo, 44.1 kHz, 16 bit)."),
    soundfont: Optional[Path] = typer.Option(None, "--soundfont", help="General MIDI .sf2 (default: STEMFILL_SOUNDFONT or the system's)."),
) -> None:
    """Render a song with FluidSynth and a General MIDI soundfont, to hear it (the renderer of `audio` and `midi --audio`)."""
    from stemfill.audio.render import RENDER_EXTS, check_renderer, render_song_file
    from stemfill.files import check_output_path
    from stemfill.song.io import read_song

    check_output_path(out, song, exts=RENDER_EXTS)
    sf2 = check_renderer(soundfont)
    s = read_song(song)
    _warn(song, s)
    r = render_song_file(s, out, sf2)
    typer.echo(f"wrote {out} ({r['seconds']:.1f} s, {r['tracks']} tracks, {r['notes']} notes, {Path(r['soundfont']).name})")


@app.command("audio-train")
@friendly
def audio_train_cmd(
    data: Path = typer.Option(..., "--data", help="Triplet shards folder (full mix, stem removed, instruction)."),
    out: Path = typer.Option(..., "-o", "--out", help="Run folder: a diffusers pipeline folder + training_state.pt."),
    model: str = typer.Option("riffusion/riffusion-model-v1", "--model", help="Starting pipeline: hub id or local folder."),
    steps: int = typer.Option(300_000, "--steps", min=1, help="Optimizer steps (the paper: 300k)."),
    batch: int = typer.Option(4, "--batch", min=1, help="Batch size per device (the paper: 4)."),
    lr: float = typer.Option(1e-4, "--lr", help="Peak learning rate (cosine decay after the warm-up)."),
    warmup: int = typer.Option(500, "--warmup", min=0, help="Warm-up steps."),
    grad_accum: int = typer.Option(1, "--grad-accum", min=1, help="Gradient accumulation steps."),
    checkpoint_every: int = typer.Option(1000, "--checkpoint-every", min=1, help="Steps between checkpoints."),
    mixed_precision: str = typer.Option("auto", "--mixed-precision", help="auto (fp16 on a GPU), no, fp16 or bf16."),
    gradient_checkpointing: bool = typer.Option(False, "--gradient-checkpointing", help="Trade compute for UNet memory."),
    seed: int = typer.Option(0, "--seed", help="Seed of data order, noise, timesteps and dropout."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
) -> None:
    """Fine-tune Riffusion into a stem inserter with Subtractive Training (InstructPix2Pix; docs/audio.md)."""
    from stemfill.audio.train import TrainConfig, train

    cfg = TrainConfig(model=model, steps=steps, batch=batch, lr=lr, warmup=warmup, grad_accum=grad_accum,
                      checkpoint_every=checkpoint_every, mixed_precision=mixed_precision,
                      gradient_checkpointing=gradient_checkpointing, seed=seed)
    train(data, out, cfg, resume=resume, progress=sys.stderr.isatty(), log=lambda line: typer.echo(line, err=True))
    typer.echo(f"wrote {out}")


@app.command("audio-eval")
@friendly
def audio_eval_cmd(
    real: Path = typer.Option(..., "--real", help="Folder of reference clips."),
    generated: Path = typer.Option(..., "--generated", help="Folder of generated clips (same file names pair up for KLD)."),
    extractor: str = typer.Option("panns", "--extractor", help="panns (FD, KLD, IS), vggish (FAD), mel (test only) or a PANNs checkpoint."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the numbers as JSON."),
) -> None:
    """FD / FAD / KLD / IS between real and generated audio, as audioldm_eval defines them."""
    import json

    from stemfill.audio.metrics import evaluate, make_extractor

    report = evaluate(real, generated, make_extractor(extractor))
    for k, v in report.items():
        typer.echo(f"{k:>12}  {v:.4f}" if isinstance(v, float) else f"{k:>12}  {v}")
    if json_out is not None:
        json_out.write_text(json.dumps(report, indent=2) + "\n")
        typer.echo(f"wrote {json_out}")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
