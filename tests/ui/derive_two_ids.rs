use plenum::Record;
use plenum::core::{RecordId, TenantId};

#[derive(Record)]
#[plenum(record_type = "notes")]
struct Note {
    #[plenum(id)]
    id: RecordId,
    #[plenum(id)]
    other_id: RecordId,
    #[plenum(tenant)]
    tenant: TenantId,
}

fn main() {}
