//! Signed checkpoints: C2SP `tlog-checkpoint` bodies signed as C2SP `signed-note`s with
//! Ed25519, so existing transparency-log tooling can read them.
//!
//! ```text
//! plenum.audit/<tenant uuid>
//! <tree size>
//! <base64 root hash>
//! time <unix seconds>
//!
//! — <key name> <base64(key id (4 bytes) || Ed25519 signature (64 bytes))>
//! ```
//!
//! The signature covers the body: every line above the blank line, each ending in `\n`. The
//! key id is the first four bytes of `SHA-256(<key name> || "\n" || 0x01 || public key)`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use plenum_core::TenantId;
use plenum_crypto::digest::sha256;
use plenum_crypto::signing::{PUBLIC_KEY_LEN, SIGNATURE_LEN, SigningKey, VerifyingKey};

use crate::error::Error;
use crate::merkle::Hash;

/// The Ed25519 signature type byte of C2SP signed notes.
const ED25519: u8 = 0x01;
/// The line prefix of a note signature: an em dash and a space.
const SIG_PREFIX: &str = "\u{2014} ";

/// The origin line of `tenant`'s log.
pub fn origin(tenant: TenantId) -> String {
    format!("plenum.audit/{tenant}")
}

/// A tree head: the log of `origin` had `size` entries with root `root` at `time`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// The tenant whose log this is.
    pub tenant: TenantId,
    /// Number of entries.
    pub size: u64,
    /// RFC 6962 root of those entries.
    pub root: Hash,
    /// Unix seconds when it was issued.
    pub time: i64,
}

impl Checkpoint {
    /// The note body (what is signed).
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\ntime {}\n",
            origin(self.tenant),
            self.size,
            B64.encode(self.root),
            self.time
        )
    }

    fn parse_body(body: &str) -> Result<Self, Error> {
        let bad = Error::MalformedCheckpoint;
        let mut lines = body
            .strip_suffix('\n')
            .ok_or(bad("body must end in a newline"))?
            .split('\n');
        let origin_line = lines.next().ok_or(bad("no origin"))?;
        let tenant = origin_line
            .strip_prefix("plenum.audit/")
            .and_then(|t| t.parse::<TenantId>().ok())
            .ok_or(bad("origin is not plenum.audit/<tenant>"))?;
        let size = lines
            .next()
            .filter(|s| decimal(s))
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or(bad("size is not a decimal number"))?;
        let root: Hash = lines
            .next()
            .and_then(|r| B64.decode(r).ok())
            .and_then(|r| r.try_into().ok())
            .ok_or(bad("root is not 32 bytes of base64"))?;
        let time = lines
            .next()
            .and_then(|l| l.strip_prefix("time "))
            .filter(|t| decimal(t))
            .and_then(|t| t.parse::<i64>().ok())
            .ok_or(bad("no time line"))?;
        if lines.next().is_some() {
            return Err(bad("unknown extension line"));
        }
        Ok(Self {
            tenant,
            size,
            root,
            time,
        })
    }
}

/// `0` or a decimal number without leading zeros or sign: the only spelling of a number in a
/// checkpoint.
fn decimal(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'))
}

fn key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    let digest = sha256(&[name.as_bytes(), b"\n", &[ED25519], &key.to_bytes()]);
    [digest[0], digest[1], digest[2], digest[3]]
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['+', ' ', '\n']) && name.is_ascii()
}

/// Signs checkpoints under one named Ed25519 key.
#[derive(Debug)]
pub struct CheckpointSigner {
    name: String,
    key: SigningKey,
}

impl CheckpointSigner {
    /// A signer called `name` (no spaces or `+`; e.g. `plenum.audit.2026`).
    ///
    /// # Errors
    ///
    /// [`Error::MalformedKey`] for an unusable name.
    pub fn new(name: &str, key: SigningKey) -> Result<Self, Error> {
        if !valid_name(name) {
            return Err(Error::MalformedKey(
                "key name must be ASCII without '+' or spaces",
            ));
        }
        Ok(Self {
            name: name.to_owned(),
            key,
        })
    }

    /// The verifier key to publish: `<name>+<hex key id>+<base64(0x01 || public key)>`.
    pub fn verifier(&self) -> VerifierKey {
        VerifierKey {
            name: self.name.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// The signed note of `checkpoint`.
    pub fn sign(&self, checkpoint: &Checkpoint) -> String {
        let body = checkpoint.body();
        let signature = self.key.sign(body.as_bytes());
        let mut blob = Vec::with_capacity(4 + SIGNATURE_LEN);
        blob.extend_from_slice(&key_id(&self.name, &self.key.verifying_key()));
        blob.extend_from_slice(&signature);
        format!("{body}\n{SIG_PREFIX}{} {}\n", self.name, B64.encode(blob))
    }
}

/// A trusted public key for checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    key: VerifyingKey,
}

impl VerifierKey {
    /// Parses the C2SP verifier key form `<name>+<hex key id>+<base64(0x01 || key)>`.
    ///
    /// # Errors
    ///
    /// [`Error::MalformedKey`].
    pub fn parse(text: &str) -> Result<Self, Error> {
        let bad = Error::MalformedKey;
        let mut parts = text.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected <name>+<key id>+<key>"));
        };
        if !valid_name(name) {
            return Err(bad("bad key name"));
        }
        let raw = B64.decode(key).map_err(|_| bad("key is not base64"))?;
        let (Some(&ED25519), Ok(bytes)) = (
            raw.first(),
            <[u8; PUBLIC_KEY_LEN]>::try_from(raw.get(1..).unwrap_or_default()),
        ) else {
            return Err(bad("not an Ed25519 key"));
        };
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| bad("not an Ed25519 point"))?;
        let this = Self {
            name: name.to_owned(),
            key,
        };
        if crate::event::hex(&key_id(name, &key)) != id {
            return Err(bad("key id does not match the key"));
        }
        Ok(this)
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl core::fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut raw = vec![ED25519];
        raw.extend_from_slice(&self.key.to_bytes());
        write!(
            f,
            "{}+{}+{}",
            self.name,
            crate::event::hex(&key_id(&self.name, &self.key)),
            B64.encode(raw)
        )
    }
}

