use plenum::Record;
use plenum::core::{RecordId, TenantId};

#[derive(Record)]
#[plenum(record_type = "vendors")]
struct Vendor {
    #[plenum(id)]
    id: RecordId,
    #[plenum(tenant)]
    tenant: TenantId,
    #[plenum(category = "system.operations", blind_index = "email-v1")]
    email: String,
}

fn main() {}
