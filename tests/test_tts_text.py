"""Text before synthesis: numbers, money, abbreviations, foreign scripts, sentence and lead
splitting; voice lookup."""

from __future__ import annotations

import pytest

from services.tts import text
from services.tts.voices import CHARACTER_VOICES, VOICES, resolve
from solami.errors import InvalidInput


@pytest.mark.parametrize(
    ("written", "spoken"),
    [
        ("It costs $3.50.", "It costs three dollars and fifty cents."),
        ("Only $1 and €2", "Only one dollar and two euros"),
        ("Dr. Smith met Mr. Jones", "Doctor Smith met Mister Jones"),
        ("We sold 12,500 cups", "We sold twelve thousand five hundred cups"),
        ("Pi is 3.14", "Pi is three point one four"),
        ("A 50% chance", "A fifty percent chance"),
        ("On the 21st and the 2nd", "On the twenty-first and the second"),
        ("Born in 1999, left in 2005", "Born in nineteen ninety-nine, left in two thousand five"),
        ("Music of the 1980s", "Music of the nineteen eighties"),
        ("Meet at 10:30 or 7:05 or 9:00", "Meet at ten thirty or seven oh five or nine o'clock"),
        ("It was -5 degrees", "It was minus five degrees"),
        ("Read pages 5-10", "Read pages five to ten"),
        ("Salt & pepper, e.g. spices", "Salt and pepper, for example spices"),
        ("Drive 100 km/h", "Drive one hundred kilometers per hour"),
        ("Ça va très bien, naïve café", "Ca va tres bien, naive cafe"),
        ("“Quoted” — dashed…", '"Quoted", dashed.'),
        ("Hello 你好 world 😀!", "Hello world!"),
        ("Hi\tthere\nfriend", "Hi there friend"),
    ],
)
def test_normalize_reads_text_as_spoken_english(written, spoken):
    assert text.normalize(written) == spoken


@pytest.mark.parametrize("unspeakable", ["", "   ", "你好世界", "😀🎉", "...", "∑ ≈ ±"])
def test_nothing_speakable_normalizes_to_empty(unspeakable):
    assert text.normalize(unspeakable) == ""


@pytest.mark.parametrize(
    ("n", "words"),
    [(0, "zero"), (13, "thirteen"), (40, "forty"), (99, "ninety-nine"), (101, "one hundred one"),
     (12_345, "twelve thousand three hundred forty-five"), (2_000_000_001, "two billion one")],
)  # fmt: skip
def test_number_words(n, words):
    assert text.number_words(n) == words


def test_ordinals_and_years():
    assert [text.ordinal_words(n) for n in (1, 2, 3, 5, 12, 20, 21, 100)] == [
        "first",
        "second",
        "third",
        "fifth",
        "twelfth",
        "twentieth",
        "twenty-first",
        "one hundredth",
    ]
    assert [text.year_words(y) for y in (1066, 1805, 1900, 2000, 2007, 2010, 2024)] == [
        "ten sixty-six",
        "eighteen oh five",
        "nineteen hundred",
        "two thousand",
        "two thousand seven",
        "twenty ten",
        "twenty twenty-four",
    ]


@pytest.mark.parametrize("control", ["\x00", "\x07", "\x1b", "\x7f", "\x85"])
def test_control_characters_are_refused(control):
    with pytest.raises(InvalidInput, match=f"U\\+{ord(control):04X} at position 5"):
        text.check(f"Hello{control} there")


def test_plain_whitespace_is_allowed():
    text.check("Hello\tthere\r\nfriend")


def test_sentences_split_after_abbreviations_are_expanded():
    spoken = text.normalize("Dr. Who is here. Is he? Yes! e.g. today.")
    assert text.split_sentences(spoken) == [
        "Doctor Who is here.",
        "Is he?",
        "Yes!",
        "for example today.",
    ]


def test_overlong_sentences_are_cut_at_clauses():
    sentence = ", ".join(["one two three four five six seven eight"] * 20) + "."
    parts = text.split_sentences(sentence)
    assert len(parts) > 1
    assert all(len(p) <= text.MAX_SENTENCE_CHARS for p in parts)
    assert " ".join(parts).replace(",", "") == sentence.replace(",", "")


def test_lead_split():
    long = "Hello there I am Samantha and I would love to show you a dance."
    assert text.lead_split(long, 5) == [
        "Hello there I am Samantha,",
        "and I would love to show you a dance.",
    ]
    clause = "Hello there, I am Samantha and I would love to show you a dance."
    assert text.lead_split(clause, 5)[0] == "Hello there,"
    assert text.lead_split("Hello there my dear friend.", 5) == ["Hello there my dear friend."]
    assert text.lead_split(long, 0) == [long]


def test_every_character_has_a_voice_and_names_are_case_insensitive():
    assert set(CHARACTER_VOICES) == {
        "User",
        "Samantha",
        "Batman",
        "Trump",
        "Link",
        "Banaya",
        "11-45-G",
    }
    assert len(set(CHARACTER_VOICES.values())) == len(CHARACTER_VOICES)
    assert resolve("samantha") == ("Samantha", VOICES["bright"])
    assert resolve("BATMAN", "kitten") == ("Batman", VOICES["kitten"])
    assert resolve("", "robot") == ("", VOICES["robot"])


@pytest.mark.parametrize(
    ("character", "voice", "message"),
    [("Joker", "", "unknown character"), ("User", "opera", "unknown voice"),
     ("", "", "names no character")],
)  # fmt: skip
def test_unknown_characters_and_voices_are_refused(character, voice, message):
    with pytest.raises(InvalidInput, match=message):
        resolve(character, voice)
