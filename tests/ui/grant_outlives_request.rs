// A grant borrows its request: it cannot be kept after the request is gone (say, cached
// across a consent withdrawal).
use plenum::consent::Purpose;
use plenum::store::{Gate, PurposeGrant, Request, TenantTx};

fn keep<'g>(gate: &'g Gate, tx: &TenantTx, request: Request) -> PurposeGrant<'g> {
    gate.grant(&request, tx, Purpose::Scheduling).unwrap()
}

fn main() {}
