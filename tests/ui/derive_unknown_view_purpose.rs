use plenum::Record;
use plenum::core::{RecordId, TenantId};

#[derive(Record)]
#[plenum(record_type = "leads", views("sales.lead_resale"))]
struct Lead {
    #[plenum(id)]
    id: RecordId,
    #[plenum(tenant)]
    tenant: TenantId,
}

fn main() {}
