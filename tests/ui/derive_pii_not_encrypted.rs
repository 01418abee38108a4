use plenum::Record;
use plenum::core::{RecordId, SubjectId, TenantId};

#[derive(Record)]
#[plenum(record_type = "leads", erasure = "delete")]
struct Lead {
    #[plenum(id)]
    id: RecordId,
    #[plenum(tenant)]
    tenant: TenantId,
    #[plenum(subject)]
    subject: SubjectId,
    #[plenum(pii = "user.contact.email")]
    email: String,
}

fn main() {}
