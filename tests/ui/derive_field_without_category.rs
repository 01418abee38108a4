// A plain field without a category used to default to `system.operations`, which every
// purpose may see: an unannotated nickname reached `marketing.email`. Every field declares it.
use plenum::Record;
use plenum::core::{RecordId, SubjectId, TenantId};

#[derive(Record)]
#[plenum(record_type = "contacts", erasure = "delete")]
struct Contact {
    #[plenum(id)]
    id: RecordId,
    #[plenum(tenant)]
    tenant: TenantId,
    #[plenum(subject)]
    subject: SubjectId,
    nickname: String,
}

fn main() {}
