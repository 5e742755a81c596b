#!/usr/bin/env python3
"""The README's eviction tables, in Markdown, from the JSON that
`scripts/eval-table.sh eviction` writes (build/eviction/eviction.json):
one grid of budgets x methods (ppl change against the full cache, with its
standard error, and passkey accuracy), then the rows measured with one
selection shared by the KV heads and one per head (ROW and ROW-each), then
every row with its peak cache bytes against the full cache's.

    scripts/eviction-grid.py [build/eviction/eviction.json]
"""
import json
import sys

METHODS = [("tri", "TriAttention"), ("snapkv", "SnapKV"), ("h2o", "H2O"),
           ("streaming", "StreamingLLM")]
BUDGETS = ["50%", "25%", "10%", "1024", "512", "256"]


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "build/eviction/eviction.json"
    with open(path) as f:
        run = json.load(f)
    results = {r["artifact"].removesuffix(".kvpkg"): r for r in run["results"]}
    reference = run["results"][0]

    def cell(r):
        text = "%+.2f%% (%.2f)" % (r["ppl_change_percent"],
                                   r["ppl_change_standard_error_percent"])
        if "passkey" in r:
            p = r["passkey"]
            text += ", %d/%d" % (p["correct"], p["trials"])
        return text

    print("| budget | " + " | ".join(name for _, name in METHODS) + " |")
    print("| --- |" + " --- |" * len(METHODS))
    for budget in BUDGETS:
        row = [budget if budget.endswith("%") else budget + " tokens"]
        for key, _ in METHODS:
            r = results.get(key + "-" + budget)
            row.append(cell(r) if r else "")
        print("| " + " | ".join(row) + " |")

    pairs = [(key, name, budget) for key, name in METHODS
             for budget in BUDGETS
             if key + "-" + budget in results
             and key + "-" + budget + "-each" in results]
    if pairs:
        print()
        print("| method, budget | shared by the KV heads | per KV head |")
        print("| --- | --- | --- |")
        for key, name, budget in pairs:
            row = key + "-" + budget
            print("| %s %s | %s | %s |" % (name, budget, cell(results[row]),
                                           cell(results[row + "-each"])))

    print()
    print("| artifact | cache | peak KV MB | vs full | ppl | change (std err) "
          "| passkey |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in run["results"]:
        p = r.get("passkey")
        print("| %s | %s | %.2f | %.2fx | %.3f | %+.2f%% (%.2f%%) | %s |" % (
            r["artifact"].removesuffix(".kvpkg"), r["cache"],
            r["peak_kv_bytes"] / 1e6,
            reference["peak_kv_bytes"] / max(1, r["peak_kv_bytes"]), r["ppl"],
            r["ppl_change_percent"], r["ppl_change_standard_error_percent"],
            "%d/%d" % (p["correct"], p["trials"]) if p else ""))


if __name__ == "__main__":
    main()
