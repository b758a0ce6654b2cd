"""The studio's server: a Starlette app over ``stemfill.api`` (read, plan_fill/run, write, render) and the
offline audio route (``stemfill.audio.add``).

Everything the page sends is data, never a path: uploads are saved under generated names in the studio's
temporary folder, songs and takes are addressed by generated ids. Requests that run the model (a take, a
recording) wait for one lock, so they run one at a time; takes are kept in a bounded store per song.
Errors are the CLI's one-line ``StemfillError`` messages, as JSON ``{"error": ...}``, with the user's file
name in place of the folder the upload was saved in.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from stemfill.errors import StemfillError
from stemfill.files import one_line

STATIC = Path(__file__).resolve().parent / "static"
MB = 1024 * 1024
SCORE_LIMIT = 20 * MB  # MIDI and Guitar Pro uploads
AUDIO_LIMIT = 300 * MB  # WAV / FLAC uploads
TAKES_KEPT = 20  # per song: the oldest take goes when a 21st is made
SONGS_KEPT = 8  # songs opened in one session: the oldest goes (with its takes) when a 9th is opened
QUEUE_LIMIT = 64  # model requests waiting at once; past it the page is asked to try again
AUDIO_EXTS = (".wav", ".flac", ".ogg")
DOWNLOADS = (".mid", ".gp5", ".wav")
PARTS = ("all", "new", "rest")  # a take's audio: the whole take, its new part alone, the take without it

log = logging.getLogger("stemfill.studio")


class Refusal(Exception):
    """A request the studio refuses: ``status`` and a one-line message for the page."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class TakeEntry:
    id: int
    take: Any  # stemfill.api.Take
    options: dict[str, Any]
    seconds: float  # how long the model took
    files: dict[str, Path] = field(default_factory=dict)  # rendered/written files, by kind


@dataclass
class SongEntry:
    id: str
    name: str  # the user's file name (shown, and used in messages); never opened
    path: Path  # where the upload was saved, under a generated name
    song: Any  # stemfill.song.song.Song
    takes: "OrderedDict[int, TakeEntry]" = field(default_factory=OrderedDict)
    next_take: int = 1
    files: dict[str, Path] = field(default_factory=dict)
    info: dict[str, Any] | None = None


@dataclass
class Recording:
    id: str
    name: str
    before: Path
    after: Path
    result: dict[str, Any]


