"""The docs say what the code does: their example commands run (or take every option they show), and the
output lines they quote are lines the code prints."""

from __future__ import annotations

import ast
import re
import shlex
from functools import lru_cache
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stemfill.cli import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]  # docs/history/ is history: not checked
runner = CliRunner()
FIELD = "\x00"  # a format field of the code: one word (no spaces) in the line it prints
ANY = "\x01"  # an ellipsis in a doc's quote: any text


def _commands() -> list[tuple[str, list[str]]]:
    """Every `stemfill SUB ...` the docs show (code blocks, indented blocks, inline code), continuation
    lines joined: (doc name, argv after "stemfill")."""
    out = []
    for doc in DOCS:
        text = re.sub(r"\\\n\s*", " ", doc.read_text())
        snippets = re.findall(r"`([^`\n]+)`", text) + [l for l in text.splitlines() if l.startswith(("    ", "stemfill", ".venv"))]
        for snip in snippets:
            for m in re.finditer(r"(?:^|[\s/(])stemfill ([a-z][a-z-]*)((?: [^;&|`]*)?)", snip):
                try:
                    args = shlex.split(m.group(2).split("#")[0])
                except ValueError:
                    args = m.group(2).split()
                out.append((doc.name, [m.group(1), *args]))
    return out


GROUPS = {"library"}  # commands with subcommands: `stemfill library build ...`


@lru_cache(maxsize=None)
def _help(*sub: str) -> str:
    r = runner.invoke(app, [*sub, "--help"], terminal_width=200, env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert r.exit_code == 0, f"stemfill {' '.join(sub)} --help: {r.output}"
    return r.output


def test_every_documented_command_exists_and_takes_the_options_shown():
    cmds = _commands()
    subs = {argv[0] for _, argv in cmds}
    assert {"midi", "convert", "train", "eval", "audio", "info", "plot"} <= subs, subs  # the parser finds them
    wrong = []
    for doc, argv in cmds:
        if argv[0] in GROUPS and len(argv) < 2:
            continue  # the group named in prose ("`stemfill library`")
        text = _help(*argv[:2]) if argv[0] in GROUPS else _help(argv[0])
        for opt in (a.split("=")[0] for a in argv[1:] if re.fullmatch(r"--[a-z][a-z0-9-]*(=.*)?", a)):
            if opt not in text:
                wrong.append(f"{doc}: stemfill {' '.join(argv)}: {opt} is not an option of `stemfill {argv[0]}`")
    assert not wrong, "\n".join(wrong)


def test_readme_quick_start_runs_as_shown(tmp_path):
    """README's first command (the shipped model, no download): it writes both files and says which engine ran."""
    from stemfill.cli import ENGINE_WORDS

    out, png = tmp_path / "riff-with-bass.mid", tmp_path / "riff-with-bass.png"
    assert "stemfill midi examples/riff.mid --add bass -o riff-with-bass.mid --plot riff-with-bass.png" in (
        ROOT / "README.md").read_text()
    r = runner.invoke(app, ["midi", str(ROOT / "examples" / "riff.mid"), "--add", "bass", "-o", str(out),
                            "--plot", str(png)])
    assert r.exit_code == 0, r.output
    assert out.stat().st_size > 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    first = r.output.splitlines()[0]
    assert first.startswith(f"wrote {out} with ") and any(w in first for w in ENGINE_WORDS.values()), first
    assert re.search(r"added Bass \(stemfill\) \(\d+ notes\)", first), first


# --- quoted output lines ------------------------------------------------------------------------------


def _pattern(node) -> str | None:
    """A string literal or f-string of the code as a pattern: its text, FIELD for each format field."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else FIELD for v in node.values)
    return None


@lru_cache(maxsize=1)
def _code_patterns() -> tuple[str, ...]:
    out = set()
    for path in (ROOT / "stemfill").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            p = _pattern(node)
            if p and len(p) > 8:
                out.add(p)
    return tuple(out)


def _can_be_equal(quote: str, code: str) -> bool:
    """Whether the code pattern can print a line the quote pattern matches (ANY in the quote: any text;
    FIELD in the code: one word, no spaces)."""
    @lru_cache(maxsize=None)
    def f(i: int, j: int) -> bool:
        if i == len(quote) and j == len(code):
            return True
        if i < len(quote) and quote[i] == ANY and (f(i + 1, j) or (j < len(code) and f(i, j + 1))):
            return True
        if j < len(code) and code[j] == FIELD and (f(i, j + 1) or (
                i < len(quote) and quote[i] not in (ANY, " ") and f(i + 1, j))):
            return True
        return (i < len(quote) and j < len(code) and quote[i] == code[j] and quote[i] not in (ANY, FIELD)
                and f(i + 1, j + 1))

    return f(0, 0)


def printed_by_the_code(quote: str) -> bool:
    """Whether one string literal or f-string of stemfill/ can print ``quote`` ("..." in it: any text)."""
    q = re.sub(r"\s*(\.\.\.|…)\s*", ANY, quote)
    head = q.split(ANY)[0][:6]
    return any(_can_be_equal(q, p) for p in _code_patterns()
               if not head or head in p.replace(FIELD, "") or p[0] == FIELD)


# (doc, quote): lines the docs say the program prints
QUOTES = [
    ("README.md", "style: reggae drums (asked of the model as a reference groove: docs/controls.md)"),
    ("docs/audio.md", "style words not used: dreamy (only drum styles are known: ...)"),
    ("docs/design.md", "warning: PATH: ..."),
]


@pytest.mark.parametrize("doc,quote", QUOTES)
def test_quoted_output_lines_are_printed_by_the_code(doc, quote):
    text = re.sub(r"\s+", " ", (ROOT / doc).read_text())
    assert quote in text, f"{doc} no longer quotes {quote!r}: update QUOTES"
    assert printed_by_the_code(quote), f"{doc} quotes {quote!r}, which no string in stemfill/ prints"


def test_the_matcher_tells_printed_lines_from_others():
    assert printed_by_the_code("style: funk drums (asked of the model as a reference groove: docs/controls.md)")
    assert not printed_by_the_code("style words not used: reggae")  # the line the README used to quote
    assert not printed_by_the_code("style: reggae drums (asked of the model as a reference)")
    assert _can_be_equal("warning: a.mid: " + ANY, "warning: " + FIELD + ": " + FIELD)
    assert not _can_be_equal("style: reggae drums (x)", "style: " + FIELD + " (x)")  # a field is one word


def test_the_method_line_the_readme_quotes(monkeypatch):
    """README: `method: symbolic: the paper's model ... is not in the local Hugging Face cache ...`, as the CLI
    builds it (f"method: {chosen}: {why}") where the paper's model is not cached."""
    from stemfill.audio import symbolic

    readme = re.sub(r"\s+", " ", (ROOT / "README.md").read_text())
    quote = "method: symbolic: the paper's model ... is not in the local Hugging Face cache ..."
    assert quote in readme
    monkeypatch.setattr(symbolic, "paper_model_cached", lambda: False)
    chosen, why = symbolic.choose_method("auto")
    line = f"method: {chosen}: {why}"
    assert re.fullmatch(".*".join(re.escape(p.strip()) for p in quote.split("...")), line), line
    assert _can_be_equal(re.sub(r"\s*\.\.\.\s*", ANY, quote), line)
