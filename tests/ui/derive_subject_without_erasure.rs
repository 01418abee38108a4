// A record with a subject says what erasing the subject does to its rows.
use plenum::Record;
use plenum::core::{RecordId, SubjectId, TenantId};
use plenum::store::Encrypted;

#[derive(Record)]
#[plenum(record_type = "contacts")]
struct Contact {
    #[plenum(id)]
    id: RecordId,
    #[plenum(tenant)]
    tenant: TenantId,
    #[plenum(subject)]
    subject: SubjectId,
    #[plenum(pii = "user.name")]
    name: Encrypted<String>,
}

fn main() {}
