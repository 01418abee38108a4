//! `Encrypted<T>`: an encrypted field with explicit states (unsaved plaintext, sealed with its
//! resolved key, withheld, erased). Plaintext leaves only through `open()`; there is no sqlx
//! `Encode`/`Decode`, so nothing stores or reads one outside a repository.

use core::fmt;
use std::sync::Arc;

use plenum_core::RecordId;
use plenum_crypto::{BlindIndex, BlindIndexer, Envelope, FieldKey, KeyScopeKind, Pii, PiiValue};

use crate::error::Error;

/// An encrypted field of a record.
///
/// Set it from plaintext with [`Encrypted::new`]; the repository seals it on write, bound to the
/// tenant, record type, field, data subject and record id. A field read from the database stays
/// sealed until [`Encrypted::open`] is called, so fields nobody asks for are never decrypted.
///
/// There is no `Display` and no `Serialize`, and `Debug` says only which state the value is in:
/// plaintext leaves through [`Encrypted::open`] and then [`Pii::expose`], both greppable.
pub struct Encrypted<T: PiiValue> {
    state: State<T>,
    /// Where a value read from the database was read from (record, field position): an update
    /// leaves a field alone only if it still holds its own stored value, and re-seals one
    /// copied from another record or field.
    origin: Option<(RecordId, usize)>,
}

enum State<T: PiiValue> {
    /// Set by the caller, not stored yet (or changed since it was read).
    Plain(Pii<T>),
    /// Read from the database: the envelope, the key that opens it and the record it is bound
    /// to.
    Loaded {
        envelope: Envelope,
        key: KeySlot,
        record: RecordId,
    },
    /// Read under a purpose that may not see this field: no envelope, no key, nothing that
    /// could be decrypted.
    Withheld,
}

/// The key for a loaded value, resolved when the row was read.
#[derive(Clone)]
pub(crate) enum KeySlot {
    Ready(OpeningKey),
    /// The key version was destroyed: the subject was erased. The row can still be read; this
    /// field cannot.
    Destroyed {
        scope: KeyScopeKind,
        version: u32,
    },
    /// The stored value is not an envelope this field's keys can open (malformed, or naming a
    /// key version that does not exist): tampered with. The rest of the row, and the other
    /// rows of the page, are still returned; this field refuses to open.
    Unreadable,
}

/// The key a loaded value opens with. A row's subject-owned fields share their subject's
/// bundle: each holds the bundle and its place in it. A page of 500 customers holds 2,000 field
/// keys, each in memory of its own that is cold in the CPU cache; a reference count per field
/// touched each of them once more on the read and once more on the drop, before any field was
/// opened. Holding the bundle touches one count per row, on memory the lookup just read.
#[derive(Clone)]
pub(crate) enum OpeningKey {
    /// A key looked up for this field alone (tenant-owned, or mid-rotation).
    Own(FieldKey),
    /// Field `index` of a subject's bundle; built only through [`OpeningKey::bundled`].
    Bundled {
        bundle: Arc<[FieldKey]>,
        index: usize,
    },
}

impl KeySlot {
    /// The key, if the value can be opened.
    pub(crate) fn ready_key(&self) -> Option<&FieldKey> {
        match self {
            Self::Ready(key) => key.key(),
            Self::Destroyed { .. } | Self::Unreadable => None,
        }
    }
}

impl OpeningKey {
    /// Field `index` of `bundle`, or `None` if the bundle has no such field.
    pub(crate) fn bundled(bundle: &Arc<[FieldKey]>, index: usize) -> Option<Self> {
        (index < bundle.len()).then(|| Self::Bundled {
            bundle: bundle.clone(),
            index,
        })
    }

    /// The field key itself.
    pub(crate) fn key(&self) -> Option<&FieldKey> {
        match self {
            Self::Own(key) => Some(key),
            Self::Bundled { bundle, index } => bundle.get(*index),
        }
    }
}

/// A value sealed for one record, with its blind index if the field has one.
pub(crate) struct Sealed {
    pub(crate) envelope: Envelope,
    pub(crate) index: Option<BlindIndex>,
    /// For an indexed field, when asked for: the plaintext that was indexed, so that uniqueness
    /// can be checked against rows still indexed under an older index key version.
    pub(crate) indexed: Option<Pii<String>>,
}

impl<T: PiiValue> Encrypted<T> {
    /// A plaintext value, to be sealed when the record is written.
    pub fn new(value: T) -> Self {
        Self {
            state: State::Plain(Pii::new(value)),
            origin: None,
        }
    }

    /// Replaces the value; the next update re-seals this field (and only the changed fields).
    pub fn set(&mut self, value: T) {
        self.state = State::Plain(Pii::new(value));
        self.origin = None;
    }

    /// Decrypts the value (or returns the plaintext set since it was read). Every call decrypts
    /// again; keep the result if you need it twice.
    ///
    /// # Errors
    ///
    /// [`Error::Crypto`] with [`KeyDestroyed`](plenum_crypto::Error::KeyDestroyed) for an erased
    /// subject, [`DecryptionFailed`](plenum_crypto::Error::DecryptionFailed) for a ciphertext
    /// that was modified or moved from another row, field or tenant.
    pub fn open(&self) -> Result<Pii<T>, Error>
    where
        T: Clone,
    {
        match &self.state {
            State::Plain(p) => Ok(p.clone()),
            State::Loaded {
                envelope,
                key,
                record,
            } => open_loaded(envelope, key, *record),
            State::Withheld => Err(Error::Withheld),
        }
    }

