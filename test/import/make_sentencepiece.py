#!/usr/bin/env python3
"""Writes Hugging Face folders whose tokenizer is a SentencePiece
tokenizer.model, one valid and many that kvopt must refuse.

usage: make_sentencepiece.py OUT_DIR WEIGHTS_DIR

Each OUT_DIR/<case>/ holds config.json and model.safetensors linked from
WEIGHTS_DIR and a tokenizer.model (plus tokenizer_config.json for the cases
about it). The ModelProto is written field by field from SentencePiece's
documented field numbers, so that cases can hold values that no
SentencePiece tool would write (types out of range, NaN scores, bad UTF-8).
"""
import json
import os
import struct
import sys

METASPACE = "\u2581"


def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def number(field, value):
    return varint(field << 3) + varint(int(value))


def real(field, value):
    return varint(field << 3 | 5) + struct.pack("<f", value)


def text(field, value):
    data = value.encode("utf-8") if isinstance(value, str) else value
    return varint(field << 3 | 2) + varint(len(data)) + data


def piece(value, score=0.0, kind=1):
    """ModelProto.pieces (1): piece (1), score (2), type (3)."""
    return text(1, text(1, value) + real(2, score) + number(3, kind))


NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
WORDS = [METASPACE, "a", "b", "c", METASPACE + "a", "ab", METASPACE + "ab"]


def pieces(drop=(), extra=()):
    specials = [("<unk>", UNKNOWN), ("<s>", CONTROL), ("</s>", CONTROL)]
    out = [piece(p, 0.0, k) for p, k in specials if p not in drop]
    out += [piece("<0x%02X>" % b, 0.0, BYTE) for b in range(256)
            if "<0x%02X>" % b not in drop]
    out += [piece(w, -float(i), NORMAL) for i, w in enumerate(WORDS) if w not in drop]
    return b"".join(out) + b"".join(extra)


def trainer(model_type=2, byte_fallback=True, **more):
    """TrainerSpec (2): model_type (3), byte_fallback (35), and more."""
    fields = number(3, model_type) + number(35, byte_fallback)
    numbers = {"treat_whitespace_as_suffix": 24}
    texts = {"bos_piece": 46, "eos_piece": 47}
    for key, value in more.items():
        fields += number(numbers[key], value) if key in numbers else text(texts[key], value)
    return text(2, fields)


def normalizer(field=3, **values):
    """NormalizerSpec (3, or 5 for the denormalizer)."""
    spec = {"name": "identity", "add_dummy_prefix": True,
            "remove_extra_whitespaces": False, "escape_whitespaces": True}
    spec.update(values)
    numbers = {"add_dummy_prefix": 3, "remove_extra_whitespaces": 4,
               "escape_whitespaces": 5}
    texts = {"name": 1, "precompiled_charsmap": 2, "normalization_rule_tsv": 6}
    body = b""
    for key, value in spec.items():
        body += number(numbers[key], value) if key in numbers else text(texts[key], value)
    return text(field, body)


def model(pieces_bytes=None, trainer_bytes=None, normalizer_bytes=None, more=b""):
    return ((pieces() if pieces_bytes is None else pieces_bytes) +
            (trainer() if trainer_bytes is None else trainer_bytes) +
            (normalizer() if normalizer_bytes is None else normalizer_bytes) + more)


def cases():
    """name: (tokenizer.model bytes, tokenizer_config.json or None)."""
    many = piece("a") * ((1 << 20) + 1)
    return {
        "valid": (model(), {"add_bos_token": True, "add_eos_token": False}),
        "not-a-model": (b"\xff\xff\xff\xff", None),
        "unigram": (model(trainer_bytes=trainer(model_type=1)), None),
        "no-trainer-spec": (model(trainer_bytes=b""), None),
        "word": (model(trainer_bytes=trainer(model_type=3)), None),
        "model-type-9": (model(trainer_bytes=trainer(model_type=9)), None),
        "whitespace-suffix": (model(trainer_bytes=trainer(treat_whitespace_as_suffix=1)), None),
        "no-byte-fallback": (model(trainer_bytes=trainer(byte_fallback=False)), None),
        "charsmap": (model(normalizer_bytes=normalizer(name="nmt_nfkc",
                                                       precompiled_charsmap=b"\1\2\3")), None),
        "rule-tsv": (model(normalizer_bytes=normalizer(normalization_rule_tsv="41\t61\n")), None),
        "extra-whitespaces": (model(normalizer_bytes=normalizer(remove_extra_whitespaces=True)),
                              None),
        "no-escape": (model(normalizer_bytes=normalizer(escape_whitespaces=False)), None),
        "denormalizer": (model(more=normalizer(5, precompiled_charsmap=b"\1")), None),
        "no-pieces": (model(pieces_bytes=b""), None),
        "too-many-pieces": (model(pieces_bytes=many), None),
        "empty-piece": (model(pieces_bytes=pieces(extra=[piece("")])), None),
        "long-piece": (model(pieces_bytes=pieces(extra=[piece("x" * 1025)])), None),
        "bad-utf8": (model(pieces_bytes=pieces(extra=[piece(b"\xc3\x28")])), None),
        "type-9": (model(pieces_bytes=pieces(extra=[piece("x", 0.0, 9)])), None),
        "nan-score": (model(pieces_bytes=pieces(extra=[piece("x", float("nan"))])), None),
        "user-defined": (model(pieces_bytes=pieces(extra=[piece("<sep>", 0.0, USER_DEFINED)])),
                         None),
        "unused": (model(pieces_bytes=pieces(extra=[piece("x", 0.0, UNUSED)])), None),
        "byte-spelling": (model(pieces_bytes=pieces(extra=[piece("<0x0a>", 0.0, BYTE)])), None),
        "two-unknown": (model(pieces_bytes=pieces(extra=[piece("<unk2>", 0.0, UNKNOWN)])), None),
        "no-unknown": (model(pieces_bytes=pieces(drop=["<unk>"])), None),
        "missing-byte": (model(pieces_bytes=pieces(drop=["<0x41>"])), None),
        "duplicate": (model(pieces_bytes=pieces(extra=[piece("ab")])), None),
        "reachable-byte": (model(pieces_bytes=pieces(extra=[piece("<0x41")])), None),
        "reachable-control": (model(pieces_bytes=pieces(
            extra=[piece(METASPACE + "<x>", 0.0, CONTROL), piece(METASPACE + "<x")])), None),
        "no-bos": (model(trainer_bytes=trainer(bos_piece="<bos>")), None),
        "no-eos": (model(pieces_bytes=pieces(drop=["</s>"])), None),
        "config-flag": (model(), {"add_bos_token": "yes"}),
        "config-token": (model(), {"eos_token": "<|im_end|>"}),
        "config-token-kind": (model(), {"bos_token": 1}),
        "config-template": (model(), {"chat_template": 7}),
        "config-not-object": (model(), []),
        "config-names-bos": (model(trainer_bytes=trainer(bos_piece="<bos>")),
                          {"bos_token": "<s>", "add_bos_token": True}),
    }


def main():
    out, weights = sys.argv[1:3]
    for name, (data, config) in cases().items():
        folder = os.path.join(out, name)
        os.makedirs(folder, exist_ok=True)
        for link in ("config.json", "model.safetensors"):
            target = os.path.join(folder, link)
            if not os.path.lexists(target):
                os.symlink(os.path.join(os.path.abspath(weights), link), target)
        with open(os.path.join(folder, "tokenizer.model"), "wb") as f:
            f.write(data)
        if config is not None:
            with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
                json.dump(config, f)


if __name__ == "__main__":
    main()
