"""Prints each criterion benchmark's median and its ratio to the baseline of its group.

Usage: python3 benches/ratios.py [target/criterion]. Baselines are the `raw-*` ids measured in the
same run; see benches/README.md for which baseline each ratio uses.
"""
import json
import os
import sys

root = sys.argv[1] if len(sys.argv) > 1 else "target/criterion"
rows = []
for dirpath, _, files in os.walk(root):
    if dirpath.endswith(os.sep + "new") and "estimates.json" in files:
        with open(os.path.join(dirpath, "benchmark.json")) as f:
            meta = json.load(f)
        with open(os.path.join(dirpath, "estimates.json")) as f:
            est = json.load(f)
        rows.append((meta["group_id"], meta.get("function_id") or "", meta.get("value_str") or "",
                     est["median"]["point_estimate"]))

by_group = {}
for group, func, value, ns in rows:
    by_group.setdefault((group, value), {})[func] = ns

BASELINE = {"seal": "raw-aes-gcm+nonce", "open": "raw-aes-gcm", "blind-index": "raw-hmac-sha256",
            "cold": "raw-aes-gcm-key-setup+seal"}
# Groups whose ids are "<case>/<variant>/<label>": compare plenum against hand-written per case.
pairs = {}
for group, func, value, ns in rows:
    parts = func.split("/")
    if len(parts) == 3:
        case, variant, label = parts
        pairs.setdefault((group, case, label), {})[variant] = ns
for (group, case, label), v in sorted(pairs.items()):
    for base, measured in (("unaudited", "audited"), ("unaudited", "audited-async-commit")):
        if base in v and measured in v:
            print(f"\n{group} {case} {label}: {base} {v[base] / 1000:.1f} us, "
                  f"{measured} {v[measured] / 1000:.1f} us, ratio {v[measured] / v[base]:.2f}x")
    if "hand-written" in v and "plenum" in v:
        unit, scale = ("us", 1000) if v["hand-written"] > 10_000 else ("ns", 1)
        print(f"\n{group} {case} {label}: hand-written {v['hand-written'] / scale:.1f} {unit}, "
              f"plenum {v['plenum'] / scale:.1f} {unit}, ratio {v['plenum'] / v['hand-written']:.2f}x")

for (group, value), funcs in sorted(by_group.items(), key=lambda kv: (kv[0][0], int(kv[0][1] or 0))):
    base_name = BASELINE.get(group)
    base = funcs.get(base_name)
    print(f"\n{group} {value}".rstrip() + (f"  (baseline {base_name})" if base else ""))
    for func, ns in sorted(funcs.items()):
        ratio = f"{ns / base:5.2f}x" if base else ""
        print(f"  {func:40s} {ns:10.1f} ns  {ratio}")
