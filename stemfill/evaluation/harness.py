"""The evaluation protocol: remove stems from real chunks, let a system fill them, score the result.

Cases (docs/evaluation.md):

* single ``<stem>``: chunks where the stem has notes and at least one other stem has notes;
  the stem is zeroed and filled from the others.
* pair ``<a>+<b>:<stem>``: chunks where all three stems have notes; a and b are zeroed and
  filled together; each of the two is scored under its own key.

Chunks are picked by a seeded permutation (``limit`` keeps its first N) and every batch gets
its own generator ``default_rng([seed, case, batch])``, so a system sees the same chunks and the
same random streams whatever else is evaluated beside it.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from stemfill.datasets.chunks import Chunks
from stemfill.errors import StemfillError
from stemfill.evaluation import metrics as M
from stemfill.evaluation import realism as R
from stemfill.pianoroll.grid import STEPS_PER_BEAT
from stemfill.song.song import STEMS

KINDS = ("single", "pair")  # the default cases; "triple" (all three missing, the other tracks heard) is asked for
CASE_KINDS = KINDS + ("triple",)
CHUNK_FILTERS = ("all", "with-context", "without-context")
# Headline metrics of the tables, with short column labels (every metric is in the JSON).
HEADLINE = {
    "agree/onset_F1": "onset F1", "agree/pc_beat_F1": "pc F1", "agree/frame_F1": "frame F1",
    "keyfree/pc_beat_F1": "pc F1 any key",
    "fit/TD": "TD", "fit/onset_F1_context": "ctx F1", "fit/root_agree": "root",
    "stat/EB/absdiff": "ΔEB", "stat/density/absdiff": "Δdens",
    "dist/OA_pitch": "OA pitch", "dist/OA_ioi": "OA ioi", "dist/FD": "FD", "fidelity/known_exact": "kept",
}


def legend(metrics=HEADLINE) -> str:
    return "; ".join(f"{v} = {k}" for k, v in metrics.items())


@dataclass
class Case:
    name: str  # "bass" or "drums+bass"
    missing: tuple[int, ...]  # channels zeroed
    idx: np.ndarray  # chunk indices

    def key(self, c: int) -> str:
        """Result key of the stem in channel c: the stem's name, or "<pair>:<stem>"."""
        return STEMS[c] if len(self.missing) == 1 else f"{self.name}:{STEMS[c]}"


def make_cases(present: np.ndarray, kinds=KINDS, heard: np.ndarray | None = None) -> list[Case]:
    """Cases from the (N, 3) table of which stems have notes in which chunk; ``heard`` (N,) bool: which chunks
    have other tracks to hear (the "triple" case takes those with all three stems; None: none)."""
    bad = set(kinds) - set(CASE_KINDS)
    if bad:
        raise StemfillError(f"unknown case kind(s) {sorted(bad)}; expected {CASE_KINDS}")
    C = present.shape[1]
    cases = []
    if "single" in kinds:
        for c in range(C):
            others = [o for o in range(C) if o != c]
            idx = np.flatnonzero(present[:, c] & present[:, others].any(axis=1))
            cases.append(Case(STEMS[c], (c,), idx))
    if "pair" in kinds:
        for a, b in itertools.combinations(range(C), 2):
            cases.append(Case(f"{STEMS[a]}+{STEMS[b]}", (a, b), np.flatnonzero(present.all(axis=1))))
    if "triple" in kinds:
        ok = present.all(axis=1) & (heard if heard is not None else np.zeros(len(present), bool))
        cases.append(Case("+".join(STEMS[:C]), tuple(range(C)), np.flatnonzero(ok)))
    return cases


def _heard(chunks: Chunks, sel: np.ndarray) -> np.ndarray | None:
    """(len(sel),) which selected chunks have other tracks (context planes with notes); None: the folder has none."""
    if chunks.context is None:
        return None
    return chunks.context[sel].reshape(len(sel), -1).any(axis=1)


