#!/usr/bin/env python3
"""Builds the tokenizer identity test's text, deterministically.

Nothing is downloaded: English prose comes from the docstrings of Python's
standard library, source code from its .py files, and the rest is generated
with a fixed seed: numbers, words in CJK, Cyrillic, Arabic, Devanagari,
Hangul, Greek, Hebrew and Thai, emoji (skin tones, flags, keycaps, ZWJ
families), whitespace runs, contractions, special-token strings, and random
assigned code points (combining marks and controls included).

build_corpus() returns (texts, documents): a few thousand lines and
paragraphs, and a few whole documents mixing everything.
"""
import importlib
import inspect
import os
import random
import sysconfig
import unicodedata

SEED = 20240611

PROSE_MODULES = [
    "abc", "argparse", "asyncio", "base64", "bisect", "calendar", "collections",
    "contextlib", "csv", "dataclasses", "datetime", "decimal", "difflib",
    "email", "enum", "fractions", "functools", "gzip", "hashlib", "heapq",
    "html", "http.client", "inspect", "io", "ipaddress", "itertools", "json",
    "logging", "math", "mimetypes", "operator", "os", "pathlib", "pickle",
    "pprint", "queue", "random", "re", "shlex", "shutil", "socket", "sqlite3",
    "statistics", "string", "struct", "subprocess", "tarfile", "tempfile",
    "textwrap", "threading", "time", "typing", "unittest", "urllib.parse",
    "uuid", "warnings", "weakref", "zipfile",
]

SOURCE_FILES = [
    "argparse.py", "ast.py", "calendar.py", "csv.py", "dataclasses.py",
    "difflib.py", "fractions.py", "heapq.py", "json/decoder.py", "shlex.py",
    "statistics.py", "string.py", "textwrap.py", "tokenize.py",
]

SCRIPTS = {
    "cjk": [(0x4E00, 0x9FFF)],
    "kana": [(0x3041, 0x3096), (0x30A1, 0x30FA)],
    "cyrillic": [(0x0410, 0x044F), (0x0401, 0x0401), (0x0451, 0x0451)],
    "arabic": [(0x0621, 0x063A), (0x0641, 0x064A)],
    "devanagari": [(0x0905, 0x0939)],
    "hangul": [(0xAC00, 0xD7A3)],
    "greek": [(0x0391, 0x03A9), (0x03B1, 0x03C9)],
    "hebrew": [(0x05D0, 0x05EA)],
    "thai": [(0x0E01, 0x0E30)],
}
DEVANAGARI_SIGNS = [chr(c) for c in range(0x093E, 0x094D)] + ["\u0902", "\u0903"]
ARABIC_MARKS = [chr(c) for c in range(0x064B, 0x0653)]
CJK_PUNCT = ["\u3001", "\u3002", "\uff0c", "\uff01", "\u300c", "\u300d"]

EMOJI = [
    "\U0001F600", "\U0001F602", "\U0001F60D", "\U0001F914", "\U0001F680",
    "\U0001F389", "\u2764\ufe0f", "\u2728", "\U0001F525", "\U0001F44D",
    "\U0001F44D\U0001F3FD", "\U0001F44B\U0001F3FF", "\U0001F1EB\U0001F1F7",
    "\U0001F1EF\U0001F1F5", "1\ufe0f\u20e3", "#\ufe0f\u20e3",
    "\U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466",
    "\U0001F3F3\ufe0f\u200d\U0001F308", "\U0001F469\u200d\U0001F4BB",
    "\U0001F9D1\U0001F3FE\u200d\U0001F680", "\U0001F43B\u200d\u2744\ufe0f",
    "\u263a", "\u2639\ufe0e", "\U0001FAE0",
]

SPECIAL_STRINGS = [
    "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|start_story|>",
    "<|end_story|>", "<unk>", "<repo_name>", "<file_sep>", "<|im_start",
    "im_end|>", "<|", "|>", "<|im_end|><|im_start|>",
]

WHITESPACE = [" ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\n\n\n", "\r\n",
              " \n", "\n ", " \t ", "\u00a0", "\u3000", "\u2028", "\u2003",
              "\u000b", "\u000c", "\u0085", "    \n    "]

SHORT_WORDS = ["the", "a", "and", "Hello", "world", "x", "(", ")", "--", "...",
               "\"", "'", "\u2014", "\u00e9t\u00e9", "na\u0301ive"]

CONTRACTIONS = ["I'm", "don't", "they're", "we've", "you'll", "he'd", "it's",
                "IT'S", "We'LL", "THEY'RE", "o'clock", "'s", "'tis", "rock'n'roll",
                "it'\u017f", "l'\u00e9t\u00e9"]


def prose_paragraphs():
    paragraphs = []
    for name in PROSE_MODULES:
        module = importlib.import_module(name)
        docs = [inspect.getdoc(module) or ""]
        for _, member in sorted(vars(module).items()):
            if inspect.isfunction(member) or inspect.isclass(member):
                docs.append(inspect.getdoc(member) or "")
        for doc in docs:
            paragraphs.extend(p for p in doc.split("\n\n") if p.strip())
    return paragraphs


def source_chunks():
    root = sysconfig.get_paths()["stdlib"]
    chunks = []
    for name in SOURCE_FILES:
        with open(os.path.join(root, name), encoding="utf-8") as f:
            text = f.read()
        lines = text.split("\n")
        for start in range(0, len(lines), 12):
            chunks.append("\n".join(lines[start:start + 12]))
    return chunks


def assigned_code_points():
    return [c for c in range(0x110000)
            if unicodedata.category(chr(c)) not in ("Cn", "Cs")]


