// Every repository method takes a purpose grant: there is no read or write without one.
use plenum::prelude::*;
use plenum_hvac::Customer;

async fn ungated(records: &Records, tx: &mut TenantTx, customer: &Customer) {
    let customers = records.repository::<Customer>();
    let _ = customers.get(tx, customer.id).await;
    let _ = customers.list(tx, None, 10).await;
    let _ = customers.insert(tx, customer).await;
    let _ = customers.count(tx).await;
}

fn main() {}
