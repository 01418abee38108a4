// A retention period counts from a plain date the database can compare: not from an encrypted
// field, whose value the database never sees.
use plenum::prelude::*;

#[derive(Record)]
#[plenum(
    record_type = "receipts",
    erasure = "delete",
    retention = "financial_records",
    counted_from = "paid_on"
)]
struct Receipt {
    #[plenum(id)]
    id: RecordId,
    #[plenum(tenant)]
    tenant: TenantId,
    #[plenum(subject)]
    subject: SubjectId,
    #[plenum(pii = "user.financial")]
    paid_on: Encrypted<String>,
}

fn main() {}