class Studio:
    """The session's state: songs, takes, recordings, the model lock, all files under ``workdir``."""

    def __init__(self, workdir: str | Path, *, model: str | Path | None = None, soundfont: str | Path | None = None,
                 score_limit: int = SCORE_LIMIT, audio_limit: int = AUDIO_LIMIT, takes_kept: int = TAKES_KEPT,
                 songs_kept: int = SONGS_KEPT, queue_limit: int = QUEUE_LIMIT, raw_kept: int = 12,
                 warm: bool = False):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.model = Path(model) if model is not None else None
        self.soundfont = soundfont
        self.score_limit, self.audio_limit = score_limit, audio_limit
        self.takes_kept, self.songs_kept, self.queue_limit = takes_kept, songs_kept, queue_limit
        self.warm_up = warm  # render each song as it opens, in the background (the command does; tests need not)
        self.songs: OrderedDict[str, SongEntry] = OrderedDict()
        self.recordings: OrderedDict[str, Recording] = OrderedDict()
        self.model_lock = threading.Lock()  # one model job at a time
        self.state_lock = threading.Lock()  # the stores
        self.render_lock = threading.Lock()  # one FluidSynth render at a time
        self.raw: OrderedDict[str, Path] = OrderedDict()  # FluidSynth renders by content (raw_audio)
        self.raw_kept = raw_kept
        self.models: dict = {}  # loaded models, by path and engine (api.FillPlan.load_model)
        self.waiting = 0
        self._alock: asyncio.Lock | None = None
        self.busy: dict[str, Any] | None = None  # what the model is doing now, for the page
        self.background: list[threading.Thread] = []  # warm-up renders, joined by close()

    # --- files -------------------------------------------------------------------------------------------
    def new_path(self, ext: str) -> Path:
        return self.workdir / f"{secrets.token_hex(8)}{ext}"

    def scrub(self, message: str, names: dict[Path, str] | None = None) -> str:
        """A message with the user's file names in place of the saved uploads' paths, and no workdir."""
        for p, name in (names or {}).items():
            message = message.replace(str(p), name)
        return message.replace(str(self.workdir) + "/", "").replace(str(self.workdir), "")

    async def receive(self, request: Request, name: str, exts: tuple[str, ...], limit: int, what: str) -> Path:
        """Save the request's body (an uploaded file called ``name``) under a generated name; refuse a file
        type not in ``exts`` and a body over ``limit`` bytes, before reading it where the size is declared."""
        shown = Path(name).name or "upload"
        ext = Path(shown).suffix.lower()
        if ext not in exts:
            raise Refusal(415, f"{shown}: unsupported file type {ext or '(none)'!r}; expected one of {', '.join(exts)}")
        too_big = (f"{shown}: the file is over the studio's {_size(limit)} limit for {what} "
                   f"(start `stemfill studio` with a larger limit, or use the command line)")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise Refusal(413, too_big)
        path = self.new_path(ext)
        size = 0
        try:
            with open(path, "wb") as f:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise Refusal(413, too_big)
                    f.write(chunk)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        if size == 0:
            path.unlink(missing_ok=True)
            raise Refusal(400, f"{shown}: the file is empty")
        return path

    # --- songs -------------------------------------------------------------------------------------------
    def add_song(self, path: Path, name: str) -> SongEntry:
        """Read a saved upload (or the command line's song) into the store; StemfillError names ``name``."""
        from stemfill.api import read

        try:
            song = read(path)
            if not any(t.notes for t in song.tracks):
                raise StemfillError(f"{path}: the song has no notes")
        except StemfillError as e:
            raise StemfillError(self.scrub(str(e), {path: name})) from None
        entry = SongEntry(id=secrets.token_hex(6), name=name, path=path, song=song)
        entry.info = song_info(song, name)
        with self.state_lock:
            self.songs[entry.id] = entry
            while len(self.songs) > self.songs_kept:
                _, old = self.songs.popitem(last=False)
                _remove_files(old)
        if self.warm_up:
            self.warm(entry)
        return entry

    def get_song(self, sid: str) -> SongEntry:
        entry = self.songs.get(sid)
        if entry is None:
            raise Refusal(404, "no such song in this session (open it again)")
        return entry

    def get_take(self, sid: str, tid: str) -> tuple[SongEntry, TakeEntry]:
        entry = self.get_song(sid)
        t = entry.takes.get(int(tid)) if tid.isdigit() else None
        if t is None:
            raise Refusal(404, f"no take {tid} of {entry.name} (the studio keeps the last {self.takes_kept})")
        return entry, t

    # --- the model ---------------------------------------------------------------------------------------
    async def run_model(self, job: Callable[[], Any], what: dict[str, Any]) -> Any:
        """Run ``job`` in a worker thread, one model job at a time: the others wait here (as coroutines, not
        threads), at most ``queue_limit`` of them; past that the page is asked to try again."""
        if self.waiting >= self.queue_limit:
            raise Refusal(503, f"{self.waiting} requests are already waiting for the model; try again shortly")
        if self._alock is None:
            self._alock = asyncio.Lock()
        self.waiting += 1
        try:
            async with self._alock:
                self.busy = dict(what, since=time.time())
                try:
                    return await run_in_threadpool(self._locked, job)
                finally:
                    self.busy = None
        finally:
            self.waiting -= 1

    def _locked(self, job: Callable[[], Any]) -> Any:
        with self.model_lock:  # also against callers from other threads or loops (bench, tests)
            return job()

    async def generate(self, entry: SongEntry, options: dict[str, Any]) -> TakeEntry:
        """Check ``options`` (the page's form), then fill the song under the model lock and keep the take."""
        from stemfill.api import plan_fill

        opts = check_options(options)
        plan = plan_fill(opts["stems"], bars=opts["bars"], density=opts["density"], complexity=opts["complexity"],
                         register=opts["register"], fills=opts["fills"], style=opts["style"], seed=opts["seed"],
                         temperature=opts["temperature"], model=self.model, replace=opts["replace"],
                         rests=opts["rests"])

        def job():
            t0 = time.perf_counter()
            take = plan.run(entry.song, cache=self.models)
            return take, time.perf_counter() - t0

        take, seconds = await self.run_model(job, {"song": entry.id, "stems": opts["stems"]})
        with self.state_lock:
            # the page needs the notes, not the model's rolls (a few MB a take on a long song)
            take = replace(take, roll=None, generated=None)
            t = TakeEntry(id=entry.next_take, take=take, options=opts, seconds=seconds)
            entry.next_take += 1
            entry.takes[t.id] = t
            while len(entry.takes) > self.takes_kept:
                _, old = entry.takes.popitem(last=False)
                _unlink(old.files.values())
        return t

    # --- files for the page --------------------------------------------------------------------------------
    def take_file(self, entry: SongEntry, t: TakeEntry | None, kind: str) -> Path:
        """A take's (None: the original song's) .mid / .gp5 / .wav, written once and kept while the take is."""
        from stemfill.api import write

        files = entry.files if t is None else t.files
        if kind in files and files[kind].exists():
            return files[kind]
        song = entry.song if t is None else t.take.song
        ext = kind.split(":")[0]
        path = self.new_path(ext)
        names = {path: f"{Path(entry.name).stem}-{'original' if t is None else f'take{t.id}'}{ext}"}
        try:
            if ext == ".wav":
                self.write_wav(song, t, kind.split(":")[1] if ":" in kind else "all", path)
            else:
                gp_source = entry.path if entry.path.suffix.lower() in (".gp3", ".gp4", ".gp5", ".gpx", ".gp") else None
                write(song, path, source=gp_source if ext == ".gp5" else None)
        except StemfillError as e:
            raise StemfillError(self.scrub(str(e), names)) from None
        files[kind] = path
        return path


    # --- audio ----------------------------------------------------------------------------------------------
    def raw_audio(self, song, tracks) -> tuple[Path, int]:
        """FluidSynth's stereo render (float32, unscaled) of ``tracks`` on ``song``'s tempo map, with the
        soundfont of `stemfill render`, as a raw interleaved float32 file and its frame count; kept by content,
        so a take re-renders only its new part (and a stem whose notes it changed)."""
        import hashlib
        import tempfile

        import numpy as np

        from stemfill.audio.render import check_renderer, render_midi, write_stem_midi

        h = hashlib.sha1(repr((song.resolution, [(x.time, x.qpm) for x in song.tempos],
                               [(x.name, x.program, x.is_drum, x.notes) for x in tracks])).encode()).hexdigest()
        with self.render_lock:
            path = self.raw.get(h)
            if path is None or not path.exists():
                sf2 = check_renderer(self.soundfont)
                path = self.new_path(".f32")
                if any(x.notes for x in tracks):
                    with tempfile.TemporaryDirectory(dir=self.workdir) as d:
                        mid = Path(d) / "part.mid"
                        write_stem_midi(song, [x for x in tracks if x.notes], mid)
                        np.ascontiguousarray(render_midi(mid, sf2, channels=2), dtype=np.float32).tofile(path)
                else:
                    path.write_bytes(b"")
                self.raw[h] = path
                while len(self.raw) > self.raw_kept:
                    _, old = self.raw.popitem(last=False)
                    old.unlink(missing_ok=True)
            self.raw.move_to_end(h)
            return path, path.stat().st_size // 8

    def write_wav(self, song, t: TakeEntry | None, part: str, path: Path) -> None:
        """The whole take, its new part alone or the rest alone, as long as the whole and scaled alike (peaks at
        -1 dBFS at most, as `stemfill render`). The song is rendered per stem (drums, bass, guitar, other) and
        each render is kept by content; they are mixed in blocks of a few seconds, so memory stays small."""
        import numpy as np
        import soundfile as sf

        from stemfill.audio.render import PEAK, SAMPLE_RATE
        from stemfill.errors import AudioError
        from stemfill.files import atomic_path

        new_ids = {id(x) for x in t.take.added} if t is not None else set()
        rest = [self.raw_audio(song, g) for g in _stem_groups([x for x in song.tracks if id(x) not in new_ids])]
        new = [self.raw_audio(song, [x for x in song.tracks if id(x) in new_ids])] if new_ids else []
        n = max((m for _, m in rest + new), default=0)
        if n == 0:
            raise AudioError(f"{path}: nothing to render: the song has no notes")
        block = 10 * SAMPLE_RATE

        def blocks(parts):
            files = [(open(p, "rb"), m) for p, m in parts]
            try:
                for a in range(0, n, block):
                    y = np.zeros((min(block, n - a), 2), np.float32)
                    for f, m in files:
                        k = max(0, min(len(y), m - a))
                        if k:
                            y[:k] += np.fromfile(f, dtype=np.float32, count=2 * k).reshape(k, 2)
                    yield y
            finally:
                for f, _ in files:
                    f.close()

        peak = max(float(np.abs(y).max()) for y in blocks(rest + new))
        scale = np.float32(PEAK / peak if peak > PEAK else 1.0)
        chosen = {"all": rest + new, "new": new, "rest": rest}[part]
        with atomic_path(path) as tmp:
            with sf.SoundFile(str(tmp), "w", SAMPLE_RATE, 2, subtype="PCM_16", format="WAV") as out:
                for y in blocks(chosen):
                    out.write(y * scale)

    def warm(self, entry: SongEntry) -> None:
        """Render the song as it is in the background (per stem, as ``write_wav`` mixes it), for its A/B and
        for the first take of any part."""
        def run():
            try:
                self.take_file(entry, None, ".wav")
            except Exception as e:  # noqa: BLE001 - it is asked for again when played, and says why then
                log.info("studio: could not render %s ahead: %s", entry.name, one_line(e))

        t = threading.Thread(target=run, daemon=True, name="stemfill-studio-warm")
        with self.state_lock:
            self.background = [b for b in self.background if b.is_alive()] + [t]
        t.start()

    def close(self, timeout: float = 10.0) -> None:
        """Wait (up to ``timeout`` seconds in all) for the background renders, so that none writes into the
        workdir while it is removed."""
        deadline = time.monotonic() + timeout
        for t in list(self.background):
            t.join(max(0.0, deadline - time.monotonic()))


