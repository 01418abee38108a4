// A financial record's period counts from its transaction's date: the record must say which
// field holds it.
use plenum::prelude::*;

#[derive(Record)]
#[plenum(record_type = "receipts", erasure = "delete", retention = "financial_records")]
struct Receipt {
    #[plenum(id)]
    id: RecordId,
    #[plenum(tenant)]
    tenant: TenantId,
    #[plenum(subject)]
    subject: SubjectId,
    #[plenum(category = "system.operations")]
    paid_on: chrono::NaiveDate,
}

fn main() {}