def select(n: int, limit: int | None, seed: int) -> np.ndarray:
    """Sorted indices of the chunks evaluated: the first ``limit`` of a seeded permutation."""
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm if limit is None else perm[:max(0, limit)])


def count_instances(chunks: Chunks, kinds=KINDS, seed: int = 0, limit: int | None = None) -> int:
    """How many (chunk, case) fills ``evaluate`` makes: the total for a progress bar."""
    sel = select(len(chunks), limit, seed)
    return sum(len(c.idx) for c in make_cases(chunks.present[sel], kinds, _heard(chunks, sel) if "triple" in kinds else None))


def case_batches(chunks: Chunks, idx: np.ndarray, missing, ci: int, seed: int = 0, batch_size: int = 64):
    """The batches ``evaluate`` hands a system for case number ``ci`` (chunk indices ``idx``, channels
    ``missing`` zeroed): (truth, known (B, 3), masked truth, rng, other), the rng ``default_rng([seed, ci,
    batch])``, ``other`` the chunks' context planes (the song's other tracks; None where there are none)."""
    for bi, b0 in enumerate(range(0, len(idx), batch_size)):
        rows = idx[b0:b0 + batch_size]
        truth = chunks.rolls[rows]
        known = np.ones(truth.shape[:2], dtype=bool)
        known[:, list(missing)] = False
        masked = truth.copy()
        masked[:, list(missing)] = False
        other = chunks.context[rows] if chunks.context is not None else None
        yield truth, known, masked, np.random.default_rng([seed, ci, bi]), other


