"""Independent check of Plenum envelope format v1, written from docs/envelope-format.md alone.

Uses the `cryptography` package (OpenSSL) for AES-256-GCM and HKDF-SHA256 and the standard
library for HMAC and Unicode normalisation. Exits non-zero on the first disagreement.
"""
import hashlib
import hmac
import json
import struct
import sys
import unicodedata
import uuid

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SALT = b"plenum/v1"
SCOPE = {"tenant_data": 0x01, "tenant_index": 0x02, "subject": 0x03, "subject_wrap": 0x04}


def lp(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b


def u32(n: int) -> bytes:
    return struct.pack(">I", n)


def uid(s: str) -> bytes:
    return uuid.UUID(s).bytes


def hkdf(ikm: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=SALT, info=info).derive(ikm)


def scope_bytes(scope: str, subject) -> bytes:
    return bytes([SCOPE[scope]]) + (uid(subject) if scope == "subject" else b"")


def field_key(v) -> bytes:
    info = (lp(b"field-key") + lp(uid(v["tenant"])) + lp(scope_bytes(v["scope"], v["subject"]))
            + lp(v["record_type"].encode()) + lp(v["field"].encode()) + u32(v["key_version"]))
    return hkdf(bytes.fromhex(v["scope_key"]), info)


def aad(v, header: bytes) -> bytes:
    subject = uid(v["subject"]) if v["subject"] else b""
    context = (lp(b"plenum-envelope-v1") + lp(uid(v["tenant"])) + lp(v["record_type"].encode())
               + lp(v["field"].encode()) + lp(subject))
    return header + uid(v["record"]) + hashlib.sha256(context).digest()[:9]


def parse(env: bytes, subject_owned: bool):
    """Structural checks in the order the spec gives; returns (header, nonce, ct||tag) or error."""
    if len(env) < 35:
        return "malformed: too short"
    if env[0] != 0x01:
        return "malformed: unknown format version"
    if env[1] != 0x01:
        return "malformed: unknown algorithm suite"
    if env[2] not in (0x01, 0x03):
        return "malformed: unknown key scope"
    if struct.unpack(">I", env[3:7])[0] == 0:
        return "malformed: key version 0"
    if env[2] != (0x03 if subject_owned else 0x01):
        return "malformed: key scope does not match the field's owner"
    return env[:7], env[7:19], env[19:]


def check_envelopes(vectors):
    for v in vectors["envelope"]:
        key = field_key(v)
        assert key.hex() == v["field_key"], v["name"] + ": field key"
        env = bytes.fromhex(v["envelope"])
        parsed = parse(env, v["subject"] is not None)
        assert not isinstance(parsed, str), v["name"] + ": " + str(parsed)
        header, nonce, body = parsed
        assert header == bytes([1, 1, SCOPE[v["scope"]]]) + u32(v["key_version"]), v["name"]
        a = aad(v, header)
        assert a.hex() == v["aad"], v["name"] + ": aad"
        plain = AESGCM(key).decrypt(nonce, body, a)
        assert plain.hex() == v["plaintext"], v["name"] + ": plaintext"
        # And sealing with the vector's nonce reproduces the envelope byte for byte.
        assert header + nonce + AESGCM(key).encrypt(nonce, plain, a) == env, v["name"] + ": seal"
        # Moving the ciphertext to another record must fail.
        other = dict(v, record="0192f0c4-7000-7000-8000-0000000000e2")
        try:
            AESGCM(key).decrypt(nonce, body, aad(other, header))
            raise AssertionError(v["name"] + ": opened under another record id")
        except InvalidTag:
            pass
    print(f"envelope: {len(vectors['envelope'])} vectors opened and re-sealed")

    base = vectors["envelope"][0]
    key = field_key(base)
    for v in vectors["invalid"]:
        env = bytes.fromhex(v["envelope"])
        parsed = parse(env, base["subject"] is not None)
        if isinstance(parsed, str):
            got = parsed
        else:
            header, nonce, body = parsed
            try:
                AESGCM(key).decrypt(nonce, body, aad(base, header))
                got = "opened"
            except InvalidTag:
                got = "decryption failed"
        assert got == v["error"], f"{v['name']}: expected {v['error']!r}, got {got!r}"
    print(f"invalid: {len(vectors['invalid'])} vectors rejected as specified")


def normalise(norm: str, value: str) -> str:
    # v1 refuses code points unassigned in its Unicode data (18.0.0); this implementation's data
    # (unicodedata.unidata_version) may be older, and then refuses what it does not know.
    if norm in ("email-v1", "text-nfkc-v1") and any(unicodedata.category(c) == "Cn" for c in value):
        raise ValueError("refused: unassigned code point")
    if norm == "email-v1":
        return value.strip().lower()
    if norm == "text-nfkc-v1":
        return unicodedata.normalize("NFKC", value).strip().lower()
    if norm == "phone-e164-v1":
        s = value.strip()
        plus = s.startswith("+")
        digits = ""
        for c in s[1:] if plus else s:
            if c.isascii() and c.isdigit():
                digits += c
            elif c not in " -.()":
                raise ValueError("refused")
        n = len(digits)
        if plus and 8 <= n <= 15:
            return "+" + digits
        if not plus and n == 10:
            return "+1" + digits
        if not plus and n == 11 and digits.startswith("1"):
            return "+" + digits
        raise ValueError("refused")
    raise ValueError("unknown normaliser")


def check_blind_indexes(vectors):
    for v in vectors["blind_index"]:
        normalised = normalise(v["normaliser"], v["value"])
        assert normalised == v["normalised"], v["name"] + ": normalised"
        info = (lp(b"blind-index") + lp(uid(v["tenant"])) + lp(v["record_type"].encode())
                + lp(v["field"].encode()) + lp(v["normaliser"].encode()) + u32(v["key_version"]))
        key = hkdf(bytes.fromhex(v["index_key"]), info)
        assert key.hex() == v["derived_key"], v["name"] + ": derived key"
        mac = hmac.new(key, normalised.encode(), hashlib.sha256).digest()[:16]
        assert (bytes([v["key_version"]]) + mac).hex() == v["blind_index"], v["name"]
    print(f"blind_index: {len(vectors['blind_index'])} vectors reproduced")


def check_key_wraps(vectors):
    for v in vectors["key_wrap"]:
        context = lp(uid(v["tenant"])) + lp(scope_bytes(v["scope"], v["subject"])) + u32(v["key_version"])
        assert context.hex() == v["context"], v["name"] + ": context"
        if v["tenant_data_key"]:
            info = lp(b"subject-key-wrap") + lp(uid(v["tenant"])) + u32(v["wrapping_version"])
            wk = hkdf(bytes.fromhex(v["tenant_data_key"]), info)
            assert wk.hex() == v["wrapping_key"], v["name"] + ": subject wrap key"
        else:
            wk = bytes.fromhex(v["wrapping_key"])
        w = bytes.fromhex(v["wrapped"])
        assert len(w) == 66 and w[0] == 1 and w[1] == 1, v["name"] + ": layout"
        assert struct.unpack(">I", w[2:6])[0] == v["wrapping_version"], v["name"]
        a = lp(b"plenum-key-wrap-v1") + lp(w[:6]) + lp(context)
        key = AESGCM(wk).decrypt(w[6:18], w[18:], a)
        assert key.hex() == v["key"], v["name"] + ": key"
    print(f"key_wrap: {len(vectors['key_wrap'])} vectors unwrapped")


def check_pseudonyms(path):
    # The audit pseudonym: the first 16 bytes of HKDF-SHA256 under the subject key, info
    # lp("audit-pseudonym") || lp(tenant) || lp(scope_bytes) || u32be(version).
    with open(path, encoding="utf-8") as f:
        vectors = json.load(f)
    for v in vectors["pseudonym"]:
        info = (lp(b"audit-pseudonym") + lp(uid(v["tenant"])) + lp(scope_bytes("subject", v["subject"]))
                + u32(v["key_version"]))
        got = hkdf(bytes.fromhex(v["subject_key"]), info)[:16].hex()
        assert got == v["pseudonym"], v["name"]
    print(f"pseudonym: {len(vectors['pseudonym'])} vectors reproduced")
    return len(vectors["pseudonym"])


def unwrap(wrapping_key: bytes, wrapped: bytes, context: bytes, fmt: int) -> bytes:
    # 66 bytes: format, suite, u32be wrapping version, nonce(12), key(32), tag(16).
    assert len(wrapped) == 66 and wrapped[0] == fmt and wrapped[1] == 1
    a = lp(b"plenum-key-wrap-v1") + lp(wrapped[:6]) + lp(context)
    return AESGCM(wrapping_key).decrypt(wrapped[6:18], wrapped[18:], a)


def check_subject_wrap_chain(path):
    # Root key -> subject-wrap key (scope 0x04, format 1) -> subject key (format 2) -> envelope.
    with open(path, encoding="utf-8") as f:
        vectors = json.load(f)
    for v in vectors["chain"]:
        tenant, w = uid(v["tenant"]), v["subject_wrap_version"]
        swk_context = lp(tenant) + lp(scope_bytes("subject_wrap", None)) + u32(w)
        assert swk_context.hex() == v["subject_wrap_context"], v["name"]
        wrapped_swk = bytes.fromhex(v["wrapped_subject_wrap_key"])
        assert struct.unpack(">I", wrapped_swk[2:6])[0] == v["root_version"], v["name"]
        swk = unwrap(bytes.fromhex(v["root_key"]), wrapped_swk, swk_context, 0x01)
        assert swk.hex() == v["subject_wrap_key"], v["name"] + ": subject-wrap key"
        wrapping = hkdf(swk, lp(b"subject-key-wrap") + lp(tenant) + u32(w))
        assert wrapping.hex() == v["subject_key_wrapping_key"], v["name"]
        sk_context = (lp(tenant) + lp(scope_bytes("subject", v["subject"]))
                      + u32(v["subject_key_version"]))
        assert sk_context.hex() == v["subject_key_context"], v["name"]
        wrapped_sk = bytes.fromhex(v["wrapped_subject_key"])
        assert struct.unpack(">I", wrapped_sk[2:6])[0] == w, v["name"]
        sk = unwrap(wrapping, wrapped_sk, sk_context, 0x02)
        assert sk.hex() == v["subject_key"], v["name"] + ": subject key"
        # The header is bound: relabelled as format 1, the same bytes do not open.
        try:
            unwrap(wrapping, bytes([1]) + wrapped_sk[1:], sk_context, 0x01)
            raise AssertionError(v["name"] + ": a relabelled wrap opened")
        except InvalidTag:
            pass
        env = bytes.fromhex(v["envelope"])
        e = dict(v, scope="subject", scope_key=sk.hex(), key_version=v["subject_key_version"])
        header, nonce, body = parse(env, True)
        plain = AESGCM(field_key(e)).decrypt(nonce, body, aad(e, header))
        assert plain == v["plaintext"].encode(), v["name"] + ": plaintext"
    print(f"subject-wrap chain: {len(vectors['chain'])} vectors unwrapped and opened")
    return len(vectors["chain"])


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "crates/plenum-crypto/tests/data/vectors-v1.json"
    with open(path, encoding="utf-8") as f:
        vectors = json.load(f)
    check_envelopes(vectors)
    check_blind_indexes(vectors)
    check_key_wraps(vectors)
    total = sum(len(vectors[k]) for k in ("envelope", "invalid", "blind_index", "key_wrap"))
    if len(sys.argv) > 2:
        total += check_pseudonyms(sys.argv[2])
    if len(sys.argv) > 3:
        total += check_subject_wrap_chain(sys.argv[3])
    print(f"interop: {total} passed, 0 failed")


if __name__ == "__main__":
    main()