def _stem_groups(tracks) -> list[list]:
    """``tracks`` by stem (drums, bass, guitar, other), in that order; empty groups left out."""
    from stemfill.song.stems import classify_track

    groups: dict[str, list] = {}
    for x in tracks:
        groups.setdefault(x.stem or classify_track(x), []).append(x)
    return [groups[k] for k in ("drums", "bass", "guitar", "other") if k in groups]


def _size(n: int) -> str:
    return f"{n / MB:g} MB" if n >= MB else f"{n / 1024:g} kB" if n >= 1024 else f"{n} bytes"


def _unlink(paths) -> None:
    for p in list(paths):
        Path(p).unlink(missing_ok=True)


def _remove_files(entry: SongEntry) -> None:
    _unlink(entry.files.values())
    for t in entry.takes.values():
        _unlink(t.files.values())
    entry.path.unlink(missing_ok=True)


# --- what the page sees ------------------------------------------------------------------------------------


def _notes(song, track) -> list[list[float]]:
    """[[start s, end s, pitch], ...] of a track, on the song's tempo map."""
    sec = _seconds_fn(song)
    return [[round(sec(n.start), 4), round(sec(n.end), 4), n.pitch] for n in track.notes]


def _seconds_fn(song):
    """ticks -> seconds, vectorised over the tempo map (Song.seconds walks it per call)."""
    import numpy as np

    times = np.array([t.time for t in song.tempos], dtype=float)
    qpm = np.array([t.qpm for t in song.tempos], dtype=float)
    spt = 60.0 / qpm / song.resolution  # seconds per tick in each tempo segment
    base = np.concatenate([[0.0], np.cumsum(np.diff(times) * spt[:-1])])

    def sec(tick: int) -> float:
        i = int(np.searchsorted(times, tick, side="right")) - 1
        i = max(i, 0)
        return float(base[i] + (tick - times[i]) * spt[i])

    return sec


