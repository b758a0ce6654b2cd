"""How well does each system fill a missing stem? Runs the evaluation protocol on a test split.

    python bench/quality.py [--data CHUNKS] [--model CKPT] [--paper-models DIR] [--limit N] [--seed S]
                            [--out docs/results.md]

Without ``--data`` the corpus (../shared/data/corpus) is converted once into chunks/quality-corpus
with `stemfill convert`'s defaults (resumable: a second run does no work). Systems: real, random,
rule, retrieval, plus model (the shipped default unless ``--model`` names another; ``--no-model`` skips it), plus paper (the paper's three per-instrument
models) when ``--paper-models`` is given or bench/paper-models/ holds them (``--no-paper`` skips it). Writes the markdown tables, the command
and the wall time to ``--out`` and the full report (every metric) beside it as JSON. Sections of an
existing ``--out`` that it does not write (``## `` headings: phrases, realism, written from other
benches) are kept at the end.
Protocol and metric definitions: docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "data" / "corpus"
CACHE = ROOT / "chunks" / "quality-corpus"
DEFAULT_MODEL = ROOT / "stemfill" / "models" / "default"
PAPER_MODELS = ROOT / "bench" / "paper-models"  # drums/, bass/, guitar/ (see its README.md)


def ensure_chunks(data: Path | None) -> Path:
    if data is not None:
        return data
    from stemfill.datasets.convert import convert

    t0 = time.perf_counter()
    rep = convert([CORPUS], CACHE, jobs=None, log=lambda line: print(line, file=sys.stderr))
    print(f"chunks: {CACHE} ({rep.converted} converted now, {rep.done} already done, "
          f"{time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    return CACHE


def _sampling(model: str) -> str:
    """' (sampling: ...)' from a model folder's config.json, or '' when it has none."""
    import json

    from stemfill.pianoroll.model import split_sampling

    p = Path(model) / "config.json"
    if not p.is_file():
        return ""
    cfg = json.loads(p.read_text())
    d = split_sampling(cfg)["sampling"] if "diffusion" in cfg else {}
    return (f" (sampling: {d.get('sample_steps')} step(s), guidance {d.get('guidance')}, decode "
            f"{d.get('decode', 'threshold')}, {d.get('candidates', 1)} candidate(s))")


def kept_sections(old: str) -> str:
    """The hand-written part of an existing results file: from its first ``## `` heading to the end
    (this script writes only ``### `` case tables under its header)."""
    for i, line in enumerate(old.splitlines(keepends=True)):
        if line.startswith("## "):
            return "".join(old.splitlines(keepends=True)[i:])
    return ""


def _commit() -> str:
    """The commit measured on (short hash, "+ uncommitted changes" where the tree differs), or "unknown"."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes" if dirty else "")


def _rel(path: str) -> str:
    p = Path(path).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, help="chunks folder (default: convert the corpus into chunks/quality-corpus)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL if (DEFAULT_MODEL / "model.safetensors").exists() else None,
                    help="checkpoint for the 'model' system (default: the shipped stemfill/models/default)")
    ap.add_argument("--no-model", action="store_true", help="leave out the 'model' system")
    ap.add_argument("--paper-models", help="folder with drums/, bass/, guitar/ per-stem models (or three comma-separated "
                    "model folders) for the 'paper' system (default: bench/paper-models if it holds all three)")
    ap.add_argument("--no-paper", action="store_true", help="leave out the 'paper' system")
    ap.add_argument("--steps", type=int, help="denoising steps for the model(s) (default: each model's own)")
    ap.add_argument("--limit", type=int, help="evaluate only N chunks (seeded pick)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results.md")
    args = ap.parse_args(argv)

    from stemfill.errors import StemfillError
    from stemfill.evaluation import harness as H

    command = " ".join(["python bench/quality.py"] + [shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)])
    try:
        data = ensure_chunks(args.data)
        paper = None if args.no_paper else args.paper_models
        if paper is None and not args.no_paper and all((PAPER_MODELS / s / "config.json").exists()
                                                       for s in ("drums", "bass", "guitar")):
            paper = str(PAPER_MODELS)
        systems = ["real", "random", "rule", "retrieval"] + (["model"] if args.model and not args.no_model else []) + (["paper"] if paper else [])
        t0 = time.perf_counter()
        last = {"t": 0.0}

        def factory(name, total):
            done = {"n": 0}

            def tick(k):
                done["n"] += k
                now = time.perf_counter()
                if now - last["t"] > 10 or done["n"] == total:
                    last["t"] = now
                    print(f"{name}: {done['n']}/{total} fills ({now - t0:.0f} s)", file=sys.stderr)
            return tick

        report, _ = H.run(data, args.split, systems, args.model, args.limit, args.seed,
                          progress_factory=factory, steps=args.steps, paper_models=paper)
        wall = time.perf_counter() - t0
    except StemfillError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1

    cfg = report["config"]
    report["config"]["wall_seconds"] = round(wall, 1)
    json_path = args.out.with_suffix(".json")
    H.write_json(report, json_path)
    seconds = {n: round(H.fill_seconds_total(res), 1) for n, res in report["results"].items()}  # a case once
    text = "\n".join([
        "# Stem-filling quality",
        "",
        "Written by `bench/quality.py`; protocol and metric definitions in [evaluation.md](evaluation.md).",
        "",
        f"- command: `{command}`",
        f"- data: `{_rel(cfg['data'])}` split `{cfg['split']}`: {cfg['n_chunks']} chunks, {cfg['n_selected']} evaluated "
        f"(seed {cfg['seed']}), chunk shape {cfg['chunk_shape']} at {cfg['steps_per_beat']} steps per beat",
        f"- model: `{_rel(cfg['model'])}`{_sampling(cfg['model'])}" if cfg.get("model") else "- model: none given (baselines only)",
        *([f"- paper: per-instrument models `{', '.join(_rel(x) for x in cfg['paper_models'].split(','))}` "
           "(one Atassi model per stem, chained drums -> bass -> guitar; bench/paper-models/README.md)"]
          if cfg.get("paper_models") else []),
        f"- wall time: {wall:.1f} s on {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs "
        f"(fill time per system: {', '.join(f'{k} {v} s' for k, v in seconds.items())})",
        f"- measured on: commit {_commit()}",
        f"- full report: [{json_path.name}]({json_path.name})",
        "",
        "Each table: rows = systems, columns = headline metrics for one case (`<stem>`: that stem removed; "
        "`<a>+<b>:<stem>`: both removed, scoring one of them). The agreement metrics (onset F1, pc F1, "
        "frame F1) are the ones the model must beat the baselines on; `real` is the ceiling and `random` the floor.",
        "",
        H.markdown(report),
    ])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    kept = kept_sections(args.out.read_text()) if args.out.is_file() else ""
    args.out.write_text(text + "\n" + ("\n" + kept if kept else ""))
    print(f"wrote {args.out} and {json_path} ({wall:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
