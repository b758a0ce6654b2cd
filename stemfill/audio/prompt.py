"""Which stem a free-text prompt asks for: "add reggae drums" -> drums, style words ["reggae"].

The symbolic audio route (``stemfill audio --method symbolic``) fills a stem with the piano-roll
model, which knows three stems and no styles. ``parse_prompt`` finds the stem words ("drums",
"beat", "bassline", "rhythm guitar", ...) and returns every other content word as a style word,
so that the caller can say on stderr which words it did not use instead of dropping them silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from stemfill.errors import AudioError
from stemfill.song.song import STEMS

# phrases first: "bass drum" is drums, not bass
_STEM_PATTERNS: tuple[tuple[str, str], ...] = (
    ("drums", r"bass[\s-]*drums?|kick[\s-]*drums?|drum[\s-]*(?:kit|beat|track|part|groove)s?|drums?|drummer|drumming|"
              r"beats?|percussion|percussive|hi[\s-]*hats?|snares?|kicks?|cymbals?|breakbeats?"),
    ("bass", r"bass[\s-]*lines?|basslines?|bass[\s-]*guitars?|basses|bassist|bass|sub[\s-]*bass"),
    ("guitar", r"guitars?|guitarist|gtr|power[\s-]*chords?|strumming|riffs?"),
)
# instruments the route cannot add, for a clearer message than "names no stem"
_OTHER_INSTRUMENTS = re.compile(
    r"\b(vocals?|voice|singing|singer|choir|piano|keys|keyboards?|organ|synths?|strings|violins?|cello|"
    r"sax(?:ophone)?|trumpets?|horns?|brass|flutes?|melody|harmony|pads?)\b", re.I)
# edits the route cannot make: it only adds a stem (checked before the stem words, so "remove drums" is not "add drums")
_OTHER_EDITS = re.compile(
    r"\b(remov\w*|delet\w*|eras(?:e|ed|ing)|eliminat\w*|subtract\w*|mute\s+(?:the|all|its|their)|"
    r"strip\s+(?:out|away|the)|take\s+out|taking\s+out|get\s+rid\s+of|extract\w*|unmix\w*|replac\w*|swap\w*|"
    r"substitut\w*|exchang\w*|instead\s+of|turn\s+(?:up|down))\b", re.I)
# words that carry no style: verbs of the instruction, articles, fillers
_FILLER = frozenset("""
add adds adding insert inserting generate generating enhance put augment give make create write compose play playing
bring include layer lay throw let lets need want please can could would you me us it its in into on onto to of for
with and or some a an the new more extra track part stem stems layer line lines sound sounds song music mix this that
here there over under along alongside behind underneath backing accompanying accompaniment which also just
at by like style feel kind sort type
""".split())


@dataclass(frozen=True)
class Prompt:
    text: str
    stems: tuple[str, ...]  # in the order they are named, each once
    style_words: tuple[str, ...]  # content words that are neither stem words nor fillers

    @property
    def stem(self) -> str:
        return self.stems[0]


def check_prompt_action(text: str) -> None:
    """Refuse (one line) an empty prompt, or one asking for an edit other than adding a stem ("remove drums",
    "replace the guitar", "make the bass louder"): what every method of ``stemfill audio`` can do is add."""
    if not text or not text.strip():
        raise AudioError("prompt is empty; say which stem to add, e.g. 'add reggae drums'")
    m = _OTHER_EDITS.search(text)
    if m:
        raise AudioError(f"prompt {text.strip()!r}: this command only adds a stem ({', '.join(STEMS[:-1])} or "
                         f"{STEMS[-1]}) to a song; it does not remove, replace or change what is there "
                         "(e.g. 'add reggae drums')")


def parse_prompt(text: str) -> Prompt:
    """The stems a prompt names (drums / bass / guitar) and its other content words.

    Raises AudioError (one line) for an empty prompt, one asking to remove or replace something
    (``check_prompt_action``), or one that names no stem the route can add.
    """
    check_prompt_action(text)
    rest = text.lower()
    found: list[tuple[int, str]] = []
    for stem, pattern in _STEM_PATTERNS:
        for m in re.finditer(rf"\b(?:{pattern})\b", rest):
            found.append((m.start(), stem))
        rest = re.sub(rf"\b(?:{pattern})\b", " ", rest)  # a phrase is used once ("bass drum" is not also bass)
    stems = tuple(dict.fromkeys(s for _, s in sorted(found)))
    if not stems:
        other = _OTHER_INSTRUMENTS.search(text)
        if other:
            raise AudioError(f"prompt {text.strip()!r}: this route adds {', '.join(STEMS[:-1])} or {STEMS[-1]}, "
                             f"not {other.group(1).lower()}")
        raise AudioError(f"prompt {text.strip()!r} names no stem to add; say drums, bass or guitar "
                         "(e.g. 'add reggae drums', 'a funky bassline', 'rhythm guitar')")
    words = re.findall(r"[a-z0-9][a-z0-9'&+-]*", rest)
    style = tuple(dict.fromkeys(w for w in words if w not in _FILLER))
    return Prompt(text=text.strip(), stems=stems, style_words=style)