def track_list(song, new_ids: set[int] | None = None) -> list[dict[str, Any]]:
    from stemfill.song.stems import classify_track

    out = []
    for i, t in enumerate(song.tracks):
        out.append({"index": i, "name": t.name, "stem": t.stem or classify_track(t), "program": t.program,
                    "drum": t.is_drum, "count": len(t.notes), "new": bool(new_ids and id(t) in new_ids),
                    "notes": _notes(song, t)})
    return out


def song_info(song, name: str) -> dict[str, Any]:
    """What the page draws: tracks with stems and notes (seconds), bar lines, meter, tempo, section changes."""
    import numpy as np

    from stemfill.generate.controls import BAR
    from stemfill.pianoroll.roll import encode, encode_context, n_steps
    from stemfill.generate.sections import section_starts
    from stemfill.song.stems import classify_song

    sec = _seconds_fn(song)
    bar_ticks = song.bar_starts() if song.end > 0 else [0]
    groups = classify_song(song)
    T = max(n_steps(song), 1)
    roll = encode(song, length=T, groups=groups)
    other = encode_context(song, length=T, groups=groups)
    grid_bars = section_starts(roll, np.ones((roll.shape[0], T), dtype=bool), other)
    # the roll's bars are BAR steps of 4/4; place each on the song's own bar lines by its time
    from stemfill.pianoroll.grid import STEPS_PER_BEAT

    sections = []
    for b in grid_bars:
        tick = b * BAR * song.resolution // STEPS_PER_BEAT
        k = int(np.searchsorted(bar_ticks, tick, side="right")) - 1
        if 0 < k < len(bar_ticks) and k not in sections:
            sections.append(k)
    ts = song.time_signatures[0]
    return {"name": name, "title": song.title or Path(name).stem, "qpm": round(song.tempos[0].qpm, 2),
            "meter": f"{ts.numerator}/{ts.denominator}", "bars": [round(sec(t), 4) for t in bar_ticks],
            "n_bars": song.n_bars, "seconds": round(sec(song.end), 4), "sections": sections,
            "warnings": list(song.warnings), "tracks": track_list(song)}


