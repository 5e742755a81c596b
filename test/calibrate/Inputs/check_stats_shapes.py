"""Checks the shapes and ranges of a `kvopt calibrate` statistics file of
tinystories (2 layers, 8 query and 4 KV heads of 16): the numbers that
calibrate.test's FileCheck lines leave to it, because regexes over lines of
thousands of numbers take FileCheck minutes. Prints "shapes ok"."""
import json
import math
import sys

with open(sys.argv[1]) as f:
    stats = json.load(f)
model = stats["model"]
heads, kv_heads, d = model["heads"], model["kv_heads"], model["head_dim"]
half, triangle = d // 2, d * (d + 1) // 2
joint = kv_heads * d * (kv_heads * d + 1) // 2


def shape(value):
    """The nested list's shape, checking that it is regular and finite."""
    if isinstance(value, list):
        inner = [shape(v) for v in value]
        assert all(s == inner[0] for s in inner), "ragged list"
        return [len(value)] + (inner[0] if inner else [])
    assert isinstance(value, (int, float)) and math.isfinite(value), value
    return []


expected = {
    "key_absmax": [kv_heads], "value_absmax": [kv_heads],
    "query_center": [heads, half, 2], "query_magnitude": [heads, half],
    "key_center": [kv_heads, half, 2], "key_magnitude": [kv_heads, half],
    "key_mean": [kv_heads, d], "key_covariance": [kv_heads, triangle],
    "value_mean": [kv_heads, d], "value_covariance": [kv_heads, triangle],
    "value_attention_moment": [kv_heads, triangle],
    # One group of all the KV heads.
    "key_joint_moment": [1, joint], "value_joint_moment": [1, joint],
    "value_attention_joint_moment": [1, joint],
    # The attention lost at 1/20, ..., 20/20 of a query's entries kept.
    "evict_loss": [20],
}
assert len(stats["layers"]) == model["layers"]
for index, layer in enumerate(stats["layers"]):
    assert sorted(layer) == sorted(expected), sorted(layer)
    for key, want in expected.items():
        got = shape(layer[key])
        assert got == want, f"layer {index} {key}: {got}, expected {want}"
    for key in ("key_absmax", "value_absmax"):
        assert all(v > 0 for v in layer[key]), (index, key)
    for key in ("query_magnitude", "key_magnitude"):
        assert all(v >= 0 for row in layer[key] for v in row), (index, key)
    loss = layer["evict_loss"]
    assert all(0 <= v < 1 for v in loss) and loss[-1] == 0, (index, loss)
print("shapes ok")