def evaluate(system, chunks: Chunks, kinds=KINDS, seed: int = 0, limit: int | None = None,
             batch_size: int = 64, progress: Callable[[int], None] | None = None,
             examples: list | None = None, n_examples: int = 0, realism: bool | str = False) -> dict:
    """Score one system. Returns {case key: {"n": count, "fill_seconds": s, metric: mean, ...}}.

    Means skip NaN ("undefined" instances); a metric undefined everywhere is None.
    ``progress(k)`` is called after each batch with its size. The first ``n_examples`` fills of
    each case are appended to ``examples`` as dicts (key, chunk, real, generated) for plotting.
    ``realism``: also run the classifier two-sample test (``realism.two_sample_accuracy`` on
    ``realism.segment_features`` of the filled vs the real stems, folds grouped by song, seeded with
    ``seed``; True: its default classifier, or one of ``realism.CLASSIFIERS`` by name) and add ``realism/accuracy``, ``realism/accuracy_std``, ``realism/folds``, the same test
    of real parts against other real parts of the same songs (``realism/control_accuracy``,
    ``realism/control_std``)
    and the tell-tale statistics ``telltale/<stat>/gen`` and ``telltale/<stat>/real``.
    """
    if len(chunks) == 0:
        raise StemfillError("no chunks to evaluate")
    if chunks.rolls.ndim != 4 or chunks.rolls.shape[1] != len(STEMS):
        raise StemfillError(f"chunks have shape {chunks.rolls.shape}; expected (N, {len(STEMS)}, pitches, steps)")
    spb = int(chunks.config.get("steps_per_beat", STEPS_PER_BEAT))
    if hasattr(system, "check"):
        system.check(chunks)
    classifier = _classifier(realism)
    sel = select(len(chunks), limit, seed)
    cases = make_cases(chunks.present[sel], kinds, _heard(chunks, sel) if "triple" in kinds else None)
    out: dict[str, dict] = {}
    for ci, case in enumerate(cases):
        idx = sel[case.idx]
        per: dict[int, dict[str, list]] = {c: {} for c in case.missing}
        values = {c: {"gen": {}, "real": {}} for c in case.missing}
        feats = {c: {"gen": [], "real": []} for c in case.missing}
        looks = {c: {"gen": [], "real": [], "gen_x": [], "real_x": []} for c in case.missing}  # realism inputs
        songs = chunks.song_index[idx]
        exact, seconds = [], 0.0
        batches = case_batches(chunks, idx, case.missing, ci, seed, batch_size)
        for bi, (truth, known, masked, rng, other) in enumerate(batches):
            t0 = time.perf_counter()
            if getattr(system, "needs_truth", False):
                filled = system.fill(masked, known, rng, truth=truth)
            elif getattr(system, "hears_context", False):
                filled = system.fill(masked, known, rng, other=other)
            else:
                filled = system.fill(masked, known, rng)
            seconds += time.perf_counter() - t0
            filled = np.asarray(filled)
            if filled.shape != truth.shape:
                raise StemfillError(f"system {system.name!r} returned shape {filled.shape}; expected {truth.shape}")
            filled = filled.astype(bool, copy=False)
            kept = [c for c in range(len(STEMS)) if c not in case.missing]
            exact.append((filled[:, kept] == truth[:, kept]).all(axis=(1, 2, 3)))
            for c in case.missing:
                for k, v in M.score_stem(filled, truth, c, spb).items():
                    per[c].setdefault(k, []).append(v)
                stem = STEMS[c]
                for side, x in (("gen", filled[:, c]), ("real", truth[:, c])):
                    for k, v in M.note_values(x, stem).items():
                        values[c][side].setdefault(k, []).append(v)
                    s = M.stem_stats(x, stem, spb)
                    feats[c][side].append(np.stack([s[k] for k in M.STATS[stem]], axis=1))
                if realism:
                    for side, r in (("gen", filled), ("real", truth)):
                        looks[c][side].append(R.segment_features(r, c, spb, other))
                        looks[c][f"{side}_x"].append(r[:, c])
            if examples is not None and bi == 0:
                for j in range(min(n_examples, len(truth))):
                    examples.append({"case": case.name, "chunk": int(idx[j]), "real": truth[j],
                                     "generated": filled[j], "missing": case.missing})
            if progress is not None:
                progress(len(truth))
        fidelity = float(np.concatenate(exact).mean()) if exact else None
        for c in case.missing:
            # fill_seconds: the case's fill time, shared by the stems it scores (case: whose time it is, so
            # that a sum over a system's results counts a two-stem case once: fill_seconds_total)
            res: dict = {"n": int(len(idx)), "fill_seconds": round(seconds, 3), "case": case.name}
            for k, parts in per[c].items():
                res[k] = _nanmean(np.concatenate(parts))
            for k in values[c]["real"]:
                g = np.concatenate(values[c]["gen"].get(k, [np.zeros(0)]))
                r = np.concatenate(values[c]["real"][k])
                res[f"dist/OA_{k}"] = M.overlap_area(g, r, M.OA_GRID[k]) if len(idx) else None
            if feats[c]["gen"]:
                res["dist/FD"] = M.frechet_distance(np.concatenate(feats[c]["gen"]), np.concatenate(feats[c]["real"]))
            res["fidelity/known_exact"] = fidelity
            if realism and looks[c]["gen"]:
                res.update(_realism(looks[c], songs, STEMS[c], spb, seed, classifier))
            out[case.key(c)] = res
    return out


def _classifier(realism: bool | str) -> str | None:
    """The two-sample test's classifier for ``realism`` (False: none; True: the default)."""
    if realism is False or realism is None:
        return None
    name = R.CLASSIFIERS[0] if realism is True else str(realism)
    if name not in R.CLASSIFIERS:
        raise StemfillError(f"unknown realism classifier {name!r}; expected one of {', '.join(R.CLASSIFIERS)}")
    return name


