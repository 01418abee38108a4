//! Parses and opens arbitrary bytes as an envelope, a wrapped key and a blind index, under a
//! context taken from the input. Must never panic; anything it opens must re-seal consistently.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plenum_core::{FieldName, RecordId, RecordType, SubjectId, TenantId};
use plenum_crypto::{Backend, BlindIndex, Envelope, FieldLocator, Owner, internal};

fuzz_target!(|data: &[u8]| {
    if data.len() < 34 {
        let _ = Envelope::from_bytes(data.to_vec()).key_version();
        return;
    }
    let (ids, body) = data.split_at(33);
    let uuid = |b: &[u8]| uuid::Uuid::from_slice(b).unwrap_or(uuid::Uuid::max());
    let locator = FieldLocator {
        tenant: TenantId::from_trusted_uuid(uuid(&ids[..16])),
        record_type: RecordType::new("customer").unwrap(),
        field: FieldName::new("email").unwrap(),
        owner: if ids[32] & 1 == 1 {
            Owner::Subject(SubjectId::from_trusted_uuid(uuid(&ids[16..32])))
        } else {
            Owner::Tenant
        },
    };
    let record = RecordId::from_trusted_uuid(uuid(&ids[16..32]));
    let _ = internal::open_vector(Backend::RustCrypto, [0x42; 32], &locator, record, body);
    let _ = internal::unwrap(Backend::RustCrypto, [0x42; 32], body, ids);
    let _ = BlindIndex::from_bytes(body);
    let _ = Envelope::from_bytes(body.to_vec()).key_version();
});
