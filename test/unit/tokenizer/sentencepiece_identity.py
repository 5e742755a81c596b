#!/usr/bin/env python3
"""The SentencePiece identity test: a tokenizer.model through kvopt against
the Python `sentencepiece` package.

Trains two small SentencePiece BPE models (byte fallback, identity
normalization, as Llama-2's tokenizer.model is made) on the prose and code of
make_corpus.py, puts each in a Hugging Face folder beside tinystories-656k's
weights (no tokenizer.json, so the .model is what kvopt reads), compiles the
folder with `kvopt compile`, and compares the ids of the tokenizer the
artifact stores with sentencepiece's on the whole corpus (English, code,
numbers, non-Latin scripts, emoji, random code points): with and without
BOS/EOS, and decoded back.

The text of a control or unknown piece (<s>, </s>, <unk>) is written with
other brackets first: kvopt matches those as special tokens, as llama.cpp
and transformers do, where sentencepiece reads them as plain text.

usage: sentencepiece_identity.py TOOL KVOPT MODELS_DIR WORK_DIR
"""
import io
import json
import os
import re
import subprocess
import sys

import sentencepiece

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_corpus import build_corpus, prose_paragraphs, source_chunks  # noqa: E402
from tokenizer_identity import (Failure, Reader, first_difference, run_tool,  # noqa: E402
                                show, write_texts)

# Control and unknown pieces' text; \u2039 \u203a are single guillemets.
CONTROL_TEXT = re.compile(r"<(/?s|unk)>")

# tinystories-656k's vocabulary size, so that its weights fit.
VOCAB_SIZE = 2048

# name: (trainer options, tokenizer_config.json)
MODELS = {
    "llama2-style": (dict(split_digits=True),
                     {"add_bos_token": True, "add_eos_token": False}),
    "no-dummy-prefix": (dict(add_dummy_prefix=False, split_digits=False),
                        {"add_bos_token": False, "add_eos_token": True,
                         "eos_token": {"content": "</s>"}}),
}


def train(options):
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(prose_paragraphs() + source_chunks()),
        model_writer=model, model_type="bpe", vocab_size=VOCAB_SIZE,
        byte_fallback=True, normalization_rule_name="identity",
        remove_extra_whitespaces=False, max_sentence_length=1 << 20,
        num_threads=2, minloglevel=2, **options)
    return model.getvalue()


def make_folder(folder, models_dir, model, config):
    os.makedirs(folder, exist_ok=True)
    weights = os.path.join(models_dir, "tinystories-656k")
    for name in ("config.json", "model.safetensors"):
        target = os.path.join(folder, name)
        if not os.path.lexists(target):
            os.symlink(os.path.join(weights, name), target)
    with open(os.path.join(folder, "tokenizer.model"), "wb") as f:
        f.write(model)
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump(config, f)


def check(name, tool, artifact, sp, config, texts_path, texts):
    out = artifact + ".encoded"
    run_tool(tool, "encode", "--artifact", artifact, "--texts", texts_path,
             "--out", out)
    reader = Reader(out)
    bos = [sp.bos_id()] if config.get("add_bos_token") else []
    eos = [sp.eos_id()] if config.get("add_eos_token") else []
    plain_all = sp.encode(texts)
    tokens = round_trips = 0
    for text, want_plain in zip(texts, plain_all):
        ids = reader.ids()
        _kept, skipped, _streamed = reader.text(), reader.text(), reader.text()
        ids_plain = reader.ids()
        decoded_plain = reader.text()
        for got, want in ((ids, bos + want_plain + eos), (ids_plain, want_plain)):
            if got != want:
                i = first_difference(got, want)
                raise Failure("%s: ids differ for %s at token %d:\n  kvopt:         %s\n"
                              "  sentencepiece: %s" % (
                                  name, show(text), i, got[max(0, i - 5):i + 10],
                                  want[max(0, i - 5):i + 10]))
        want_text = sp.decode(want_plain)
        for got, what in ((decoded_plain, "decode"), (skipped, "decode skipping BOS/EOS")):
            if got != want_text:
                raise Failure("%s: %s differs for %s:\n  kvopt:         %s\n"
                              "  sentencepiece: %s" % (name, what, show(text), show(got),
                                                       show(want_text)))
        round_trips += decoded_plain == text
        tokens += len(ids)
    size = sum(len(t.encode("utf-8")) for t in texts)
    print("%s: %d texts, %d bytes, %d tokens identical to sentencepiece; decode "
          "identical; %d round trips exact" % (name, len(texts), size, tokens, round_trips))


def main():
    tool, kvopt, models_dir, work = sys.argv[1:5]
    os.makedirs(work, exist_ok=True)
    texts, documents = build_corpus()
    texts = [CONTROL_TEXT.sub("\u2039\\1\u203a", t) for t in texts + documents]
    texts_path = os.path.join(work, "texts.bin")
    write_texts(texts_path, texts)
    try:
        for name, (options, config) in MODELS.items():
            model = train(options)
            folder = os.path.join(work, name)
            make_folder(folder, models_dir, model, config)
            artifact = folder + ".kvpkg"
            result = subprocess.run([kvopt, "compile", folder, "-o", artifact],
                                    capture_output=True, text=True)
            if result.returncode != 0:
                raise Failure("kvopt compile %s failed: %s" % (folder, result.stderr.strip()))
            sp = sentencepiece.SentencePieceProcessor(model_proto=model)
            check(name, tool, artifact, sp, config, texts_path, texts)
    except Failure as failure:
        print("FAILED " + str(failure))
        return 1
    print("sentencepiece-identity: all identical")
    return 0


if __name__ == "__main__":
    sys.exit(main())
