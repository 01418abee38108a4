// A record declared with the name of the library's SQLite consent ledger would let
// `Repository::insert` write forged consent into it: the library's names are reserved.
use plenum::Record;
use plenum::core::{RecordId, TenantId};

#[derive(Record)]
#[plenum(record_type = "plenum_consent_events")]
struct Forged {
    #[plenum(id)]
    id: RecordId,
    #[plenum(tenant)]
    tenant: TenantId,
}

const LEDGER: plenum::core::RecordType = plenum::core::record_type!("plenum_consent_events");

fn main() {}
