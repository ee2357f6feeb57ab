"""Undo the obfuscations a prompt uses to hide its words from the n-gram guard.

The guard scores hashed character and word n-grams (``features.py``).  An
attacker who writes ``rаnsomwаre`` with a Cyrillic ``а``, puts a zero-width
space inside ``mal\\u200bware``, or base64-encodes the whole request produces
n-grams the model never saw with a harmful label.  ``views(text)`` returns the
texts to score for one input: its canonical form first, then the canonical
form of every payload decoded from it (at most ``MAX_EXTRA_VIEWS``).  The
caller scores each view and keeps each category's maximum.  Everything here is
deterministic, offline and pure Python.

``canonical(text)``, in this order:

1. Invisible characters are removed: zero-width spaces and joiners
   (U+200B-U+200D), direction marks and bidi embeddings, overrides and
   isolates (U+200E-U+200F, U+202A-U+202E, U+2066-U+2069, U+061C), word
   joiner and invisible operators (U+2060-U+2064), the BOM (U+FEFF), the soft
   hyphen (U+00AD), the combining grapheme joiner, Hangul fillers, Mongolian
   vowel separators, variation selectors (U+FE00-U+FE0F, U+E0100-U+E01EF) and
   Unicode tag characters (U+E0000-U+E007F).  They render as nothing, so
   removing them shows the text a person sees; inside a word they split it
   into n-grams of pieces.  Tag characters U+E0020-U+E007E are invisible
   copies of printable ASCII ("ASCII smuggling"): their runs are decoded and
   returned by ``views`` as a view of their own.  Stripping comes first so that
   a zero-width character between a letter and its combining accent does not
   keep step 2 from composing them.
2. Unicode NFKC: fullwidth letters (``ｈａｃｋ``), mathematical alphanumerics
   (``𝐡𝐚𝐜𝐤``), ligatures (``ﬁ``), circled and superscript forms fold to their
   plain equivalents.  Skipped (one C check) when the text is already NFKC.
3. Homoglyph folding: a non-Latin letter that looks like a Latin one (Cyrillic
   ``а е о р с х у і ѕ``, Greek ``ο ν ι ρ α``, Cherokee, Armenian, ...) is
   replaced by the ASCII letter it imitates, using the Unicode confusables
   data shipped by ``confusable-homoglyphs`` (only the single-letter, non-Latin
   entries that survive NFKC, plus a few look-alikes missing from it such as
   Cyrillic ``к`` and Greek ``κ``).  Genuine Russian or Greek text must not be
   turned into nonsense, so a letter is folded only
   - (a) inside a word (a run of ``\\w``) that also holds an ASCII letter and
     has no more other non-Latin letters than ASCII ones: a mixed-script
     word, which real prose does not contain; or
   - (b) inside a word made only of foldable look-alikes (``аре``, a short word
     an attacker replaced entirely) when the text as a whole is mostly
     Latin: its ASCII letters (counting the letters (a) folds) outnumber its
     other non-ASCII characters.
   Russian or Greek prose has no mixed words and is not mostly Latin, so it is
   left as it is.  The counts in (b) are taken so that canonical is idempotent:
   ``canonical(canonical(x)) == canonical(x)``.

Case is kept (the features lower-case).  Pure-ASCII text is its own canonical
form, so the first view of an ASCII prompt is the prompt itself and scores are
exactly those of the guard without this module.

Decoded views (``views``), each canonicalised, deduplicated, and kept only when
different from the views before it:

- tag smuggling: the ASCII carried by tag characters (step 1);
- base64, standard and URL-safe (runs of at least 16 characters, lines of a
  wrapped block joined), hex (at least 8 bytes: contiguous, or pairs separated
  by spaces, commas or colons, or written ``\\x48``/``0x48``): kept only when the
  bytes are valid UTF-8 and the text is readable (at least 8 characters, 95 %
  printable, 60 % letters and spaces).  Random API keys, hashes and UUIDs
  decode to bytes that fail these checks, so they add no view;
- percent-encoding (three or more ``%xx``): the whole text unquoted;
- ROT13, only when the text names it ("rot13", "rot-13", "rot 13", "caesar"):
  the whole text and each quoted segment of at least 8 characters, rotated;
- reversal, only when the text says "backwards", "reverse" or "reversed":
  the whole text reversed;
- leetspeak, when at least two words mix letters with ``4 3 1 0 $ 7 @``
  (``m4lw4r3``, ``p@$$w0rd``; not ``python3``, ``ipv4`` or ``100ms``, whose
  digits only lead or trail): the text with those words folded back
  (4→a, 3→e, 1→i, 0→o, $→s, 7→t, @→a).

Decoded views are themselves searched for one more level of encoding (base64
of hex, ROT13 of base64).

Speed: for a pure-ASCII text the canonical step is skipped (one ``isascii``), and each
decoder is guarded by a prefilter in C (substring tests, and ``find``/``count`` on the text's
bytes translated to character classes); a decoder's regex runs only where its prefilter fires.
Reversal and ROT13 need their keyword.  See ``bench/guard_normalise.py`` for the numbers.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata
from functools import lru_cache
from urllib.parse import unquote

MAX_EXTRA_VIEWS = 4
MIN_VIEW_CHARS = 8

# --- step 1: invisible characters -------------------------------------------------------------

_INVISIBLE_CHARS = (
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0"
    "\U000e0000-\U000e007f\U000e0100-\U000e01ef"
)
_INVISIBLE = re.compile(f"[{_INVISIBLE_CHARS}]+")
_TAG_RUN = re.compile("[\U000e0020-\U000e007e]+")
_TAG_OFFSET = 0xE0000

# --- step 3: homoglyphs -----------------------------------------------------------------------

# Look-alikes that the confusables data does not list as confusable with an ASCII letter
# (it maps only what is near-identical in most fonts), and overrides: palochka looks like l.
_EXTRA_FOLDS = {
    "к": "k", "К": "K", "κ": "k", "τ": "t", "η": "n", "ӏ": "l", "Ӏ": "I", "ѵ": "v", "Ѵ": "V",
    "ԍ": "G", "ʜ": "H",
    # The data folds capital-I look-alikes to "l" (I and l look alike); written inside a Latin
    # word they stand for I, and the features lower-case I to i, not l.
    "І": "I", "Ι": "I", "Ⲓ": "I",
}


def _build_fold_table() -> dict[str, str]:
    """Non-Latin letters that imitate an ASCII letter, from the Unicode confusables data."""
    from confusable_homoglyphs import utils

    table: dict[str, str] = {}
    for char, homoglyphs in utils.load("confusables.json").items():
        if len(char) != 1 or char.isascii() or not unicodedata.category(char).startswith("L"):
            continue
        if unicodedata.normalize("NFKC", char) != char:
            continue  # NFKC (step 2) has already replaced it
        if unicodedata.name(char, "").startswith("LATIN"):
            continue  # a Latin letter (ı, ɑ) is not a mixed-script trick; Turkish keeps its ı
        letters = [h["c"] for h in homoglyphs if len(h["c"]) == 1 and h["c"].isascii() and h["c"].isalpha()]
        if letters:
            table[char] = letters[0]
    table.update(_EXTRA_FOLDS)
    return table


FOLD_TABLE: dict[str, str] = _build_fold_table()
_FOLD_TRANS = str.maketrans(FOLD_TABLE)
# The re module tests a class of characters below U+10000 with one table look-up, but a class
# holding astral characters as a list, one comparison each; so the astral look-alikes (Warang
# Citi, Deseret, ...) get a class of their own behind a one-range test.
_FOLD_BMP = "".join(sorted(re.escape(c) for c in FOLD_TABLE if ord(c) < 0x10000))
_FOLD_ASTRAL = "".join(sorted(re.escape(c) for c in FOLD_TABLE if ord(c) >= 0x10000))
_HAS_FOLDABLE = re.compile(f"[{_FOLD_BMP}]|(?=[\U00010000-\U0010ffff])[{_FOLD_ASTRAL}]")
_WORD_TAIL = re.compile(r"\w*")
_ASCII_LETTER = re.compile("[A-Za-z]")
_NOT_LETTER_BYTES = bytes(b for b in range(128) if not chr(b).isalpha())

# --- decoders -------------------------------------------------------------------------------

_B64_CHARS = "A-Za-z0-9+/_-"
# A base64 block (or contiguous hex): a run of 16 or more, possibly wrapped over several lines.
# The lookbehind makes the search start only at the start of a run: linear time.
_B64_RUN = re.compile(
    rf"(?<![{_B64_CHARS}])[{_B64_CHARS}]{{16,}}(?:[ \t]*\r?\n[ \t]*[{_B64_CHARS}]{{4,}})*={{0,2}}")
_ALL_HEX = re.compile(r"(?:0x)?[0-9A-Fa-f]+")
# Hex bytes separated by spaces, commas or colons, or written \x48 / 0x48.
_SEP_HEX = re.compile(
    r"(?<![0-9A-Za-z])(?:(?:\\x|0x)?[0-9A-Fa-f]{2}(?:[ ,:;]{1,2}|(?=\\x))){7,}(?:\\x|0x)?[0-9A-Fa-f]{2}(?![0-9A-Za-z])")
_HEX_PAIR = re.compile(r"[0-9A-Fa-f]{2}")
_PCT = re.compile(r"%[0-9A-Fa-f]{2}")
_ROT_WORD = re.compile(r"rot[\s_-]?13|caesar")
_REVERSE_WORD = re.compile(r"backwards?|in reverse|reversed? (?:order|text|string|letters|words|it|this|the)")
_QUOTED = re.compile(r'"([^"\n]{8,})"|\'([^\'\n]{8,})\'|“([^”]{8,})”|‘([^’]{8,})’|`([^`]{8,})`|«([^»]{8,})»')
_LEET_CHARS = "4310$7@"
_LEET_TRANS = str.maketrans({"4": "a", "3": "e", "1": "i", "0": "o", "$": "s", "7": "t", "@": "a"})
# A letter next to a leet character: where a leet word may be.
_LEET_HINT = re.compile(r"[A-Za-z][4310$7@]|[4310$7@][A-Za-z]")
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789$@")
_TOKEN_TAIL = re.compile(r"[A-Za-z0-9$@]*")
_LONE_LEET = re.compile(r"(?<![A-Za-z0-9$@])[14](?![A-Za-z0-9$@])")
_ID_RUN = re.compile(rf"(?<![={_B64_CHARS}])[={_B64_CHARS}]{{16,}}")
_EDGE_DIGITS = re.compile(r"^[0-9]+|[0-9]+$")



def _table(classes: dict[str, bytes]) -> bytes:
    table = bytearray(b"." * 256)
    for chars, cls in classes.items():
        for c in chars:
            table[ord(c)] = cls[0]
    return bytes(table)


_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Byte-class maps for the prefilters: one ``bytes.translate`` and a few ``find``/``count`` calls
# (C loops) decide whether a decoder's regex needs to run at all.
_B64_CLASSES = _table({_LETTERS + "0123456789+/_-": b"b"})
_B64_NEEDLE = b"b" * 16
_HEX_CLASSES = _table({"0123456789abcdefABCDEF": b"h", " ,:;": b"s"})
_LEET_CLASSES = _table({_LETTERS: b"a", _LEET_CHARS: b"1"})


def canonical(text: str) -> str:
    """The canonical form of ``text``: invisible characters removed, NFKC, homoglyphs folded."""
    if text.isascii():
        return text
    return _canonicalise(text)[0]


def expanded(text: str) -> str:
    """What the guard's models read for ``text``: its canonical form and, after it, each decoded
    payload as a paragraph of its own.  Scored as one text, the wrapper ("decode this and do what
    it says") and what it hides are seen together, so a benign request in base64 and a harmful one
    differ; scored by paragraph, the decoded request is also seen alone."""
    return "\n\n".join(views(text))


def views(text: str) -> list[str]:
    """The texts to score for ``text``: its canonical form, then up to ``MAX_EXTRA_VIEWS``
    decoded payloads (canonicalised, distinct, readable)."""
    if text.isascii():
        decoded = _decoded(text)
        if not decoded:
            return [text]
    canon, smuggled = _canonicalise(text)
    out = [canon]
    seen = {canon}
    pending = [(canonical(s), 1) for s in smuggled]
    pending += [(v, 1) for v in _decoded(canon)]
    i = 0
    while i < len(pending) and len(out) <= MAX_EXTRA_VIEWS:
        view, depth = pending[i]
        i += 1
        view = canonical(view)
        if view in seen or len(view.strip()) < MIN_VIEW_CHARS:
            continue
        seen.add(view)
        out.append(view)
        if depth < 2:
            pending += [(v, depth + 1) for v in _decoded(view)]
    return out


# --- canonical ---------------------------------------------------------------------------------


def _canonicalise(text: str) -> tuple[str, list[str]]:
    """``canonical(text)`` and the ASCII texts smuggled in tag characters."""
    smuggled: list[str] = []
    if text.isascii():
        return text, smuggled
    if _INVISIBLE.search(text):
        for m in _TAG_RUN.finditer(text):
            decoded = "".join(chr(ord(c) - _TAG_OFFSET) for c in m.group())
            if len(decoded.strip()) >= MIN_VIEW_CHARS:
                smuggled.append(decoded)
        text = _INVISIBLE.sub("", text)
    if not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
        if _INVISIBLE.search(text):  # NFKC can expose a filler; strip and normalise once more
            text = unicodedata.normalize("NFKC", _INVISIBLE.sub("", text))
    if not text.isascii() and _HAS_FOLDABLE.search(text) and _ASCII_LETTER.search(text):
        text = _fold(text)
    return text, smuggled


@lru_cache(maxsize=4096)
def _word_counts(word: str) -> tuple[int, int, int]:
    """ASCII letters, foldable look-alikes and other non-ASCII letters of a word."""
    ascii_letters = foldable = other = 0
    for c in word:
        if c.isascii():
            ascii_letters += c.isalpha()
        elif c in FOLD_TABLE:
            foldable += 1
        elif c.isalpha():
            other += 1
    return ascii_letters, foldable, other


def _fold(text: str) -> str:
    """Step 3: fold look-alike letters in mixed-script words (and, in mostly Latin text,
    in words made only of look-alikes)."""
    mixed: list[tuple[int, int]] = []
    whole: list[tuple[int, int]] = []
    folded_in_mixed = 0
    end = 0
    for m in _HAS_FOLDABLE.finditer(text):  # each foldable letter, then the word around it
        if m.start() < end:
            continue
        start = m.start()
        while start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_"):
            start -= 1
        end = _WORD_TAIL.match(text, m.start()).end()
        a, f, o = _word_counts(text[start:end])
        if a and o <= a:
            mixed.append((start, end))
            folded_in_mixed += f
        elif not a and not o:
            whole.append((start, end))
    spans = mixed
    if whole:
        ascii_part = text.encode("ascii", "ignore")
        latin = len(ascii_part.translate(None, _NOT_LETTER_BYTES)) + folded_in_mixed
        others = len(text) - len(ascii_part) - folded_in_mixed
        if latin > others:
            spans = sorted(mixed + whole)
    if not spans:
        return text
    parts, last = [], 0
    for s, e in spans:
        parts.append(text[last:s])
        if e < len(text) and unicodedata.category(text[e]).startswith("M"):
            # A combining mark follows (marks are not \w): folding the letter under it would let
            # NFKC compose a new letter and change the words on a second pass, so it stays.
            parts.append(text[s:e - 1].translate(_FOLD_TRANS) + text[e - 1])
        else:
            parts.append(text[s:e].translate(_FOLD_TRANS))
        last = e
    parts.append(text[last:])
    return "".join(parts)


# --- decoded views ----------------------------------------------------------------------------


def _decoded(text: str) -> list[str]:
    """Every payload decoded from one canonical text, in a fixed order.  Each decoder is
    guarded by a substring test or one linear regex pass, so plain text costs little."""
    out: list[str] = []
    raw = text.encode("ascii", "replace")  # one byte per character: positions are kept
    if raw.translate(_B64_CLASSES).find(_B64_NEEDLE) >= 0:
        for m in _B64_RUN.finditer(text):
            run = m.group()
            if _ALL_HEX.fullmatch(run):
                got = _from_hex(run)
                if got:
                    out.append(got)
            elif run.lower() != run and run.upper() != run:  # base64 of text mixes cases
                out.extend(_from_base64(run))
    hexcls = raw.translate(_HEX_CLASSES)
    if "\\x" in text or "0x" in text or b"hhshhshh" in hexcls or b"hhsshhsshh" in hexcls:
        for m in _SEP_HEX.finditer(text):
            got = _from_hex(m.group())
            if got:
                out.append(got)
    if "%" in text and len(_PCT.findall(text)) >= 3:
        unq = unquote(text, errors="replace")
        if unq != text and "\ufffd" not in unq:
            out.append(unq)
    low = text.lower()
    if ("rot" in low or "caesar" in low) and _ROT_WORD.search(low):
        out.append(codecs.encode(text, "rot13"))
        for m in _QUOTED.finditer(text):
            seg = next(g for g in m.groups() if g is not None)
            out.append(codecs.encode(seg, "rot13"))
    if ("backward" in low or "revers" in low) and _REVERSE_WORD.search(low):
        out.append(text[::-1])
    leet = _deleet(text, raw.translate(_LEET_CLASSES))
    if leet is not None:
        out.append(leet)
    return out


def _readable(s: str) -> bool:
    n = len(s)
    if len(s.strip()) < MIN_VIEW_CHARS:
        return False
    printable = sum(1 for c in s if c.isprintable() or c in "\n\r\t")
    letters = sum(1 for c in s if c.isalpha() or c == " ")
    return printable >= 0.95 * n and letters >= 0.6 * n


def _utf8_readable(raw: bytes) -> str | None:
    try:
        s = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return s if _readable(s) else None


def _from_base64(run: str) -> list[str]:
    joined = "".join(run.split())
    got = _b64(joined)
    if got is not None:
        return [got]
    out = []
    pieces = run.split() if len(run.split()) > 1 else []
    if "/" in joined:  # a base64 payload inside a URL path: try each segment
        pieces += joined.split("/")
    for piece in pieces:
        if len(piece) >= 16:
            got = _b64(piece)
            if got is not None:
                out.append(got)
    return out


def _b64(s: str) -> str | None:
    s = s.rstrip("=")
    if len(s) % 4 == 1:
        return None
    if "-" in s or "_" in s:
        if "+" in s or "/" in s:
            return None
        s = s.replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(s + "=" * (-len(s) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return _utf8_readable(raw)


def _from_hex(run: str) -> str | None:
    cleaned = run.replace("\\x", " ").replace("0x", " ")
    if re.fullmatch(r"[0-9A-Fa-f]+", cleaned) and len(cleaned) % 2:
        return None  # an odd contiguous run is not bytes
    pairs = _HEX_PAIR.findall(cleaned)
    if len(pairs) < 8:
        return None
    return _utf8_readable(bytes.fromhex("".join(pairs)))


def _leet_word(token: str) -> bool:
    """Whether a token is clearly leetspeak: letters mixed with leet characters, not only
    leading or trailing digits (``python3``, ``100ms``), not an id or hash (long, or more
    digits than letters)."""
    if len(token) > 20:
        return False
    core = _EDGE_DIGITS.sub("", token)
    letters = sum(c.isalpha() for c in core)
    digits = sum(c.isdigit() for c in core)
    return letters > 0 and digits <= letters + core.count("$") + core.count("@") and any(
        c in _LEET_CHARS for c in core)


def _loose_leet_word(token: str) -> bool:
    """In a text already shown to be leetspeak, also short words such as ``d0``, ``7h3``, ``1$``
    and the lone ``1`` (I) and ``4`` (a)."""
    return len(token) <= 20 and (any(c.isalpha() or c in "$@" for c in token) or token in ("1", "4"))


def _token_at(text: str, pos: int) -> tuple[int, int]:
    """The run of letters, digits, ``$`` and ``@`` around ``pos``."""
    start = pos
    while start > 0 and text[start - 1] in _TOKEN_CHARS:
        start -= 1
    return start, _TOKEN_TAIL.match(text, pos).end()


def _deleet(text: str, cls: bytes) -> str | None:
    """The text with its leet words folded back, when it has at least two; ``cls`` is the text's
    bytes through ``_LEET_CLASSES`` (``a`` letter, ``1`` leet character)."""
    # Leet words have a leet character between letters (m4lw4r3, byp4$$3s); two such places at least.
    if cls.count(b"a1a") + cls.count(b"a11a") + cls.count(b"a111a") < 2:
        return None
    spans = sorted({_token_at(text, m.start()) for m in _LEET_HINT.finditer(text)})
    # A piece of a key, hash or base64 run (16 or more characters of the base64 alphabet) and an
    # ``@`` followed by a domain (an e-mail address) are not leetspeak.
    ids = [m.span() for m in _ID_RUN.finditer(text)] if any(e - s >= 8 for s, e in spans) else []
    spans = [(s, e) for s, e in spans
             if not ("@" in text[s:e] and text[e:e + 1] == ".") and not any(a <= s < b for a, b in ids)]
    if sum(_leet_word(text[s:e]) for s, e in spans) < 2:
        return None
    spans = [(s, e) for s, e in spans if _loose_leet_word(text[s:e])]
    spans += [m.span() for m in _LONE_LEET.finditer(text)]
    parts, last = [], 0
    for s, e in sorted(set(spans)):
        if s < last:
            continue
        parts.append(text[last:s])
        parts.append(text[s:e].translate(_LEET_TRANS))
        last = e
    parts.append(text[last:])
    return "".join(parts)
