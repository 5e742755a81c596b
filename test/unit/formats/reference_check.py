#!/usr/bin/env python3
"""Compares kvopt's safetensors and GGUF readers with the Python packages.

Runs kvopt-dump-weights (see tools/kvopt-dump-weights/main.cpp for its
output) on:
  1. tinystories-656k/model.safetensors, against `safetensors` (numpy),
     and its folder read as a Hugging Face model (SafetensorsModel);
  2. a generated safetensors file with F32, F16, I8..I64, U8, BOOL tensors
     and __metadata__;
  3. the default model SmolLM2-135M-Instruct.Q4_1.gguf, against
     gguf.GGUFReader + gguf.quants.dequantize;
  4. a generated GGUF (gguf.GGUFWriter + gguf.quants.quantize) holding F32,
     F16, BF16, Q8_0, Q4_0 and Q4_1 tensors, every fp16 and bf16 bit
     pattern, and metadata of every scalar type and arrays.
Names, dtypes, shapes, metadata and float32 values must be identical (both
sides compute in float32; a 1-ulp difference would be reported and allowed).
Exits 1 on any mismatch, 77 (skipped) when the default GGUF model is not
installed (scripts/fetch-default-model.sh) and everything else matched.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

SKIP = 77


class Checker:
    def __init__(self, tool):
        self.tool = tool
        self.failures = []
        self.tensors = 0
        self.metadata = 0
        self.within_ulp = 0

    def fail(self, where, message):
        self.failures.append(f"{where}: {message}")

    def dump(self, path, tmp):
        os.makedirs(tmp, exist_ok=True)
        values = os.path.join(tmp, "values.bin")
        out = subprocess.run(
            [self.tool, "--metadata", "--values", values, path],
            capture_output=True, text=True, encoding="utf-8",
            errors="surrogateescape")
        if out.returncode != 0:
            self.fail(path, f"kvopt-dump-weights failed: {out.stderr.strip()}")
            return {}, {}, None
        metadata, tensors = {}, {}
        for line in out.stdout.splitlines():
            record = json.loads(line)
            if "metadata" in record:
                metadata[record["metadata"]] = record
            else:
                tensors[record["tensor"]] = record
        return metadata, tensors, np.memmap(values, dtype="<f4", mode="r") \
            if os.path.getsize(values) else np.zeros(0, "<f4")

    def compare_values(self, where, ours, expected):
        expected = np.ascontiguousarray(expected, dtype=np.float32).ravel()
        if ours.size != expected.size:
            self.fail(where, f"{ours.size} values, expected {expected.size}")
            return
        a, b = ours.view(np.int32), expected.view(np.int32)
        nan = np.isnan(ours) & np.isnan(expected)
        differ = (a != b) & ~nan
        if not differ.any():
            return
        ulps = np.abs(a[differ].astype(np.int64) - b[differ].astype(np.int64))
        same_sign = (a[differ] ^ b[differ]) >= 0
        if (ulps <= 1).all() and same_sign.all():
            self.within_ulp += 1
            return
        i = int(np.flatnonzero(differ)[0])
        self.fail(where, f"{int(differ.sum())} values differ, first at "
                  f"{i}: {ours[i]!r} vs {expected[i]!r}")

    def compare_tensor(self, where, record, dtype, shape, values, expected):
        before = len(self.failures)
        if record["dtype"] != dtype:
            self.fail(where, f"dtype {record['dtype']}, expected {dtype}")
        if record["shape"] != list(shape):
            self.fail(where, f"shape {record['shape']}, expected {list(shape)}")
        if expected is not None:
            if record["values"] is None:
                self.fail(where, "values were not converted")
            else:
                start = record["values"] // 4
                self.compare_values(where, values[start:start + expected.size],
                                    expected)
        self.tensors += len(self.failures) == before


def check_safetensors(checker, path, tmp):
    from safetensors import safe_open

    metadata, tensors, values = checker.dump(path, tmp)
    names = {
        "float32": "F32", "float16": "F16", "float64": "F64", "int8": "I8",
        "int16": "I16", "int32": "I32", "int64": "I64", "uint8": "U8",
        "bool": "BOOL",
    }
    with safe_open(path, framework="numpy") as f:
        expected_names = set(f.keys())
        for key, value in (f.metadata() or {}).items():
            if metadata.get(key, {}).get("value") != value:
                checker.fail(f"{path}: __metadata__ '{key}'",
                             f"{metadata.get(key)} vs {value!r}")
            else:
                checker.metadata += 1
        if set(metadata) != set(f.metadata() or {}):
            checker.fail(path, "__metadata__ keys differ")
        for name in expected_names & set(tensors):
            array = f.get_tensor(name)
            dtype = names[array.dtype.name]
            convertible = dtype in ("F32", "F16")
            checker.compare_tensor(f"{path}: tensor '{name}'", tensors[name],
                                   dtype, array.shape, values,
                                   array.astype(np.float32)
                                   if convertible else None)
    if expected_names != set(tensors):
        checker.fail(path, f"tensor names differ: "
                     f"{sorted(expected_names ^ set(tensors))[:5]}")


def check_folder(checker, folder, single, tmp):
    """The folder reader (SafetensorsModel) must see what the file has."""
    _, from_folder, folder_values = checker.dump(folder, tmp + "/folder")
    _, from_file, file_values = checker.dump(single, tmp + "/file")
    for name, record in from_file.items():
        other = from_folder.get(name)
        if other is None or other["shape"] != record["shape"] or \
                other["dtype"] != record["dtype"]:
            checker.fail(f"{folder}: tensor '{name}'", "differs from the file")
            continue
        n = int(np.prod(record["shape"]))
        a, b = record["values"] // 4, other["values"] // 4
        checker.compare_values(f"{folder}: tensor '{name}'",
                               folder_values[b:b + n], file_values[a:a + n])
    if set(from_folder) != set(from_file):
        checker.fail(folder, "the folder and the file list different tensors")


def gguf_type_name(types):
    import gguf

    def one(t):
        return t.name.lower()
    if types[0] == gguf.GGUFValueType.ARRAY:
        return "array of " + one(types[1])
    return one(types[0])


def same_value(ours, theirs, type_name):
    if isinstance(theirs, list):
        return isinstance(ours, list) and len(ours) == len(theirs) and all(
            same_value(a, b, type_name) for a, b in zip(ours, theirs))
    if type_name.endswith("float32") or type_name.endswith("float64"):
        width = np.float32 if type_name.endswith("float32") else np.float64
        a, b = width(ours), width(theirs)
        return (np.isnan(a) and np.isnan(b)) or a == b
    return ours == theirs


def check_gguf(checker, path, tmp):
    import gguf

    metadata, tensors, values = checker.dump(path, tmp)
    reader = gguf.GGUFReader(path)
    fields = {k: f for k, f in reader.fields.items()
              if not k.startswith("GGUF.")}
    if set(fields) != set(metadata):
        checker.fail(path, f"metadata keys differ: "
                     f"{sorted(set(fields) ^ set(metadata))[:5]}")
    for key in set(fields) & set(metadata):
        field, ours = fields[key], metadata[key]
        type_name = gguf_type_name(field.types)
        if ours["type"] != type_name:
            checker.fail(f"{path}: metadata '{key}'",
                         f"type {ours['type']}, expected {type_name}")
        elif not same_value(ours["value"], field.contents(), type_name):
            checker.fail(f"{path}: metadata '{key}'", "values differ")
        else:
            checker.metadata += 1
    expected_names = {t.name for t in reader.tensors}
    if expected_names != set(tensors):
        checker.fail(path, f"tensor names differ: "
                     f"{sorted(expected_names ^ set(tensors))[:5]}")
    for t in reader.tensors:
        if t.name not in tensors:
            continue
        expected = gguf.quants.dequantize(t.data, t.tensor_type)
        checker.compare_tensor(f"{path}: tensor '{t.name}'", tensors[t.name],
                               t.tensor_type.name,
                               [int(d) for d in reversed(t.shape)], values,
                               expected)


def write_safetensors(path):
    from safetensors.numpy import save_file

    rng = np.random.default_rng(1)
    save_file({
        "f32": rng.standard_normal((3, 5)).astype(np.float32),
        "f16": np.arange(65536, dtype=np.uint16).view(np.float16)
                 .reshape(256, 256),
        "empty": np.zeros((0, 4), np.float32),
        "scalar": np.array(2.5, np.float32),
        "i8": np.arange(-4, 4, dtype=np.int8),
        "i16": np.arange(6, dtype=np.int16),
        "i32": np.arange(6, dtype=np.int32).reshape(2, 3),
        "i64": np.arange(3, dtype=np.int64),
        "u8": np.arange(7, dtype=np.uint8),
        "bool": np.array([True, False, True]),
        "f64": np.linspace(0, 1, 5),
    }, path, metadata={"format": "pt", "note": "h\u00e9llo"})


def write_gguf(path):
    import gguf
    from gguf import GGMLQuantizationType as Q, GGUFValueType as V

    rng = np.random.default_rng(2)
    w = gguf.GGUFWriter(path, "llama")
    w.add_custom_alignment(64)
    scalars = [(V.UINT8, 200), (V.INT8, -100), (V.UINT16, 60000),
               (V.INT16, -30000), (V.UINT32, 4000000000),
               (V.INT32, -2000000000), (V.UINT64, 2**64 - 1),
               (V.INT64, -2**63), (V.FLOAT32, 1e-5), (V.FLOAT64, 1 / 3),
               (V.BOOL, True), (V.STRING, "h\u00e9llo \U0001F600")]
    for vtype, value in scalars:
        w.add_key_value(f"test.{vtype.name.lower()}", value, vtype)
    w.add_key_value("test.tokens", ["a", "", "\u00e9t\u00e9"], V.ARRAY,
                    V.STRING)
    w.add_key_value("test.scores", [0.5, -1.25, 3e30], V.ARRAY, V.FLOAT32)
    w.add_key_value("test.types", [1, -2, 3], V.ARRAY, V.INT32)
    w.add_key_value("test.flags", [True, False], V.ARRAY, V.BOOL)
    w.add_key_value("test.u64s", [0, 2**63], V.ARRAY, V.UINT64)
    data = rng.standard_normal((4, 96)).astype(np.float32) * 3
    data[0, :32] = 0  # an all-zero block: d = 0
    for qtype in (Q.F32, Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1):
        q = gguf.quants.quantize(data, qtype)
        # Quantized data comes as bytes; the writer derives the shape.
        w.add_tensor(f"t.{qtype.name.lower()}", q, raw_dtype=qtype)
    every_half = np.arange(65536, dtype=np.uint16)
    w.add_tensor("all.f16", every_half.view(np.float16).reshape(2, 128, 256))
    w.add_tensor("all.bf16", every_half.view(np.uint8).reshape(256, 512),
                 raw_dtype=Q.BF16)
    w.add_tensor("vector", np.arange(7, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def default_gguf_path():
    data = os.environ.get("KVOPT_DATA_DIR") or os.path.join(
        os.environ.get("XDG_DATA_HOME")
        or os.path.join(os.path.expanduser("~"), ".local", "share"), "kvopt")
    return os.path.join(data, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tool", required=True, help="kvopt-dump-weights")
    parser.add_argument("--models-dir", required=True,
                        help="folder holding tinystories-656k")
    args = parser.parse_args()
    checker = Checker(args.tool)
    skipped = []
    with tempfile.TemporaryDirectory() as tmp:
        tiny = os.path.join(args.models_dir, "tinystories-656k",
                            "model.safetensors")
        check_safetensors(checker, tiny, tmp)
        check_folder(checker, os.path.dirname(tiny), tiny, tmp)
        generated = os.path.join(tmp, "generated.safetensors")
        write_safetensors(generated)
        check_safetensors(checker, generated, tmp)
        generated = os.path.join(tmp, "generated.gguf")
        write_gguf(generated)
        check_gguf(checker, generated, tmp)
        default = default_gguf_path()
        if os.path.exists(default):
            check_gguf(checker, default, tmp)
        else:
            skipped.append(f"{default} is not installed "
                           "(scripts/fetch-default-model.sh)")
    for failure in checker.failures[:20]:
        print("MISMATCH", failure)
    for reason in skipped:
        print("skipped:", reason)
    print(f"{checker.tensors} tensors identical, {checker.metadata} metadata "
          f"values identical, {len(checker.failures)} mismatches"
          + (f" ({checker.within_ulp} tensors within 1 ulp)"
             if checker.within_ulp else ""))
    if checker.failures:
        return 1
    return SKIP if skipped else 0


if __name__ == "__main__":
    sys.exit(main())