class Generator:
    def __init__(self, rng):
        self.rng = rng
        self.assigned = assigned_code_points()

    def script_word(self, script):
        rng = self.rng
        ranges = SCRIPTS[script]
        length = rng.randint(1, 8)
        chars = []
        for _ in range(length):
            lo, hi = rng.choice(ranges)
            chars.append(chr(rng.randint(lo, hi)))
            if script == "devanagari" and rng.random() < 0.5:
                chars.append(rng.choice(DEVANAGARI_SIGNS))
            if script == "arabic" and rng.random() < 0.2:
                chars.append(rng.choice(ARABIC_MARKS))
        return "".join(chars)

    def script_sentence(self):
        rng = self.rng
        script = rng.choice(sorted(SCRIPTS))
        sep = "" if script in ("cjk", "kana") else " "
        words = [self.script_word(script) for _ in range(rng.randint(2, 14))]
        if sep:
            end = rng.choice([".", "!", "?", "\u061f", "\u0964", ""])
        else:
            end = rng.choice(CJK_PUNCT)
        return sep.join(words) + end

    def number(self):
        rng = self.rng
        kind = rng.randrange(9)
        if kind == 0:
            return str(rng.randint(0, 10 ** rng.randint(1, 20)))
        if kind == 1:
            return "%.*f" % (rng.randint(1, 6), rng.uniform(-1e6, 1e6))
        if kind == 2:
            return "{:,}".format(rng.randint(1000, 10 ** 12))
        if kind == 3:
            return "%d-%02d-%02d" % (rng.randint(1900, 2100),
                                     rng.randint(1, 12), rng.randint(1, 28))
        if kind == 4:
            return "%.3e" % rng.uniform(-1e30, 1e30)
        if kind == 5:
            return "+1 (%03d) %03d-%04d" % (rng.randint(100, 999),
                                            rng.randint(100, 999),
                                            rng.randint(0, 9999))
        if kind == 6:
            return "0x%x" % rng.getrandbits(rng.randint(4, 64))
        if kind == 7:  # other scripts' digits: Arabic-Indic, Devanagari,
            # fullwidth, Thai, circled; fractions and Roman numerals
            zero = rng.choice(["\u0660", "\u0966", "\uff10", "\u0e50", "\u2460"])
            digits = [chr(ord(zero) + rng.randint(0, 9))
                      for _ in range(rng.randint(1, 6))]
            return "".join(digits) + rng.choice(["", "\u00bd", "\u2167"])
        return "v%d.%d.%d" % (rng.randint(0, 20), rng.randint(0, 99), rng.randint(0, 999))

    def random_chars(self):
        rng = self.rng
        return "".join(chr(rng.choice(self.assigned)) for _ in range(rng.randint(1, 24)))

    def mixed(self, prose):
        rng = self.rng
        parts = []
        for _ in range(rng.randint(3, 20)):
            kind = rng.randrange(10)
            if kind == 0:
                parts.append(rng.choice(prose)[:rng.randint(10, 200)])
            elif kind == 1:
                parts.append(self.script_sentence())
            elif kind == 2:
                parts.append("".join(rng.choice(EMOJI) for _ in range(rng.randint(1, 4))))
            elif kind == 3:
                parts.append(self.number())
            elif kind == 4:
                parts.append(rng.choice(WHITESPACE))
            elif kind == 5:
                parts.append(rng.choice(SPECIAL_STRINGS))
            elif kind == 6:
                parts.append(rng.choice(CONTRACTIONS))
            elif kind == 7:
                parts.append(self.random_chars())
            else:
                parts.append(rng.choice(SHORT_WORDS))
        joiner = rng.choice(["", " ", " ", "\n", rng.choice(WHITESPACE)])
        return joiner.join(parts)


def build_corpus():
    rng = random.Random(SEED)
    gen = Generator(rng)
    prose = prose_paragraphs()
    code = source_chunks()
    texts = []
    texts += prose[:1500]
    texts += code[:700]
    texts += [" ".join(gen.number() for _ in range(rng.randint(1, 8)))
              for _ in range(300)]
    texts += [gen.script_sentence() for _ in range(600)]
    texts += ["".join(rng.choice(EMOJI) + rng.choice(["", " ", "x", "\n"])
                      for _ in range(rng.randint(1, 10)))
              for _ in range(200)]
    texts += [rng.choice(WHITESPACE) + gen.mixed(prose) + rng.choice(WHITESPACE)
              for _ in range(200)]
    texts += ["".join(rng.choice(WHITESPACE) for _ in range(rng.randint(1, 6)))
              for _ in range(100)]
    texts += [rng.choice(SPECIAL_STRINGS) + rng.choice(["", " ", "Hi", "\n"])
              + rng.choice(SPECIAL_STRINGS) for _ in range(100)]
    texts += [gen.random_chars() for _ in range(300)]
    texts += [gen.mixed(prose) for _ in range(600)]
    texts += ["", " ", "a", "\n", "'", "''s", "  a", "a  ", "1", "12345678901234567890"]
    documents = []
    for _ in range(4):
        chunks = []
        for _ in range(250):
            kind = rng.randrange(4)
            if kind == 0:
                chunks.append(rng.choice(prose))
            elif kind == 1:
                chunks.append(rng.choice(code))
            else:
                chunks.append(gen.mixed(prose))
        documents.append("\n\n".join(chunks))
    return texts, documents


if __name__ == "__main__":
    texts, documents = build_corpus()
    size = sum(len(t.encode()) for t in texts + documents)
    print("%d texts, %d documents, %d bytes" % (len(texts), len(documents), size))