def _realism(looks: dict, songs: np.ndarray, stem: str, spb: int, seed: int, classifier: str) -> dict:
    """The realism keys of one filled stem: two-sample accuracy (real vs filled, grouped by song), the
    same test of real parts against other real parts of the same songs (the noise floor), and the tell-tale
    statistics of the filled and the real parts."""
    real = np.concatenate(looks["real"])
    t = R.two_sample_accuracy(real, np.concatenate(looks["gen"]), songs, seed, classifier=classifier)
    ctl = R.control_accuracy(real, songs, seed, classifier=classifier)
    res = {"realism/accuracy": t["accuracy"], "realism/accuracy_std": t["std"], "realism/folds": t["folds"],
           "realism/control_accuracy": ctl["accuracy"], "realism/control_std": ctl["std"]}
    for side in ("gen", "real"):
        for k, v in R.stem_telltales(np.concatenate(looks[f"{side}_x"]), stem, spb).items():
            res[f"telltale/{k}/{side}"] = v
    return res


def _nanmean(v: np.ndarray):
    v = np.asarray(v, dtype=np.float64)
    ok = np.isfinite(v)
    return float(v[ok].mean()) if ok.any() else None


def evaluate_many(systems: dict, chunks: Chunks, kinds=KINDS, seed: int = 0, limit: int | None = None,
                  batch_size: int = 64, progress: Callable[[str, int], None] | None = None,
                  n_examples: int = 0, realism: bool | str = False) -> tuple[dict, list]:
    """Score several systems on the same chunks. Returns (report, examples).

    report = {"config": {...}, "results": {system: {case key: {metric: value}}}}.
    ``realism``: add the classifier two-sample test and tell-tale statistics (``evaluate``).
    """
    report = {
        "config": {"seed": seed, "limit": limit, "kinds": list(kinds), "n_chunks": int(len(chunks)),
                   "n_selected": int(len(select(len(chunks), limit, seed))),
                   "chunk_shape": list(chunks.rolls.shape[1:]),
                   "steps_per_beat": int(chunks.config.get("steps_per_beat", STEPS_PER_BEAT)),
                   "qn_min_steps": M.QN_MIN_STEPS, "beats_per_bar": M.BEATS_PER_BAR,
                   "realism": _classifier(realism) or False},
        "results": {},
    }
    examples: list = []
    for name, system in systems.items():
        ex: list = []
        cb = None if progress is None else (lambda k, _n=name: progress(_n, k))
        report["results"][name] = evaluate(system, chunks, kinds, seed, limit, batch_size, cb, ex, n_examples,
                                           realism)
        examples += [dict(e, system=name) for e in ex]
    return report, examples


# --------------------------------------------------------------------------- output


def case_keys(report: dict) -> list[str]:
    keys: list[str] = []
    for res in report["results"].values():
        keys += [k for k in res if k not in keys]
    return keys


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, int):
        return str(v)
    return f"{v:.3f}"


def table_rows(report: dict, key: str, metrics=HEADLINE) -> tuple[list[str], list[list[str]]]:
    """Header and rows (one per system) of one case's table."""
    header = ["system", "n"] + [metrics[m] if isinstance(metrics, dict) else m for m in metrics]
    rows = []
    for name, res in report["results"].items():
        r = res.get(key)
        rows.append([name] + (["–"] * (len(header) - 1) if r is None else
                              [_fmt(r.get("n"))] + [_fmt(r.get(m)) for m in metrics]))
    return header, rows


TELLTALE_LABELS = {"toms": "toms", "cymbals": "cymbals", "hihats": "hi-hats", "repeat_rate": "repeat",
                   "median_interval": "med interval", "notes_per_onset": "notes/onset", "notes_per_bar": "notes/bar"}
REALISM_LEGEND = ("acc = realism/accuracy: held-out accuracy of a classifier telling the filled stems from the real "
                  "ones (0.5 = cannot tell, 1 = always can), folds grouped by song; ± = its std over the folds; "
                  "'real parts': the same test of real parts against other real parts of the same songs "
                  "(realism/control_accuracy, the noise floor). The other columns are tell-tale statistics of the "
                  "filled stems (telltale/<stat>/gen; 'real parts': telltale/<stat>/real): share of drum hits on "
                  "toms, cymbals, hi-hats; share of successive bass/guitar notes repeating a pitch, median "
                  "|interval| in semitones, notes per onset; notes a bar")


