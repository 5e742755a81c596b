"""Checks kvopt tune's table (stdin) against its rule and prints a verdict.

The chosen row must be the one with the fewest bytes per token among those
whose perplexity change is at most BUDGET percent (the reference, bf16,
when none is), and the policy file must hold that row's setting.

  kvopt tune ... | check_tune.py BUDGET_PERCENT POLICY_FILE
"""
import re
import sys

budget, policy_path = float(sys.argv[1]), sys.argv[2]
rows, chosen = [], None
for line in sys.stdin:
    match = re.match(r"(\S.*?)\s{2,}(\d+(?:\.\d+)?)\s+(\d+\.\d+)x\s+"
                     r"(\d+\.\d+)\s+(reference|[+-]\d+\.\d+%)", line)
    if not match:
        continue
    name, size, change = match.group(1), float(match.group(2)), match.group(5)
    change = 0.0 if change == "reference" else float(change[:-1])
    rows.append((name, size, change))
    if line.rstrip().endswith("<- chosen"):
        chosen = name
within = [r for r in rows if r[2] <= budget]
expected = min(within, key=lambda r: r[1])[0] if within else rows[0][0]
policy = open(policy_path).read()
print("rows:", len(rows))
print("chosen as the rule says:", (chosen or rows[0][0]) == expected)
print("policy names it:", "#   %s:" % expected in policy)
