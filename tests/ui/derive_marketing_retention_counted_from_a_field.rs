// Marketing data's period counts from the subject's marketing consent ending, an event the
// library reads from the consent ledger: a field to count from would be a second, conflicting
// clock.
use plenum::prelude::*;

#[derive(Record)]
#[plenum(
    record_type = "leads",
    erasure = "delete",
    retention = "marketing_data",
    counted_from = "captured_on"
)]
struct Lead {
    #[plenum(id)]
    id: RecordId,
    #[plenum(tenant)]
    tenant: TenantId,
    #[plenum(subject)]
    subject: SubjectId,
    #[plenum(category = "system.operations")]
    captured_on: chrono::NaiveDate,
}

fn main() {}
