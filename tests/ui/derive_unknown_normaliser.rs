use plenum::Record;
use plenum::core::{RecordId, SubjectId, TenantId};
use plenum::store::Encrypted;

#[derive(Record)]
#[plenum(record_type = "leads", erasure = "delete")]
struct Lead {
    #[plenum(id)]
    id: RecordId,
    #[plenum(tenant)]
    tenant: TenantId,
    #[plenum(subject)]
    subject: SubjectId,
    #[plenum(pii = "user.name", blind_index = "soundex")]
    name: Encrypted<String>,
}

fn main() {}
