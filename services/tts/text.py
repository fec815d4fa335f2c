"""Text before synthesis: checked, normalised to speakable English, split into sentences.

The voices speak English. Normalisation reads numbers, money, percentages, times, ordinals,
years and common abbreviations as words; strips accents from Latin letters ("Ça va" -> "Ca
va"); drops what an English voice cannot say (other scripts, emoji, stray symbols). Control
characters are refused: they mean the caller sent something other than text.
"""

from __future__ import annotations

import re
import unicodedata

from solami.errors import InvalidInput

# Whitespace controls that plain text may contain; every other control character is refused.
_TEXT_CONTROLS = frozenset("\n\r\t")
# A sentence longer than this is cut at clause punctuation or spaces, in characters.
MAX_SENTENCE_CHARS = 300
# Words a lead phrase leaves at least for the rest of its sentence.
MIN_REST_WORDS = 3

_ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
)  # fmt: skip
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL_ENDINGS = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
    "nine": "ninth", "twelve": "twelfth",
}  # fmt: skip
_ABBREVIATIONS = {
    "Mr": "Mister", "Mrs": "Missus", "Ms": "Miz", "Dr": "Doctor", "Prof": "Professor",
    "Jr": "Junior", "Sr": "Senior", "St": "Saint", "Mt": "Mount", "Lt": "Lieutenant",
    "Capt": "Captain", "Sgt": "Sergeant", "Ave": "Avenue", "vs": "versus", "etc": "et cetera",
    "approx": "approximately", "dept": "department", "min": "minutes", "sec": "seconds",
}  # fmt: skip
_LATIN_ABBREVIATIONS = {"e.g.": "for example", "i.e.": "that is", "a.m.": "A M", "p.m.": "P M"}
_UNITS = {
    "km/h": "kilometers per hour", "mph": "miles per hour", "km": "kilometers",
    "kg": "kilograms", "cm": "centimeters", "mm": "millimeters", "°C": "degrees Celsius",
    "°F": "degrees Fahrenheit", "°": "degrees", "ms": "milliseconds",
}  # fmt: skip
_CURRENCIES = {"$": ("dollar", "cent"), "€": ("euro", "cent"), "£": ("pound", "penny")}
_SYMBOLS = {"&": " and ", "+": " plus ", "=": " equals ", "@": " at ", "/": " ", "_": " "}
_TYPOGRAPHY = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": ", "})
_YEAR_CUES = frozenset(
    ("in", "since", "from", "until", "till", "by", "before", "after", "year", "of", "circa")
)
_SPEAKABLE = re.compile(r"[^A-Za-z0-9\s.,!?;:'\"()\-]")


def check(text: str) -> None:
    """Raises InvalidInput when ``text`` holds control characters."""
    for position, char in enumerate(text):
        if char not in _TEXT_CONTROLS and unicodedata.category(char) == "Cc":
            raise InvalidInput(
                f"text contains the control character U+{ord(char):04X} at position "
                f"{position}: send plain text (newlines and tabs are allowed)"
            )