def take_summary(t: TakeEntry) -> dict[str, Any]:
    k = t.take
    return {"id": t.id, "options": t.options, "engine": k.engine, "key": k.key_name, "seconds": round(t.seconds, 3),
            "added": [{"name": a.name, "stem": a.stem, "count": len(a.notes)} for a in k.added]}


def take_detail(t: TakeEntry) -> dict[str, Any]:
    return dict(take_summary(t), tracks=track_list(t.take.song, {id(a) for a in t.take.added}))


def check_options(o: Any) -> dict[str, Any]:
    """The page's generate form -> plan_fill's arguments; Refusal on a wrong type (the values are checked
    by plan_fill itself, with the CLI's messages)."""
    if not isinstance(o, dict):
        raise Refusal(400, "expected a JSON object of options")
    stems = o.get("stems", o.get("add"))
    if isinstance(stems, str):
        stems = [stems]
    if not isinstance(stems, list) or not stems or not all(isinstance(s, str) for s in stems):
        raise StemfillError("nothing to add: name at least one stem (--add drums/bass/guitar)")

    def text(k: str) -> str | None:
        v = o.get(k)
        if v is None or (isinstance(v, str) and not v.strip()) or v == "auto" and k in ("style",):
            return None
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return str(v)
        if not isinstance(v, str):
            raise Refusal(400, f"{k}: expected text, got {type(v).__name__}")
        return v.strip()

    seed = o.get("seed", 0)
    if isinstance(seed, str) and seed.strip().lstrip("-").isdigit():
        seed = int(seed)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise Refusal(400, f"seed: expected a whole number, got {seed!r}")
    return {"stems": stems, "bars": text("bars"), "density": text("density"), "complexity": text("complexity"),
            "register": text("register"), "fills": text("fills"), "style": text("style"),
            "temperature": text("temperature"), "seed": seed, "replace": bool(o.get("replace", False)),
            "rests": _flag(o, "rests", True)}


def _flag(o: dict, k: str, default: bool) -> bool:
    """A yes/no option of the form (absent: ``default``); Refusal on anything but true or false."""
    v = o.get(k, default)
    if not isinstance(v, bool):
        raise Refusal(400, f"{k}: expected true or false, got {v!r}")
    return v


# --- the app ---------------------------------------------------------------------------------------------


