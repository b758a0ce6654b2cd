"""Edit instructions for triplets: an offline generator, and the paper's LLM prompt.

The paper (appendix A.1) captions each full-mix segment and asks GPT-3.5 Turbo for an
instruction of at most 7 words that uses an action word drawn uniformly from
ACTION_WORDS. ``offline_instruction`` imitates that without a network from what is known
about a song (genre tag, tempo, instrument names); ``LLMInstructor`` sends the paper's
prompt to any OpenAI-compatible chat endpoint, caching answers on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from stemfill.errors import AudioError, StemfillError
from stemfill.files import atomic_write_bytes

ACTION_WORDS = ("Insert", "Add", "Generate", "Enhance", "Put", "Augment")
MAX_WORDS = 7

# The paper's prompt (appendix A.1), copied with its wording and typos. The paper wrote it
# for drums and hard-coded "drum-less", "has no drums" and "the drums" in three places;
# here those say {stem} so that the same template serves every stem.
PROMPT_TEMPLATE = (
    "You are a professional music annotator that has been hired to write text prompts in a large scale music "
    "dataset to train a text-to-music generative AI model. You're one of the best in the industry for this job and "
    "have stellar reviews from other music labelling companies that have hired you in the past. Your captions "
    "should be truthful and accurate. The input and output of the text-to-music generative AI model are as "
    "follows.\n"
    "Input: The audio file of the background music + a text prompt describing what kind of instrument should be "
    "added to the given background music and in what style.\n"
    "Output: The audio file of the music modified with the addition of the instrument in accordance with the "
    "content of the text prompt.\n"
    "The following text explains a music piece that you are going to be working with now, so imagine you are "
    "listening this music: {caption}\n"
    "Then imagine this music without {stem}. Write a single sentence text prompt input for instructing a text to "
    "music generative AI model to generate this music, when this music without {stem} was given as a background "
    "music input. So this is not removing. You want to add {stem} to the {stem}-less version, while persuming the "
    "{stem}-less version is given. You should not say like \"remove a {stem} track\". Do not add or make up any "
    "extra information about music in the edit prompt other than the given explantion. Use information only from "
    "the explantion of the music. For the text prompt instructions you generate, you have to focus on explaining "
    "the style of the instrument we are adding; You do not have to explain the style of the background music if "
    "it is unnecessary for explaining the instrument we are adding. Make sure the edit instruction doesn't have "
    "more than 7 words. When creating the edit instruction, use the action word '{action_word}'. You don't need "
    "to mention that the music is {stem}-less, although it is optional. If you mention the the notion that the "
    "background track has no {stem}, you are able to mention it without using the phrase '{stem}-less'. Do not "
    "use the word 'energetic' to describe the {action_word}. If possible, try to include the genre of the song in "
    "your description of the {stem}."
)

_STEM_NOUN = {"drums": "drums", "bass": "bass line", "guitar": "guitar", "vocals": "vocals", "piano": "piano", "other": "accompaniment"}


def action_word(rng: np.random.Generator) -> str:
    return ACTION_WORDS[int(rng.integers(len(ACTION_WORDS)))]


def tempo_word(qpm: float) -> str:
    return "slow" if qpm < 85 else "mid-tempo" if qpm < 115 else "upbeat" if qpm < 150 else "fast"


def caption(*, stems=(), genre: str | None = None, qpm: float | None = None, instruments=(), title: str | None = None) -> str:
    """A plain caption from known facts, e.g. 'A rock song at 148 BPM with drums, bass and guitar (Distortion Guitar).'"""
    parts = ["A"]
    if genre:
        parts.append(genre.lower())
    parts.append("song" if not title else f"song ({title})")
    if qpm:
        parts.append(f"at {round(qpm)} BPM")
    if stems:
        s = list(stems)
        parts.append("with " + (", ".join(s[:-1]) + " and " + s[-1] if len(s) > 1 else s[0]))
    text = " ".join(parts)
    if instruments:
        text += " (" + ", ".join(instruments) + ")"
    return text + "."


def offline_instruction(stem: str, rng: np.random.Generator, *, genre: str | None = None, qpm: float | None = None,
                        instrument: str | None = None, action: str | None = None) -> tuple[str, str]:
    """``(instruction, action_word)``: e.g. 'Add fast punk drums', 'Insert Fretless Bass bass line at 96 BPM'.

    At most MAX_WORDS words; the action word always comes first and the stem noun is kept.
    """
    action = action or action_word(rng)
    noun = _STEM_NOUN.get(stem, stem)
    if instrument and stem not in ("drums",) and instrument.lower() not in noun:
        # a GM name like "Electric Guitar (clean)" -> "clean electric guitar"-ish, without repeating the noun
        words = instrument.replace("(", "").replace(")", "").lower().split()
        words = [w for w in words if w not in noun.split()]
        noun = " ".join(words[:2] + noun.split())
    descriptors: list[str] = []
    choice = int(rng.integers(3))  # 0: tempo word, 1: "at N BPM", 2: tempo word only without a genre
    if qpm and (choice == 0 or (choice == 2 and not genre)):
        descriptors.append(tempo_word(qpm))
    if genre:
        descriptors.append(genre.lower())
    words = [action] + " ".join(descriptors).split() + noun.split()
    if qpm and choice == 1 and len(words) + 3 <= MAX_WORDS:
        words += ["at", str(round(qpm)), "BPM"]
    while len(words) > MAX_WORDS and len(words) > 1 + len(noun.split()):
        del words[1]  # drop descriptors first
    return " ".join(words[:MAX_WORDS]), action


def build_prompt(stem: str, action: str, caption_text: str) -> str:
    return PROMPT_TEMPLATE.format(stem=stem, action_word=action, caption=caption_text)


class LLMInstructor:
    """Instructions from an OpenAI-compatible ``/chat/completions`` endpoint, cached by request hash.

    ``url`` is the base (``.../v1``) or the full ``.../chat/completions`` address; defaults
    come from STEMFILL_LLM_URL / STEMFILL_LLM_MODEL / STEMFILL_LLM_KEY. Failed calls are
    retried with exponential backoff; calls are spaced at least ``min_interval`` seconds.
    """

    def __init__(self, url: str | None = None, model: str | None = None, key: str | None = None, *,
                 cache_dir: str | os.PathLike | None = None, retries: int = 4, backoff: float = 1.0,
                 min_interval: float = 0.5, timeout: float = 60.0, temperature: float = 0.7):
        self.url = url or os.environ.get("STEMFILL_LLM_URL")
        self.model = model or os.environ.get("STEMFILL_LLM_MODEL") or "gpt-3.5-turbo"
        self.key = key or os.environ.get("STEMFILL_LLM_KEY")
        if not self.url:
            raise StemfillError("LLM instructions need an endpoint: pass --llm-url or set STEMFILL_LLM_URL")
        if not self.url.rstrip("/").endswith("/chat/completions"):
            self.url = self.url.rstrip("/") + "/chat/completions"
        default_cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "stemfill" / "llm"
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache
        self.retries, self.backoff, self.min_interval = retries, backoff, min_interval
        self.timeout, self.temperature = timeout, temperature
        self._last = 0.0
        self._lock = threading.Lock()

    def request_body(self, prompt: str) -> dict:
        return {"model": self.model, "messages": [{"role": "user", "content": prompt}], "temperature": self.temperature}

    def __call__(self, stem: str, action: str, caption_text: str) -> str:
        body = self.request_body(build_prompt(stem, action, caption_text))
        h = hashlib.sha256(json.dumps([self.url, body], sort_keys=True).encode()).hexdigest()
        cached = self.cache_dir / h[:2] / f"{h}.json"
        if cached.exists():
            try:
                return json.loads(cached.read_text())["instruction"]
            except (ValueError, KeyError):
                pass  # a damaged cache entry: ask again
        text = clean_instruction(self._post(body))
        atomic_write_bytes(cached, json.dumps({"instruction": text, "request": body}).encode())
        return text

    def _post(self, body: dict) -> str:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        last_error = ""
        for attempt in range(self.retries + 1):
            with self._lock:  # rate limit: space the calls
                wait = self._last + self.min_interval - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                self._last = time.monotonic()
            try:
                req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=self.timeout) as r:
                    out = json.loads(r.read().decode())
                return out["choices"][0]["message"]["content"]
            except urllib.error.HTTPError as e:
                last_error = f"HTTP {e.code} {e.reason}"
                if e.code < 500 and e.code != 429:
                    break  # a bad request or key will not get better
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                last_error = str(getattr(e, "reason", e))
            except (ValueError, KeyError, IndexError, TypeError) as e:
                last_error = f"unexpected response ({type(e).__name__}: {e})"
            if attempt < self.retries:
                time.sleep(self.backoff * 2**attempt)
        raise AudioError(f"{self.url}: LLM request failed: {last_error}")


def clean_instruction(text: str) -> str:
    """First line, quotes and trailing full stop removed, cut to MAX_WORDS words."""
    line = next((ln for ln in text.strip().splitlines() if ln.strip()), "").strip()
    line = line.strip("\"'“”‘’ ").rstrip(".")
    return " ".join(line.split()[:MAX_WORDS])
