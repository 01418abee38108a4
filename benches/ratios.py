"""Renders the tables of benches/README.md from criterion's results, and flags missed targets.

Usage: python3 benches/ratios.py [target/criterion] [--only group,group] [--write README.md]
                                 [--section NAME]

With --write, the table replaces what stands between `<!-- ratios:begin -->` and
`<!-- ratios:end -->` in that file (with --section NAME, between `<!-- ratios:NAME:begin -->`
and `<!-- ratios:NAME:end -->`, so one file can keep the tables of several runs), so the
README's figures are generated, never typed.

Every figure is a median from one `cargo bench` run and every ratio is against a baseline
measured in the same run (the paired design of benches/lib.rs):
- groups of ids "<case>/<variant>/<label>" (records, tenancy, audit): each variant against the
  case's baseline variant (`hand-written`, or `unaudited` for the audit bench), and, where peers
  ran, how many times slower than Plenum each peer is;
- the crypto groups: each id against the raw primitive named in BASELINE.
A target missed prints MISSED in the last column and makes the exit status 1, so a run can be
checked by a script without reading it.
"""
import json
import os
import sys

def option(name):
    if name in sys.argv:
        i = sys.argv.index(name)
        if i + 1 < len(sys.argv):
            return sys.argv[i + 1]
    return None


positional = [a for i, a in enumerate(sys.argv[1:], 1)
              if not a.startswith("--") and not sys.argv[i - 1].startswith("--")]
root = positional[0] if positional else "target/criterion"
ONLY = set(option("--only").split(",")) if option("--only") else None
WRITE = option("--write")
SECTION = option("--section")

# The targets of the encryption-overhead issue (#15): the highest ratio allowed.
CASE_TARGETS = {
    ("records", "insert-10k"): 1.5,
    ("records", "insert-10k-known-subjects"): 1.25,
    ("records", "read-10k"): 1.25,
    ("tenancy", "point-get"): 1.10,
}


def case_target(group, case, variant):
    """The target of a paired case, for the library's own variant only."""
    if variant != "plenum":
        return None
    if group == "paired" and case.split("-")[0] in ("seal", "open"):
        return 1.3
    return CASE_TARGETS.get((group, case))


# The audited read against its physical floor (the same read plus one durable event row).
FLOOR_TARGET = 1.10
# The library's read against its floor (the encrypted rows read by hand plus the raw opens).
FLOOR_TARGETS = {("records", "read-10k"): 1.3}


def single_target(group, func):
    """The target of a crypto id measured against its raw primitive."""
    if group in ("seal", "open") and func.startswith("plenum-"):
        return 1.3
    if group == "blind-index" and func.startswith("plenum-") and func.endswith("/normalised"):
        return 1.2
    if group == "cold" and func in ("plenum-unwrap-derive-seal", "plenum-fresh-keyring"):
        return 10.0
    return None


BASELINE = {"seal": "raw-aes-gcm+nonce", "open": "raw-aes-gcm", "blind-index": "raw-hmac-sha256",
            "cold": "raw-aes-gcm-key-setup+seal",
            # The cold path through a PKCS#11 token, against the same path with the root key in
            # process (#18): what an HSM adds to a tenant key's first use in a process.
            "cold-pkcs11": "local-unwrap-derive-seal"}
# Ids held to a primitive of their own rather than their group's baseline: the AWS-LC backend's
# blind index against AWS-LC's HMAC (each backend against its own floor; the group's baseline,
# RustCrypto's HMAC, is still shown for the comparison a user would make between backends).
OWN_BASELINE = {("blind-index", "plenum-AwsLc/normalised"): "raw-aws-lc-hmac-sha256"}
# Ids also shown against the floor of the same run (no target of their own): the cold path
# against the chain of raw primitives its key hierarchy needs (two unwraps, two HKDF derivations,
# three key setups, one seal).
ALSO_FLOOR = {("cold", "plenum-unwrap-derive-seal"): "floor-raw-chain",
              ("cold", "plenum-fresh-keyring"): "floor-raw-chain"}
CASE_BASELINES = ("hand-written", "unaudited", "quiet")


def load(root):
    rows = []
    for dirpath, _, files in os.walk(root):
        if dirpath.endswith(os.sep + "new") and "estimates.json" in files:
            with open(os.path.join(dirpath, "benchmark.json")) as f:
                meta = json.load(f)
            with open(os.path.join(dirpath, "estimates.json")) as f:
                est = json.load(f)
            group = meta["group_id"]
            if ONLY is None or group in ONLY:
                rows.append((group, meta.get("function_id") or "", meta.get("value_str") or "",
                             est["median"]["point_estimate"]))
    return rows