/// Opens a signed note: at least one signature line must verify under one of `trusted`
/// (matched by name and key id; unknown signers are ignored, as C2SP prescribes).
///
/// # Errors
///
/// [`Error::MalformedCheckpoint`], or [`Error::Unsigned`] when no trusted signature verifies.
pub fn open(note: &str, trusted: &[VerifierKey]) -> Result<Checkpoint, Error> {
    let bad = Error::MalformedCheckpoint;
    let (body, signatures) = note
        .split_once("\n\n")
        .ok_or(bad("no blank line before the signatures"))?;
    let body = format!("{body}\n");
    let checkpoint = Checkpoint::parse_body(&body)?;
    let mut verified = false;
    for line in signatures
        .strip_suffix('\n')
        .unwrap_or(signatures)
        .split('\n')
    {
        let rest = line
            .strip_prefix(SIG_PREFIX)
            .ok_or(bad("signature line must start with an em dash"))?;
        let (name, blob) = rest.split_once(' ').ok_or(bad("signature line"))?;
        let blob = B64
            .decode(blob)
            .map_err(|_| bad("signature is not base64"))?;
        let Some(id) = blob.get(..4) else {
            continue; // too short for any signer we know: another signer's, ignored
        };
        for key in trusted
            .iter()
            .filter(|k| k.name == name && key_id(&k.name, &k.key) == id)
        {
            // A line naming a trusted signer (name and key id) that does not verify is a
            // forgery or a corruption, not another signer's: the whole note is refused even if
            // another line verifies, as C2SP signed-note verifiers do.
            let sig = blob
                .get(4..)
                .and_then(|s| <[u8; SIGNATURE_LEN]>::try_from(s).ok())
                .ok_or(Error::BadSignature)?;
            key.key
                .verify(body.as_bytes(), &sig)
                .map_err(|_| Error::BadSignature)?;
            verified = true;
        }
    }
    if verified {
        Ok(checkpoint)
    } else {
        Err(Error::Unsigned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> CheckpointSigner {
        CheckpointSigner::new("plenum.test", SigningKey::generate()).unwrap()
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            tenant: TenantId::generate(),
            size: 42,
            root: [9; 32],
            time: 1_800_000_000,
        }
    }

    #[test]
    fn a_signed_note_opens_under_its_key_only() {
        let (s, c) = (signer(), checkpoint());
        let note = s.sign(&c);
        assert!(note.starts_with(&format!("plenum.audit/{}\n42\n", c.tenant)));
        let key = VerifierKey::parse(&s.verifier().to_string()).unwrap();
        assert_eq!(open(&note, &[key]).unwrap(), c);
        assert_eq!(open(&note, &[signer().verifier()]), Err(Error::Unsigned));
        assert_eq!(open(&note, &[]), Err(Error::Unsigned));
    }

    #[test]
    fn any_change_to_a_note_is_refused() {
        let (s, c) = (signer(), checkpoint());
        let note = s.sign(&c);
        let trusted = [s.verifier()];
        for (from, to) in [("\n42\n", "\n43\n"), ("time 1800", "time 1900")] {
            let changed = note.replacen(from, to, 1);
            assert_ne!(changed, note);
            assert!(open(&changed, &trusted).is_err(), "{from} -> {to}");
        }
        let mut bytes = note.clone().into_bytes();
        let at = note.find("\n\n").unwrap() - 3;
        bytes[at] ^= 1;
        let flipped = String::from_utf8(bytes).unwrap();
        assert!(open(&flipped, &trusted).is_err());
    }

    #[test]
    fn a_bad_line_from_a_trusted_key_refuses_the_note_whatever_else_verifies() {
        let (s, c) = (signer(), checkpoint());
        let note = s.sign(&c);
        let trusted = [s.verifier()];
        let good = note.lines().last().unwrap().to_owned();
        // The same signer's line with one signature byte flipped, added after the good one.
        let (head, blob) = good.rsplit_once(' ').unwrap();
        let mut bytes = B64.decode(blob).unwrap();
        bytes[10] ^= 1;
        let bad = format!("{head} {}", B64.encode(&bytes));
        let both = format!("{note}{bad}\n");
        assert_eq!(open(&both, &trusted), Err(Error::BadSignature));
        // An unknown signer's line next to the good one is ignored, as C2SP prescribes.
        let other = signer().sign(&c);
        let foreign = other.lines().last().unwrap();
        assert_eq!(open(&format!("{note}{foreign}\n"), &trusted).unwrap(), c);
    }

    #[test]
    fn verifier_keys_check_their_id() {
        let text = signer().verifier().to_string();
        let mut parts: Vec<&str> = text.split('+').collect();
        parts[1] = "00000000";
        assert!(VerifierKey::parse(&parts.join("+")).is_err());
        assert!(VerifierKey::parse("nonsense").is_err());
    }
}