def create_app(studio: Studio, *, first_song: str | None = None, allowed_hosts: list[str] | None = None) -> Starlette:
    """The ASGI app of ``studio``; ``first_song``: the id of a song opened on the command line;
    ``allowed_hosts``: the Host headers it answers (None: any), so that a web page cannot reach a local studio
    through a name of its own that resolves to 127.0.0.1 (DNS rebinding)."""

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def state(request: Request) -> Response:
        with studio.state_lock:  # a song may be opening in a worker thread
            songs = list(studio.songs.values())
        return JSONResponse({"songs": [{"id": e.id, "name": e.name} for e in songs],
                             "first": first_song if first_song in studio.songs else None,
                             "busy": studio.busy is not None, "waiting": studio.waiting,
                             "limits": {"score": studio.score_limit, "audio": studio.audio_limit,
                                        "takes": studio.takes_kept}})

    async def open_song(request: Request) -> Response:
        from stemfill.song.io import SONG_EXTS

        name = request.query_params.get("name", "")
        path = await studio.receive(request, name, SONG_EXTS, studio.score_limit, "scores")
        shown = Path(name).name
        try:
            entry = await run_in_threadpool(studio.add_song, path, shown)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return JSONResponse(dict(entry.info, id=entry.id, takes=[]))

    async def song(request: Request) -> Response:
        e = studio.get_song(request.path_params["sid"])
        return JSONResponse(dict(e.info, id=e.id, takes=[take_summary(t) for t in e.takes.values()]))

    async def takes(request: Request) -> Response:
        e = studio.get_song(request.path_params["sid"])
        if request.method == "GET":
            return JSONResponse({"takes": [take_summary(t) for t in e.takes.values()]})
        try:
            options = await request.json()
        except ValueError:
            raise Refusal(400, "expected a JSON object of options") from None
        t = await studio.generate(e, options)
        return JSONResponse(take_detail(t))

    async def take(request: Request) -> Response:
        e, t = studio.get_take(request.path_params["sid"], request.path_params["tid"])
        if request.method == "DELETE":
            with studio.state_lock:
                e.takes.pop(t.id, None)
            _unlink(t.files.values())
            return JSONResponse({"deleted": t.id, "takes": [take_summary(x) for x in e.takes.values()]})
        return JSONResponse(take_detail(t))

    async def download(request: Request) -> Response:
        sid, tid, ext = request.path_params["sid"], request.path_params["tid"], "." + request.path_params["ext"]
        if ext not in DOWNLOADS:
            raise Refusal(404, f"no {ext} download; choose {', '.join(DOWNLOADS)}")
        part = request.query_params.get("part", "all")
        if part not in PARTS:
            raise Refusal(400, f"part {part!r}: choose {', '.join(PARTS)}")
        if tid == "original":
            e, t = studio.get_song(sid), None
        else:
            e, t = studio.get_take(sid, tid)
        kind = ext if ext != ".wav" or part == "all" else f"{ext}:{part}"
        path = await run_in_threadpool(studio.take_file, e, t, kind)
        stem = Path(e.name).stem
        label = "original" if t is None else f"take{t.id}-" + "+".join(t.options["stems"])
        suffix = "" if part == "all" else f"-{part}"
        inline = request.query_params.get("inline") == "1"
        return FileResponse(path, filename=f"{stem}-{label}{suffix}{ext}",
                            content_disposition_type="inline" if inline else "attachment",
                            media_type={".mid": "audio/midi", ".gp5": "application/octet-stream",
                                        ".wav": "audio/wav"}[ext])

    async def audio_upload(request: Request) -> Response:
        from stemfill.audio import add

        name, prompt = request.query_params.get("name", ""), request.query_params.get("prompt", "").strip()
        if not prompt:
            raise Refusal(400, 'say what to add, e.g. "add reggae drums"')
        path = await studio.receive(request, name, AUDIO_EXTS, studio.audio_limit, "recordings")
        shown = Path(name).name
        out = studio.new_path(".wav")
        lines: list[str] = []

        def job():
            try:
                return add(path, out, prompt, soundfont=studio.soundfont, model=studio.model, log=lines.append)
            except StemfillError as e:
                raise StemfillError(studio.scrub(str(e), {path: shown, out: f"{Path(shown).stem}-out.wav"})) from None

        try:
            r = await studio.run_model(job, {"recording": shown})
        except BaseException:
            path.unlink(missing_ok=True)
            out.unlink(missing_ok=True)
            raise
        rid = secrets.token_hex(6)
        result = {"id": rid, "name": shown, "prompt": prompt, "stems": list(r.stems), "qpm": round(r.qpm, 1),
                  "beats_per_bar": r.beats_per_bar, "beats": [round(float(b), 3) for b in r.beats],
                  "notes_heard": r.notes_heard, "notes_added": r.notes_added, "seconds": round(r.seconds, 2),
                  "log": [studio.scrub(x, {path: shown}) for x in lines],
                  "new_notes": [[round(float(s), 3), int(p)] for s, p in r.midi_notes]}
        with studio.state_lock:
            studio.recordings[rid] = Recording(rid, shown, path, out, result)
            while len(studio.recordings) > studio.songs_kept:
                _, old = studio.recordings.popitem(last=False)
                _unlink([old.before, old.after])
        return JSONResponse(result)

    async def recording_file(request: Request) -> Response:
        rec = studio.recordings.get(request.path_params["rid"])
        which = request.path_params["which"]
        if rec is None or which not in ("before", "after"):
            raise Refusal(404, "no such recording in this session")
        path = rec.before if which == "before" else rec.after
        stem = Path(rec.name).stem
        return FileResponse(path, filename=f"{stem}-{which}{path.suffix}", content_disposition_type="inline")

    async def refused(request: Request, exc: Refusal) -> Response:
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    async def stemfill_error(request: Request, exc: StemfillError) -> Response:
        return JSONResponse({"error": studio.scrub(one_line(exc, 500))}, status_code=400)

    async def http_error(request: Request, exc: HTTPException) -> Response:
        words = {404: "not found", 405: "method not allowed"}.get(exc.status_code, exc.detail)
        return JSONResponse({"error": f"{request.url.path}: {words}"}, status_code=exc.status_code)

    async def crashed(request: Request, exc: Exception) -> Response:
        log.exception("studio: %s %s", request.method, request.url.path)
        return JSONResponse({"error": "the studio failed on this request: " + studio.scrub(one_line(exc, 300, with_type=True))},
                            status_code=500)

    routes = [
        Route("/", index),
        Route("/api/state", state),
        Route("/api/songs", open_song, methods=["POST"]),
        Route("/api/songs/{sid}", song),
        Route("/api/songs/{sid}/takes", takes, methods=["GET", "POST"]),
        Route("/api/songs/{sid}/takes/{tid}", take, methods=["GET", "DELETE"]),
        Route("/api/songs/{sid}/takes/{tid}/download.{ext}", download),
        Route("/api/audio", audio_upload, methods=["POST"]),
        Route("/api/audio/{rid}/{which}.wav", recording_file),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    handlers = {Refusal: refused, StemfillError: stemfill_error, HTTPException: http_error, Exception: crashed}
    middleware = []
    if allowed_hosts is not None:
        from starlette.middleware import Middleware
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts))
    return Starlette(routes=routes, exception_handlers=handlers, middleware=middleware)


