"""Checks a `kvopt calibrate --lowrank-report` file against the statistics
file of the same run: every error is the discarded share of the spectrum
numpy finds in the recorded covariances (to 1e-9), errors grow as the rank
shrinks, rank99 >= rank95 and each agrees with the errors, and one basis per
head never loses more than one basis shared by the layer's heads."""
import json
import sys

import numpy as np

report_file, stats_file = sys.argv[1:3]
with open(report_file) as f:
    report = json.load(f)
with open(stats_file) as f:
    stats = json.load(f)
d = stats["model"]["head_dim"]
assert report["ratios"] == [0.75, 0.5, 0.25], report["ratios"]
ranks = report["ranks"]
assert ranks == [round(r * d) for r in report["ratios"]], ranks
assert len(report["layers"]) == stats["model"]["layers"]


def covariances(packed):
    rows, cols = np.triu_indices(d)
    out = []
    for head in packed:
        c = np.zeros((d, d))
        c[rows, cols] = head
        c[cols, rows] = head
        out.append(c)
    return out


def errors(spectra):
    """Discarded share at each rank 0..d of the summed sorted spectra."""
    per_rank = np.sum([np.clip(np.sort(s)[::-1], 0, None) for s in spectra],
                      axis=0)
    tail = np.concatenate([np.cumsum(per_rank[::-1])[::-1], [0.0]])
    return tail / per_rank.sum()


def check(entry, expected, where):
    e = entry["error"]
    assert np.allclose(e, expected[ranks], rtol=0, atol=1e-9), (where, e)
    assert 0 <= e[0] < e[1] < e[2] <= 1, (where, e)
    assert entry["rank95"] <= entry["rank99"] <= d, where
    for r, k in ((entry["rank95"], 0.05), (entry["rank99"], 0.01)):
        assert expected[r] <= k + 1e-12 and (r == 0 or expected[r - 1] > k), \
            (where, r, expected)


for i, (layer, recorded) in enumerate(zip(report["layers"], stats["layers"])):
    for side in ("key", "value"):
        c = covariances(recorded[side + "_covariance"])
        spectra = [np.linalg.eigvalsh(x) for x in c]
        entry = layer[side]
        assert len(entry["per_head"]["heads"]) == len(c)
        for h, head in enumerate(entry["per_head"]["heads"]):
            check(head, errors([spectra[h]]), f"layer {i} {side} head {h}")
        check(entry["per_head"], errors(spectra), f"layer {i} {side}")
        check(entry["shared"], errors([np.linalg.eigvalsh(sum(c))]),
              f"layer {i} {side} shared")
        for a, b in zip(entry["per_head"]["error"], entry["shared"]["error"]):
            assert a <= b + 1e-12, (i, side, a, b)
print("ok:", len(report["layers"]), "layers checked")
