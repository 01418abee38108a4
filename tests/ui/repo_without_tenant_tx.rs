// A repository needs a tenant transaction; a pool (or nothing) is not one.
use plenum::prelude::*;
use plenum::store::PurposeGrant;
use plenum_hvac::Customer;

async fn lookup(records: &Records, pool: &TenantPool, grant: &PurposeGrant<'_>, id: RecordId) {
    let customers = records.repository::<Customer>();
    let _ = customers.get(pool, grant, id).await;
    let _ = customers.count(grant).await;
}

fn main() {}
