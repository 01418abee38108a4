//! Canonical JSON: the byte form every event is hashed in (`docs/audit-format.md`).
//!
//! The subset of RFC 8785 (JCS) that audit events use, chosen so that any language's standard
//! JSON library reproduces it (Python: `json.dumps(v, sort_keys=True, separators=(",", ":"),
//! ensure_ascii=False)`):
//!
//! - objects with ASCII keys, sorted by byte value, no duplicates;
//! - integers in `[-(2^53 - 1), 2^53 - 1]`, no fractions or exponents (no floats at all);
//! - strings escaped as JCS does: `\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, other control
//!   characters as `\u00xx` (lower-case hex), everything else as raw UTF-8;
//! - no whitespace.

use serde_json::Value;

use crate::error::Error;

/// The largest integer every JSON implementation reads exactly (IEEE 754 double).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// The canonical form of `value`.
///
/// # Errors
///
/// [`Error::NotCanonical`] for a float, an integer beyond [`MAX_SAFE_INTEGER`], or a non-ASCII
/// object key.
pub fn to_string(value: &Value) -> Result<String, Error> {
    let mut out = String::with_capacity(256);
    write(value, &mut out)?;
    Ok(out)
}

/// Parses `text` and checks that it is already canonical (what a verifier does with a stored
/// event body).
///
/// # Errors
///
/// [`Error::NotCanonical`] if it is not JSON, or not in canonical form.
pub fn parse_canonical(text: &str) -> Result<Value, Error> {
    let value: Value = serde_json::from_str(text).map_err(|_| Error::NotCanonical("not JSON"))?;
    if to_string(&value)? != text {
        return Err(Error::NotCanonical("not in canonical form"));
    }
    Ok(value)
}

fn write(value: &Value, out: &mut String) -> Result<(), Error> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let safe = n
                .as_u64()
                .map(|u| u <= MAX_SAFE_INTEGER)
                .or_else(|| n.as_i64().map(|i| i.unsigned_abs() <= MAX_SAFE_INTEGER))
                .unwrap_or(false);
            if !safe {
                return Err(Error::NotCanonical("numbers must be integers below 2^53"));
            }
            out.push_str(&n.to_string());
        }
        Value::String(s) => write_str(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(item, out)?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            if keys.iter().any(|k| !k.is_ascii()) {
                return Err(Error::NotCanonical("object keys must be ASCII"));
            }
            // Sorted here, whatever order the map keeps (serde_json's `preserve_order` feature
            // may be on elsewhere in a build).
            keys.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            out.push('{');
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(key, out);
                out.push(':');
                if let Some(v) = map.get(key.as_str()) {
                    write(v, out)?;
                }
            }
            out.push('}');
        }
    }
    Ok(())
}

fn write_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn keys_are_sorted_and_nothing_is_spaced() {
        let v = json!({"b": [1, {"z": null, "a": true}], "a": "x", "B": -3});
        assert_eq!(
            to_string(&v).unwrap(),
            r#"{"B":-3,"a":"x","b":[1,{"a":true,"z":null}]}"#
        );
    }

    #[test]
    fn strings_are_escaped_like_jcs() {
        let v = json!("q\"b\\\u{08}\u{0c}\n\r\t\u{01}\u{1f}é\u{2028}/");
        assert_eq!(
            to_string(&v).unwrap(),
            "\"q\\\"b\\\\\\b\\f\\n\\r\\t\\u0001\\u001fé\u{2028}/\""
        );
    }

    #[test]
    fn floats_big_integers_and_non_ascii_keys_are_refused() {
        for bad in [
            json!(1.5),
            json!({"n": 9_007_199_254_740_992u64}),
            json!({"é": 1}),
        ] {
            assert!(to_string(&bad).is_err(), "{bad}");
        }
        assert_eq!(
            to_string(&json!(9_007_199_254_740_991u64)).unwrap(),
            "9007199254740991"
        );
    }

    #[test]
    fn parse_canonical_refuses_other_spellings() {
        assert!(parse_canonical(r#"{"a":1,"b":2}"#).is_ok());
        for bad in [r#"{"b":2,"a":1}"#, r#"{"a": 1}"#, r#"{"a":1.0}"#, "nope"] {
            assert!(parse_canonical(bad).is_err(), "{bad}");
        }
    }
}
