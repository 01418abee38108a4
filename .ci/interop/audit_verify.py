"""Independent verifier of Plenum audit logs, written from docs/audit-format.md alone.

Standard library (hashlib, json, base64) plus the `cryptography` package for Ed25519.

    audit_verify.py vectors <audit-vectors-v1.json>
    audit_verify.py log <export.json> <verifier-key-file> [--expect-tampered]

Exits non-zero on the first disagreement.
"""
import base64
import copy
import datetime
import hashlib
import json
import re
import sys
import uuid

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

MAX_SKEW = 300
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
DECIMAL = re.compile(r"(0|[1-9][0-9]*)")
HASH = re.compile(r"[0-9a-f]{64}")
AT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")


class Tampered(Exception):
    pass


def canonical(value) -> str:
    def check(v):
        if isinstance(v, bool) or v is None or isinstance(v, str):
            return
        if isinstance(v, int):
            if abs(v) > 2**53 - 1:
                raise ValueError("integer out of range")
            return
        if isinstance(v, float):
            raise ValueError("floats are not canonical")
        if isinstance(v, list):
            for x in v:
                check(x)
            return
        if isinstance(v, dict):
            for k, x in v.items():
                if not k.isascii():
                    raise ValueError("non-ASCII key")
                check(x)
            return
        raise ValueError(type(v))

    check(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256(*parts: bytes) -> bytes:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.digest()


def leaf(body: str) -> bytes:
    return sha256(b"\x00", body.encode("utf-8"))


def node(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01", left, right)


def mth(leaves):
    n = len(leaves)
    if n == 0:
        return sha256()
    if n == 1:
        return leaves[0]
    k = 1
    while k << 1 < n:
        k <<= 1
    return node(mth(leaves[:k]), mth(leaves[k:]))


def verify_inclusion(leaf_hash, index, size, path, root) -> bool:
    # RFC 9162 section 2.1.3.2
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf_hash
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(m, n, old_root, new_root, path) -> bool:
    # RFC 9162 section 2.1.4.2
    if m == 0 or m > n:
        return False
    if m == n:
        return not path and old_root == new_root
    if m & (m - 1) == 0:
        path = [old_root] + list(path)
    if not path:
        return False
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node(c, fr)
            sr = node(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


def parse_key(text: str):
    name, key_id, key = text.strip().split("+", 2)
    if not name or not name.isascii() or " " in name or "\n" in name:
        raise ValueError("bad key name")
    raw = base64.b64decode(key, validate=True)
    if raw[0] != 0x01 or len(raw) != 33:
        raise ValueError("not an Ed25519 verifier key")
    expected = sha256(name.encode(), b"\n", raw)[:4].hex()
    if expected != key_id:
        raise ValueError("key id does not match")
    return name, bytes.fromhex(key_id), Ed25519PublicKey.from_public_bytes(raw[1:])


def open_note(note: str, keys):
    body, sigs = note.split("\n\n", 1)
    body += "\n"
    ok = False
    for line in sigs.rstrip("\n").split("\n"):
        if not line.startswith("\u2014 "):
            raise ValueError("bad signature line")
        name, blob = line[2:].split(" ", 1)
        blob = base64.b64decode(blob, validate=True)
        if len(blob) < 4:
            continue  # another signer's, ignored
        for kname, kid, pub in keys:
            if kname == name and blob[:4] == kid:
                # A trusted signer's line that does not verify refuses the whole note.
                if len(blob) != 68:
                    raise Tampered("bad signature from a trusted key")
                try:
                    pub.verify(blob[4:], body.encode())
                except InvalidSignature:
                    raise Tampered("bad signature from a trusted key")
                ok = True
    if not ok:
        raise Tampered("checkpoint not signed by a trusted key")
    lines = body.rstrip("\n").split("\n")
    if len(lines) != 4 or not lines[0].startswith("plenum.audit/") or not lines[3].startswith("time "):
        raise ValueError("bad checkpoint body")
    root = base64.b64decode(lines[2], validate=True)
    if len(root) != 32 or not DECIMAL.fullmatch(lines[1]) or not DECIMAL.fullmatch(lines[3][5:]):
        raise ValueError("bad checkpoint body")
    tenant = str(uuid.UUID(lines[0][len("plenum.audit/"):]))
    return {"tenant": tenant, "size": int(lines[1]), "root": root, "time": int(lines[3][5:])}


def verify_log(export, keys):
    if set(export) != {"format", "tenant", "entries", "checkpoints"}:
        raise ValueError("unexpected export fields")
    if export["format"] != "plenum-audit-export-1":
        raise ValueError("unknown export format")
    tenant = str(uuid.UUID(export["tenant"]))
    cps = [open_note(n, keys) for n in export["checkpoints"]]
    for i, c in enumerate(cps):
        if c["tenant"] != tenant:
            raise Tampered(f"checkpoint {i} is another log's")
        if i and (c["size"] < cps[i - 1]["size"] or c["time"] < cps[i - 1]["time"]):
            raise Tampered(f"checkpoint {i} goes backwards")
    if not cps:
        raise Tampered("no signed checkpoint")
    leaves, ids, times, bodies = [], set(), [], 0
    for i, e in enumerate(export["entries"]):
        if set(e) != {"seq", "leaf_hash", "body"}:
            raise ValueError(f"entry {i}: unexpected fields")
        if type(e["seq"]) is not int or e["seq"] != i:
            raise Tampered(f"sequence gap or reorder at {i}")
        if not isinstance(e["leaf_hash"], str) or not HASH.fullmatch(e["leaf_hash"]):
            raise Tampered(f"entry {i}: malformed leaf hash")
        h = bytes.fromhex(e["leaf_hash"])
        body = e["body"]
        if body is not None:
            event = json.loads(body)
            if canonical(event) != body:
                raise Tampered(f"entry {i} is not canonical")
            if leaf(body) != h:
                raise Tampered(f"entry {i}: leaf hash mismatch")
            if type(event.get("v")) is not int or event["v"] != 1 or event["tenant"] != tenant:
                raise Tampered(f"entry {i}: wrong schema or tenant")
            if not AT.fullmatch(event["at"]):
                raise Tampered(f"entry {i}: time not in the canonical form")
            if event["id"] in ids:
                raise Tampered(f"entry {i}: duplicate event id")
            ids.add(event["id"])
            at = datetime.datetime.fromisoformat(event["at"].replace("Z", "+00:00"))
            times.append((i, (at - EPOCH) // datetime.timedelta(milliseconds=1)))
            bodies += 1
        leaves.append(h)
    for j, c in enumerate(cps):
        if c["size"] > len(leaves):
            raise Tampered(f"checkpoint {j} covers {c['size']} entries, the log has {len(leaves)}")
        if mth(leaves[: c["size"]]) != c["root"]:
            raise Tampered(f"checkpoint {j}: root mismatch")
    for i, t in times:
        covering = [c for c in cps if c["size"] > i]
        if covering and t > (covering[0]["time"] + MAX_SKEW) * 1000:
            raise Tampered(f"entry {i} is dated after its checkpoint")
    return len(leaves), bodies, len(cps)


def expect(cond, what):
    if not cond:
        print(f"FAIL: {what}")
        sys.exit(1)


def vectors(path):
    v = json.load(open(path, encoding="utf-8"))
    checks = 0
    for case in v["canonical"]:
        expect(canonical(case["value"]) == case["canonical"], f"canonical {case['canonical']}")
        checks += 1
    leaves = []
    for i, e in enumerate(v["events"]):
        expect(canonical(e["event"]) == e["canonical"], f"event {i} canonical form")
        expect(leaf(e["canonical"]).hex() == e["leaf_hash"], f"event {i} leaf hash")
        leaves.append(bytes.fromhex(e["leaf_hash"]))
        checks += 2
    for r in v["roots"]:
        expect(mth(leaves[: r["size"]]).hex() == r["root"], f"root of {r['size']}")
        checks += 1
    keys = [parse_key(v["key"]["verifier"])]
    for note in v["checkpoints"]:
        c = open_note(note, keys)
        expect(mth(leaves[: c["size"]]) == c["root"], "checkpoint root")
        checks += 1
    p = v["inclusion"]
    c = open_note(p["checkpoint"], keys)
    path = [bytes.fromhex(h) for h in p["path"]]
    expect(verify_inclusion(bytes.fromhex(p["leaf_hash"]), p["seq"], c["size"], path, c["root"]), "inclusion proof")
    expect(not verify_inclusion(bytes.fromhex(p["leaf_hash"]), p["seq"] + 1, c["size"], path, c["root"]), "inclusion proof at the wrong index")
    p = v["consistency"]
    o, n = open_note(p["old"], keys), open_note(p["new"], keys)
    path = [bytes.fromhex(h) for h in p["path"]]
    expect(verify_consistency(o["size"], n["size"], o["root"], n["root"], path), "consistency proof")
    expect(not verify_consistency(o["size"], n["size"], n["root"], n["root"], path), "consistency proof, wrong old root")
    checks += 4
    for name in ("export", "export_after_retention"):
        verify_log(v[name], keys)
        checks += 1
    # Verifier keys: the texts to accept and to refuse.
    for good in v["verifier_keys"]["valid"]:
        parse_key(good)
    for bad in v["verifier_keys"]["invalid"]:
        try:
            parse_key(bad)
        except Exception:
            continue
        expect(False, f"verifier key accepted: {bad!r}")
    checks += len(v["verifier_keys"]["valid"]) + len(v["verifier_keys"]["invalid"])
    # Consistency proofs at the edges (equal sizes; old size 0).
    for e in v["consistency_edges"]:
        o, n = open_note(e["old"], keys), open_note(e["new"], keys)
        ok = verify_consistency(o["size"], n["size"], o["root"], n["root"], [bytes.fromhex(h) for h in e["path"]])
        expect(ok == e["valid"], f"consistency edge: {e['name']}")
        checks += 1
    # Rule 5 to the millisecond; a bad line from a trusted key refuses the note.
    verify_log(v["skew"]["accepted"], keys)
    try:
        verify_log(v["skew"]["refused"], keys)
        expect(False, "an event 300.001 s after its checkpoint was accepted")
    except Tampered:
        pass
    try:
        open_note(v["bad_trusted_signature"], keys)
        expect(False, "a note with a bad line from a trusted key was accepted")
    except Tampered:
        pass
    checks += 3
    # Every single-entry tampering of the vector log is caught.
    base = v["export"]
    tampers = []
    for i in range(len(base["entries"])):
        t = copy.deepcopy(base)
        t["entries"][i]["body"] = t["entries"][i]["body"].replace('"rows":1', '"rows":2', 1).replace('"rows":0', '"rows":3', 1)
        tampers.append((f"modify {i}", t))
        t = copy.deepcopy(base)
        del t["entries"][i]
        tampers.append((f"delete {i}", t))
        t = copy.deepcopy(base)
        del t["entries"][i]
        for k, e in enumerate(t["entries"]):
            e["seq"] = k
        tampers.append((f"delete+renumber {i}", t))
        t = copy.deepcopy(base)
        t["entries"].insert(i, copy.deepcopy(t["entries"][i]))
        for k, e in enumerate(t["entries"]):
            e["seq"] = k
        tampers.append((f"insert {i}", t))
        if i + 1 < len(base["entries"]):
            t = copy.deepcopy(base)
            a, b = t["entries"][i], t["entries"][i + 1]
            t["entries"][i], t["entries"][i + 1] = b, a
            b["seq"], a["seq"] = i, i + 1
            tampers.append((f"reorder {i}", t))
    t = copy.deepcopy(base)
    t["checkpoints"] = []
    tampers.append(("no checkpoints", t))
    for keep in range(len(base["entries"])):
        t = copy.deepcopy(base)
        t["entries"] = t["entries"][:keep]
        tampers.append((f"truncate to {keep}", t))
    for what, t in tampers:
        try:
            verify_log(t, keys)
        except Tampered:
            checks += 1
            continue
        expect(False, f"tampering not detected: {what}")
    print(f"audit vectors: {checks} checks passed")


def log(path, key_path, expect_tampered):
    export = json.load(open(path, encoding="utf-8"))
    keys = [parse_key(line) for line in open(key_path, encoding="utf-8") if line.strip()]
    try:
        entries, bodies, cps = verify_log(export, keys)
    except Tampered as e:
        if expect_tampered:
            print(f"audit log {path}: tampering detected as expected ({e})")
            return
        print(f"FAIL: {path}: {e}")
        sys.exit(1)
    expect(not expect_tampered, f"{path}: tampering was not detected")
    print(f"audit log {path}: {entries} entries ({bodies} with bodies), {cps} checkpoints verified")


if __name__ == "__main__":
    if sys.argv[1] == "vectors":
        vectors(sys.argv[2])
    elif sys.argv[1] == "log":
        log(sys.argv[2], sys.argv[3], "--expect-tampered" in sys.argv[4:])
    else:
        sys.exit(__doc__)
