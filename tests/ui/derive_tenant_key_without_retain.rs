// A person's data under the tenant key survives their erasure: that needs a stated ground.
use plenum::Record;
use plenum::core::{RecordId, SubjectId, TenantId};
use plenum::store::Encrypted;

#[derive(Record)]
#[plenum(record_type = "invoices", erasure = "delete")]
struct Invoice {
    #[plenum(id)]
    id: RecordId,
    #[plenum(tenant)]
    tenant: TenantId,
    #[plenum(subject)]
    subject: SubjectId,
    #[plenum(pii = "user.name", owner = "tenant")]
    billing_name: Encrypted<String>,
}

#[derive(Record)]
#[plenum(record_type = "notes", erasure = "delete")]
struct Note {
    #[plenum(id)]
    id: RecordId,
    #[plenum(tenant)]
    tenant: TenantId,
    #[plenum(subject)]
    subject: SubjectId,
    #[plenum(pii = "user.name", retain = "legal_obligation")]
    name: Encrypted<String>,
}

fn main() {}