def serve(song: str | Path | None = None, *, host: str = "127.0.0.1", port: int = 0, open_browser: bool = True,
          model: str | Path | None = None, soundfont: str | Path | None = None,
          echo: Callable[[str], None] = print, **limits) -> None:
    """Run the studio until Ctrl-C: read ``song`` (if given) first, bind ``host:port`` (0: a free port),
    print the URL, open the browser; the uploads' temporary folder is removed on the way out."""
    import shutil
    import socket
    import tempfile
    import webbrowser

    import uvicorn

    if model is not None and not Path(model).exists():
        raise StemfillError(f"{model}: no such model file or folder")
    d = tempfile.mkdtemp(prefix="stemfill-studio-")
    studio = Studio(d, model=model, soundfont=soundfont, warm=True, **limits)
    try:
        first = None
        if song is not None:
            from stemfill.song.io import read_song

            read_song(song)  # a bad file is the CLI's one-line error, before the server starts
            p = Path(song)
            copy = studio.new_path(p.suffix.lower())
            shutil.copyfile(p, copy)
            first = studio.add_song(copy, p.name).id
        local = ["127.0.0.1", "localhost", "::1", "[::1]"]
        app = create_app(studio, first_song=first,
                         allowed_hosts=None if host in ("0.0.0.0", "::", "") else sorted(set(local + [host])))
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(128)  # from now on a request waits for the server instead of being refused
        except OSError as e:
            sock.close()
            raise StemfillError(f"--host {host} --port {port}: cannot listen there: {e.strerror or e}") from None
        bound = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else ('[::1]' if host == '::' else shown)}:{bound}/"
        config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2)
        server = uvicorn.Server(config)
        echo(f"stemfill studio: {url}  (Ctrl-C to stop)")
        if open_browser:
            threading.Timer(0.5, lambda: webbrowser.open(url)).start()
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:  # uvicorn stops on Ctrl-C, then raises it again: that is the way out
            pass
        finally:
            sock.close()
    finally:
        studio.close()
        _remove_tree(Path(d))
    echo("stemfill studio: stopped; the uploads and takes of this session are removed")


def _remove_tree(path: Path, tries: int = 5) -> None:
    """Remove the session's folder; a file still being written into it (a render the OS has not let go of)
    is retried a few times, and what cannot be removed is named on stderr rather than failing the exit."""
    import shutil

    for i in range(tries):
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            return
        time.sleep(0.2 * (i + 1))
    log.warning("studio: could not remove %s; remove it by hand", path)