def number_words(n: int) -> str:
    """A cardinal number in words ("twenty-one")."""
    if n < 0:
        return "minus " + number_words(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{_ONES[hundreds]} hundred" + (f" {number_words(rest)}" if rest else "")
    if n >= 10**15:
        return " ".join(_ONES[int(d)] for d in str(n))
    for value, name in _SCALES:
        if n >= value:
            high, rest = divmod(n, value)
            return f"{number_words(high)} {name}" + (f" {number_words(rest)}" if rest else "")
    raise AssertionError(n)


def ordinal_words(n: int) -> str:
    """An ordinal number in words ("twenty-first")."""
    words = number_words(n)
    head, sep, last = words.rpartition("-" if "-" in words.split(" ")[-1] else " ")
    if last in _ORDINAL_ENDINGS:
        last = _ORDINAL_ENDINGS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return head + sep + last


def year_words(n: int) -> str:
    """A year as it is read ("nineteen ninety-nine", "two thousand five")."""
    high, low = divmod(n, 100)
    if high % 10 == 0 and low < 10:
        return number_words(n)
    if low == 0:
        return f"{number_words(high)} hundred"
    return f"{number_words(high)} {'oh ' if low < 10 else ''}{number_words(low)}"


def _decimal(match: re.Match[str]) -> str:
    whole, fraction = match.group(1), match.group(2)
    return f"{number_words(int(whole))} point {' '.join(_ONES[int(d)] for d in fraction)}"


def _money(match: re.Match[str]) -> str:
    unit, sub_unit = _CURRENCIES[match.group(1)]
    amount = int(match.group(2).replace(",", ""))
    cents = int((match.group(3) or "0").ljust(2, "0"))
    plural = "pence" if sub_unit == "penny" else f"{sub_unit}s"
    spoken = f"{number_words(amount)} {unit}{'' if amount == 1 else 's'}"
    if cents:
        spoken += f" and {number_words(cents)} {sub_unit if cents == 1 else plural}"
    return f" {spoken} "


def _clock(match: re.Match[str]) -> str:
    hours, minutes = int(match.group(1)), int(match.group(2))
    if minutes == 0:
        return f"{number_words(hours)} o'clock"
    return f"{number_words(hours)} {'oh ' if minutes < 10 else ''}{number_words(minutes)}"


def _decade(match: re.Match[str]) -> str:
    year = year_words(int(match.group(1)))
    return year[:-1] + "ies" if year.endswith("y") else year + "s"


def _integer(match: re.Match[str]) -> str:
    digits = match.group(0).replace(",", "")
    n = int(digits)
    before = match.string[: match.start()].split()
    if len(digits) == 4 and 1100 <= n <= 2099 and before and before[-1].lower() in _YEAR_CUES:
        return year_words(n)
    return number_words(n)


def _expand_numbers(text: str) -> str:
    text = re.sub(r"([$€£])\s?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?\b", _money, text)
    text = re.sub(r"(\d+(?:\.\d+)?)\s?%", r"\1 percent", text)
    text = re.sub(r"\b(\d{1,2}):([0-5]\d)\b", _clock, text)
    text = re.sub(r"\b(\d{4})s\b", _decade, text)
    text = re.sub(r"\b(\d+)(?:st|nd|rd|th)\b", lambda m: ordinal_words(int(m.group(1))), text)
    text = re.sub(r"(\d)\s?-\s?(\d)", r"\1 to \2", text)
    text = re.sub(r"(?<![\w.])-(\d)", r"minus \1", text)
    text = re.sub(r"\b(\d+)\.(\d+)\b", _decimal, text)
    return re.sub(r"\d{1,3}(?:,\d{3})+(?!\d)|\d+", _integer, text)


def normalize(text: str) -> str:
    """Speakable English for ``text`` (which passed ``check``); may be empty."""
    text = unicodedata.normalize("NFKC", text).translate(_TYPOGRAPHY).replace("…", "...")
    text = "".join(" " if c.isspace() else c for c in text if unicodedata.category(c) != "Cf")
    for written, spoken in _LATIN_ABBREVIATIONS.items():
        text = re.sub(rf"(?<!\w){re.escape(written)}", f" {spoken} ", text, flags=re.IGNORECASE)
    for written, spoken in _ABBREVIATIONS.items():
        text = re.sub(rf"\b{written}\.(?=\s|$)", spoken, text)
    for written, spoken in _UNITS.items():
        text = re.sub(rf"(?<=\d)\s?{re.escape(written)}(?![A-Za-z])", f" {spoken}", text)
    text = re.sub(r"#\s?(?=\d)", " number ", text)
    text = _expand_numbers(text)
    for symbol, spoken in _SYMBOLS.items():
        text = text.replace(symbol, spoken)
    text = unicodedata.normalize("NFD", text)
    text = "".join(c for c in text if unicodedata.category(c) != "Mn")
    text = _SPEAKABLE.sub(" ", text)
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s+([.,!?;:])", r"\1", text)
    text = re.sub(r"([.,!?;:])[.,!?;:]*(?=[.,!?;:])", "", text).strip(" ,;:")
    return text if re.search(r"[A-Za-z]", text) else ""


def split_sentences(text: str) -> list[str]:
    """Sentences of normalised ``text``; overlong ones are cut at clauses or spaces."""
    sentences = []
    for sentence in re.split(r"(?<=[.!?])[\"')]*\s+", text):
        sentence = sentence.strip()
        while len(sentence) > MAX_SENTENCE_CHARS:
            window = sentence[:MAX_SENTENCE_CHARS]
            cut = max(window.rfind(", "), window.rfind("; "), window.rfind(": "))
            cut = cut + 1 if cut > 0 else window.rfind(" ")
            cut = cut if cut > 0 else MAX_SENTENCE_CHARS
            sentences.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if re.search(r"[A-Za-z]", sentence):
            sentences.append(sentence)
    return sentences


def lead_split(sentence: str, lead_words: int) -> list[str]:
    """``sentence`` as a short lead phrase and the rest, so the first audio can start early.

    The cut goes after a clause mark within the first few words, else after ``lead_words``
    words (marked with a comma so the voice keeps a continuing intonation)."""
    words = sentence.split()
    if lead_words <= 0 or len(words) < lead_words + MIN_REST_WORDS:
        return [sentence]
    for i in range(1, min(len(words) - MIN_REST_WORDS, lead_words + 2)):
        if words[i][-1] in ",;:":
            return [" ".join(words[: i + 1]), " ".join(words[i + 1 :])]
    head = " ".join(words[:lead_words])
    return [head if head[-1] in ",;:" else head + ",", " ".join(words[lead_words:])]


def spoken_words(text: str) -> list[str]:
    """The words of normalised ``text`` without punctuation."""
    return [w for w in (word.strip(".,!?;:'\"()-") for word in text.split()) if w]