def realism_rows(report: dict, key: str) -> tuple[list[str], list[list[str]]] | None:
    """Header and rows of one case's realism table (one row per system, then the real parts' tell-tales),
    or None where the report has no realism numbers for ``key``."""
    have = {n: r[key] for n, r in report["results"].items() if key in r and "realism/accuracy" in r[key]}
    if not have:
        return None
    stats = [k.split("/")[1] for k in next(iter(have.values())) if k.startswith("telltale/") and k.endswith("/gen")]
    header = ["system", "n", "acc", "±"] + [TELLTALE_LABELS.get(k, k) for k in stats]
    rows = [[n, _fmt(r.get("n")), _fmt(r["realism/accuracy"]), _fmt(r.get("realism/accuracy_std"))]
            + [_fmt(r.get(f"telltale/{k}/gen")) for k in stats] for n, r in have.items()]
    first = next(iter(have.values()))
    rows.append(["real parts", _fmt(first.get("n")), _fmt(first.get("realism/control_accuracy")),
                 _fmt(first.get("realism/control_std"))] + [_fmt(first.get(f"telltale/{k}/real")) for k in stats])
    return header, rows


def fill_seconds_total(results: dict) -> float:
    """A system's fill time over all its cases ({case key: result}): each case's time once, though a
    two-stem case has a result per stem scored, each with the case's whole time."""
    per_case = {r.get("case", key): r.get("fill_seconds", 0.0) for key, r in results.items()}
    return float(sum(per_case.values()))


def markdown(report: dict, metrics=HEADLINE) -> str:
    """One markdown table per case: rows = systems, columns = headline metrics."""
    parts = []
    for key in case_keys(report):
        header, rows = table_rows(report, key, metrics)
        parts.append(f"### {key}\n")
        parts.append("| " + " | ".join(header) + " |")
        parts.append("|" + "|".join(["---"] + ["--:"] * (len(header) - 1)) + "|")
        parts += ["| " + " | ".join(r) + " |" for r in rows]
        parts.append("")
    parts.append(f"Columns: {legend(metrics)}." if isinstance(metrics, dict) else "")
    return "\n".join(parts)


def _json_safe(x):
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x) if np.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def print_report(report: dict, console=None) -> None:
    """One rich table per case (systems as rows, metrics as columns), then the legend."""
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=160)  # piped or captured: do not squeeze the tables into 80 columns
    for key in case_keys(report):
        header, rows = table_rows(report, key)
        table = Table(title=f"fill {key}", title_justify="left")
        for i, h in enumerate(header):
            table.add_column(h, justify="left" if i == 0 else "right")
        for r in rows:
            table.add_row(*r)
        console.print(table)
    console.print(f"[dim]{legend()}[/dim]")
    shown = False
    for key in case_keys(report):
        got = realism_rows(report, key)
        if got is None:
            continue
        header, rows = got
        table = Table(title=f"realism {key}", title_justify="left")
        for i, h in enumerate(header):
            table.add_column(h, justify="left" if i == 0 else "right")
        for r in rows:
            table.add_row(*r)
        console.print(table)
        shown = True
    if shown:
        console.print(f"[dim]{REALISM_LEGEND}[/dim]")


def write_json(report: dict, path: str | Path) -> Path:
    from stemfill.files import atomic_write_bytes

    atomic_write_bytes(path, (json.dumps(_json_safe(report), indent=1) + "\n").encode())
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)  # the temp file was private; give the report the usual mode
    return Path(path)