def fmt(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.1f} us"
    return f"{ns:.0f} ns"


def row(missed, group, case, variant, ns, base_label, base, target):
    """One table row, its ratio checked against `target` (None: no target); a miss is added to
    `missed`."""
    ratio = ns / base
    shown, flag = "", ""
    if target is not None:
        shown = f"<= {target:.2f}x"
        flag = "met" if ratio <= target else "MISSED"
        if flag == "MISSED":
            missed.append(f"{group} {case} {variant}: {ratio:.2f}x > {target:.2f}x")
    emit(f"| {group} | {case} | {variant} | {fmt(ns)} | {base_label} {fmt(base)} "
         f"| {ratio:.2f}x | {shown} | {flag} |")


OUT = []


def emit(line):
    OUT.append(line)


def main():
    rows = load(root)
    if not rows:
        print(f"no criterion results under {root}: run `cargo bench -p plenum-benches` first")
        return 2
    missed = []
    cases = {}
    singles = {}
    for group, func, value, ns in rows:
        parts = func.split("/")
        if len(parts) == 3 and group not in BASELINE:
            case, variant, label = parts
            cases.setdefault((group, case, label), {})[variant] = ns
        else:
            singles.setdefault((group, value), {})[func] = ns

    emit("| bench | case | variant | median | baseline | ratio | target | |")
    emit("|---|---|---|---|---|---|---|---|")
    for (group, case, label), variants in sorted(cases.items()):
        base_name = next((b for b in CASE_BASELINES if b in variants), None)
        if base_name is None:
            continue
        base = variants[base_name]
        for variant, ns in sorted(variants.items(), key=lambda kv: kv[1]):
            if variant != base_name:
                row(missed, group, f"{case} {label}", variant, ns, base_name, base,
                    case_target(group, case, variant))
        floor = variants.get("floor")
        if floor and "audited" in variants:
            row(missed, group, f"{case} {label}", "audited vs its floor", variants["audited"],
                "floor", floor, FLOOR_TARGET)
        if floor and "plenum" in variants:
            row(missed, group, f"{case} {label}", "plenum vs its floor", variants["plenum"],
                "floor", floor, FLOOR_TARGETS.get((group, case)))
        screened = variants.get("floor-screened")
        if screened and "plenum" in variants:
            # The floor with the consent screen every library write under a purpose runs (a
            # round trip a design honouring restriction and objection on writes cannot skip).
            row(missed, group, f"{case} {label}", "plenum vs its screened floor",
                variants["plenum"], "floor-screened", screened, None)
        plenum = variants.get("plenum")
        for variant, ns in sorted(variants.items()):
            if plenum and variant.startswith("pgcrypto"):
                factor = ns / plenum
                said = (f"plenum {factor:.1f}x faster" if factor >= 1
                        else f"plenum {1 / factor:.1f}x slower")
                emit(f"| {group} | {case} {label} | plenum vs {variant} | {fmt(plenum)} "
                      f"| {variant} {fmt(ns)} | {said} | | |")

    for (group, value), funcs in sorted(singles.items(), key=lambda kv: (kv[0][0], int(kv[0][1] or 0))):
        base_name = BASELINE.get(group)
        base = funcs.get(base_name)
        for func, ns in sorted(funcs.items()):
            own = OWN_BASELINE.get((group, func))
            if own is not None and own in funcs:
                row(missed, group, value, func, ns, own, funcs[own], single_target(group, func))
                if base is not None:
                    row(missed, group, value, func, ns, base_name, base, None)
            elif base is not None and func != base_name:
                row(missed, group, value, func, ns, base_name, base, single_target(group, func))
            floor = ALSO_FLOOR.get((group, func))
            if floor is not None and floor in funcs:
                row(missed, group, value, f"{func} vs its floor", ns, floor, funcs[floor], None)

    table = "\n".join(OUT)
    if WRITE:
        with open(WRITE, encoding="utf-8") as f:
            text = f.read()
        tag = f"ratios:{SECTION}" if SECTION else "ratios"
        begin, end = f"<!-- {tag}:begin -->", f"<!-- {tag}:end -->"
        if begin not in text or end not in text:
            print(f"{WRITE} has no {begin} ... {end} section")
            return 2
        before, rest = text.split(begin, 1)
        _, after = rest.split(end, 1)
        with open(WRITE, "w", encoding="utf-8") as f:
            f.write(before + begin + "\n" + table + "\n" + end + after)
    else:
        print(table)
    if missed:
        print("\nMISSED:\n  " + "\n  ".join(missed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
