"""An independent reader of the subject export (docs/subject-export.md), Python standard library
only: parses the JSON document and the CSV directory, checks the documented shape, compares
every inserted value (expected.json, written by `cargo run --example rights -- DIR`) with the
JSON export, and every CSV cell with the JSON export's value of the same field.

Usage: python3 .ci/interop/check_export.py DIR
Exit status 0 when everything matches; 1 with the differences listed otherwise.
"""
import csv
import json
import os
import sys

problems = []


def check(cond, what):
    if not cond:
        problems.append(what)


def cell(value, ftype):
    """The CSV text of a JSON value of a field of `ftype`, per the field types table."""
    if value is None:
        return ""
    if ftype == "boolean":
        return "true" if value else "false"
    if ftype == "integer":
        return str(value)
    return value


def main(root):
    with open(os.path.join(root, "export.json"), encoding="utf-8") as f:
        export = json.load(f)
    with open(os.path.join(root, "expected.json"), encoding="utf-8") as f:
        expected = json.load(f)

    check(export.get("format") == "plenum.subject-export", "format")
    check(export.get("version") == 1, "version")
    check(export.get("subject") == expected["subject"], "subject")
    for key in ("tenant", "generated_at", "policy_version", "record_types", "purposes",
                "retention", "consent", "access_log"):
        check(key in export, f"missing key {key}")

    types = {t["record_type"]: t for t in export["record_types"]}
    for record_type in ("customers", "properties", "invoices"):
        want = {r["id"]: r for r in expected[record_type]}
        got = {r["id"]: r for r in types[record_type]["records"]}
        check(set(want) == set(got), f"{record_type}: ids {sorted(got)} != {sorted(want)}")
        for rid, fields in want.items():
            record = got.get(rid, {})
            check(record.get("erased") == [] and record.get("unreadable") == [],
                  f"{record_type} {rid}: erased/unreadable")
            for name, value in fields.items():
                if name == "id":
                    continue
                check(record.get("fields", {}).get(name) == value,
                      f"{record_type} {rid}.{name}: {record.get('fields', {}).get(name)!r} != {value!r}")
        for field in types[record_type]["fields"]:
            check(field["type"] in ("text", "integer", "boolean", "timestamp", "date", "uuid", "bytes"),
                  f"{record_type}.{field['name']}: type {field['type']}")

    consent = [(e["kind"], e["purpose"], e["notice_version"]) for e in export["consent"]]
    for e in expected["consent"]:
        check((e["kind"], e["purpose"], e["notice_version"]) in consent, f"consent {e}")
    for p in export["purposes"]:
        check(isinstance(p["applies"], bool) and (p["applies"] or p["reason"]),
              f"purpose {p['purpose']}: applies without a reason")
    retained = [r for r in export["retention"] if r["on_erasure"] == "retain"]
    check(any(r["record_type"] == "invoices" and r["ground"] == "legal_obligation"
              and r["class"] == "financial_records" and r["kept_for"] == "7 years"
              and r["counted_from"] == "due_on" for r in retained),
          "invoices retained under a legal obligation, 7 years from due_on")
    for r in export["retention"]:
        check(r["class"] in ("financial_records", "tenant_business_data", "account_data",
                             "marketing_data") and r["kept_for"] and r["counted_from"],
              f"retention of {r['record_type']}: {r}")
    check(any(a["action"] == "export" for a in export["access_log"]), "the export is on record")

    # CSV: one file per record type with the JSON's values, cell by cell.
    csv_dir = os.path.join(root, "csv")
    with open(os.path.join(csv_dir, "export.csv"), newline="", encoding="utf-8") as f:
        head = list(csv.DictReader(f))
    check(len(head) == 1 and head[0]["format"] == "plenum.subject-export"
          and head[0]["subject"] == export["subject"] and head[0]["version"] == "1", "export.csv")
    for record_type, t in types.items():
        path = os.path.join(csv_dir, f"{record_type}.csv")
        check(os.path.exists(path), f"{record_type}.csv missing")
        if not os.path.exists(path):
            continue
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            names = [fd["name"] for fd in t["fields"]]
            check(reader.fieldnames == ["id"] + names + ["erased", "unreadable"],
                  f"{record_type}.csv header {reader.fieldnames}")
            rows = {r["id"]: r for r in reader}
        by_id = {r["id"]: r for r in t["records"]}
        check(set(rows) == set(by_id), f"{record_type}.csv ids")
        for rid, record in by_id.items():
            row = rows.get(rid, {})
            for fd in t["fields"]:
                want = cell(record["fields"][fd["name"]], fd["type"])
                check(row.get(fd["name"]) == want,
                      f"{record_type}.csv {rid}.{fd['name']}: {row.get(fd['name'])!r} != {want!r}")
            check(row.get("erased") == ";".join(record["erased"]), f"{record_type}.csv erased")
    for section, columns in (("purposes", ["purpose", "legal_basis", "applies", "reason"]),
                             ("retention", ["record_type", "on_erasure", "ground", "class",
                                            "kept_for", "counted_from"]),
                             ("consent", ["kind", "purpose", "channel", "at", "notice_version",
                                          "notice_sha256", "method"]),
                             ("access_log", ["seq", "at", "actor_kind", "actor_role", "action",
                                             "record_type", "purpose", "outcome"])):
        with open(os.path.join(csv_dir, f"{section}.csv"), newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            check(reader.fieldnames == columns, f"{section}.csv header {reader.fieldnames}")
            rows = list(reader)
        if section in ("purposes", "retention", "consent"):
            check(len(rows) == len(export[section]), f"{section}.csv rows")

    if problems:
        print("subject export: MISMATCH\n  " + "\n  ".join(problems))
        return 1
    total = sum(len(t["records"]) for t in export["record_types"])
    print(f"subject export: {total} records, {len(export['consent'])} consent events, "
          f"{len(export['access_log'])} accesses: JSON and CSV match the inserted values")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