def plot_examples(examples: list, out_dir: str | Path, steps_per_beat: int = STEPS_PER_BEAT) -> list[Path]:
    """One PNG per example: the real chunk beside the filled one (all three channels)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    from stemfill.pianoroll.plot import plot_roll

    paths = []
    for e in examples:
        p = out_dir / f"{e['system']}-{e['case'].replace('+', '_')}-{e['chunk']}.png"
        title = f"{e['system']}: fill {e['case']}, chunk {e['chunk']}"
        plot_roll(e["real"], p, steps_per_beat, title=title, compare=e["generated"],
                  labels=("real", f"{e['system']} (filled: {e['case']})"))
        paths.append(p)
    return paths


# --------------------------------------------------------------------------- one call for the CLI and bench


def run(data: str | Path, split: str = "test", systems=("real", "random", "rule", "retrieval"),
        model: str | Path | None = None, limit: int | None = None, seed: int = 0, kinds=KINDS,
        batch_size: int = 64, progress_factory=None, n_examples: int = 0, steps: int | None = None,
        paper_models: str | Path | None = None, context: bool = True, chunk_filter: str = "all",
        realism: bool | str = False):
    """Load ``split`` (and the train split where a system needs it) of a chunks folder, build the
    systems and score them. ``model`` feeds the 'model' system, ``paper_models`` (a folder of
    drums/bass/guitar models, or a comma list) the 'paper' system. ``progress_factory(name, total)``
    returns a callable advanced by batch sizes. ``context``: give the model the song's other tracks
    (False: score it deaf to them). ``chunk_filter``: all, with-context or without-context (the chunks
    whose songs have other pitched tracks sounding in them, or not). ``realism``: add the classifier
    two-sample test and the tell-tale statistics per case and system (True, or a classifier's name). Returns (report, examples)."""
    from stemfill.datasets.chunks import BAND, load_chunks
    from stemfill.evaluation.baselines import SYSTEMS, get_system

    names = list(dict.fromkeys(systems))
    unknown = [n for n in names if n not in SYSTEMS]
    if unknown:
        raise StemfillError(f"unknown system(s) {', '.join(unknown)}; expected one of {', '.join(SYSTEMS)}")
    if not names:
        raise StemfillError("no systems to evaluate")
    chunks = load_chunks(data, split)
    if chunk_filter not in CHUNK_FILTERS:
        raise StemfillError(f"chunk filter {chunk_filter!r}: expected one of {', '.join(CHUNK_FILTERS)}")
    if chunk_filter != "all":
        has = chunks.context_or_empty().any(axis=(1, 2, 3))
        chunks = chunks.subset(has if chunk_filter == "with-context" else ~has)
    if not context:
        chunks = replace(chunks, context=None)
    if chunks.rolls.size == 0:
        raise StemfillError(f"{data}: split {split!r} has no chunks ({chunk_filter})")
    train = None
    if any(n in ("random", "retrieval") for n in names):
        train = load_chunks(data, "train", exclude=BAND if split == BAND else None)  # band takes train songs too
        if train.rolls.shape[2:] != chunks.rolls.shape[2:]:
            raise StemfillError(f"{data}: train chunks {train.rolls.shape[2:]} and {split} chunks "
                                f"{chunks.rolls.shape[2:]} differ in shape")
    built = {n: get_system(n, model_path=paper_models if n == "paper" else model, train_chunks=train, steps=steps,
                           seed=seed) for n in names}
    for s in built.values():
        if hasattr(s, "check"):
            s.check(chunks)
    progress = None
    if progress_factory is not None:
        total = count_instances(chunks, kinds, seed, limit)
        bars = {n: progress_factory(n, total) for n in names}
        progress = lambda name, k: bars[name](k)  # noqa: E731
    report, examples = evaluate_many(built, chunks, kinds, seed, limit, batch_size, progress, n_examples, realism)
    report["config"].update(data=str(data), split=split, model=None if model is None else str(model),
                            context=context, chunks=chunk_filter)
    if "paper" in names:
        report["config"]["paper_models"] = str(paper_models)
    return report, examples