    /// Whether the field was withheld from the purpose it was read under.
    pub fn is_withheld(&self) -> bool {
        matches!(self.state, State::Withheld)
    }

    /// Whether the value is as it was read from the database (not set since).
    pub fn is_loaded(&self) -> bool {
        matches!(self.state, State::Loaded { .. })
    }

    /// The stored envelope, for a value read from the database: what the column holds.
    pub fn envelope(&self) -> Option<&Envelope> {
        match &self.state {
            State::Loaded { envelope, .. } => Some(envelope),
            State::Plain(_) | State::Withheld => None,
        }
    }

    /// Withheld from the purpose that read field `field` of `record`.
    pub(crate) fn withheld(record: RecordId, field: usize) -> Self {
        Self {
            state: State::Withheld,
            origin: Some((record, field)),
        }
    }

    /// Read from field `field` of `record`.
    pub(crate) fn loaded(bytes: Vec<u8>, key: KeySlot, record: RecordId, field: usize) -> Self {
        Self {
            state: State::Loaded {
                envelope: Envelope::from_bytes(bytes),
                key,
                record,
            },
            origin: Some((record, field)),
        }
    }

    /// Whether this is the value stored in field `field` of `record`, as read and not set
    /// since: what an update may leave alone.
    pub(crate) fn is_stored_at(&self, record: RecordId, field: usize) -> bool {
        self.origin == Some((record, field)) && !matches!(self.state, State::Plain(_))
    }

    /// Seals for `record` under `key`; a loaded value is opened with its own key first (copying
    /// a field to another record re-seals it for that record).
    pub(crate) fn seal_for(
        &self,
        key: &FieldKey,
        record: RecordId,
        indexer: Option<&BlindIndexer>,
        keep_indexed: bool,
    ) -> Result<Sealed, Error> {
        let opened;
        let plain: &Pii<T> = match &self.state {
            State::Plain(p) => p,
            State::Loaded {
                envelope,
                key: own,
                record: own_record,
            } => {
                opened = open_loaded::<T>(envelope, own, *own_record)?;
                &opened
            }
            State::Withheld => return Err(Error::Withheld),
        };
        let envelope = key.seal(record, plain)?;
        let (index, indexed) = match indexer {
            None => (None, None),
            Some(indexer) => {
                let text = plain
                    .expose()
                    .encoded_slice()
                    .and_then(|b| core::str::from_utf8(b).ok())
                    .ok_or(Error::Config("a blind index needs a text field"))?;
                (
                    Some(indexer.compute(text)?),
                    keep_indexed.then(|| Pii::new(text.to_owned())),
                )
            }
        };
        Ok(Sealed {
            envelope,
            index,
            indexed,
        })
    }
}

fn open_loaded<T: PiiValue>(
    envelope: &Envelope,
    key: &KeySlot,
    record: RecordId,
) -> Result<Pii<T>, Error> {
    match key {
        KeySlot::Ready(key) => match key.key() {
            Some(key) => Ok(key.open(record, envelope.as_bytes())?),
            // Unreachable by construction (`OpeningKey::bundled` checks the index); if it were
            // reached, the field refuses to open rather than the process panicking.
            None => Err(Error::Crypto(plenum_crypto::Error::DecryptionFailed)),
        },
        KeySlot::Destroyed { scope, version } => {
            Err(Error::Crypto(plenum_crypto::Error::KeyDestroyed {
                scope: *scope,
                version: *version,
            }))
        }
        KeySlot::Unreadable => Err(Error::Crypto(plenum_crypto::Error::DecryptionFailed)),
    }
}

impl<T: PiiValue> From<Pii<T>> for Encrypted<T> {
    fn from(value: Pii<T>) -> Self {
        Self {
            state: State::Plain(value),
            origin: None,
        }
    }
}

impl<T: PiiValue + Clone> Clone for Encrypted<T> {
    fn clone(&self) -> Self {
        let state = match &self.state {
            State::Plain(p) => State::Plain(p.clone()),
            State::Loaded {
                envelope,
                key,
                record,
            } => State::Loaded {
                envelope: envelope.clone(),
                key: key.clone(),
                record: *record,
            },
            State::Withheld => State::Withheld,
        };
        Self {
            state,
            origin: self.origin,
        }
    }
}

impl<T: PiiValue> fmt::Debug for Encrypted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Plain(_) => "unsaved",
            State::Loaded {
                key: KeySlot::Ready(_),
                ..
            } => "sealed",
            State::Loaded {
                key: KeySlot::Destroyed { .. },
                ..
            } => "erased",
            State::Loaded {
                key: KeySlot::Unreadable,
                ..
            } => "unreadable",
            State::Withheld => "withheld",
        };
        write!(f, "Encrypted<{}>({state})", T::TYPE_NAME)
    }
}
