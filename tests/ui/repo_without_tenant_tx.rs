// A repository needs a tenant transaction; a pool (or nothing) is not one.
use plenum::prelude::*;
use plenum_hvac::Customer;

async fn lookup(records: &Records, pool: &TenantPool, id: RecordId) {
    let customers = records.repository::<Customer>();
    let _ = customers.get(pool, id).await;
    let _ = customers.count().await;
}

fn main() {}
