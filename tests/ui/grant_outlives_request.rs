// A grant borrows its request: it cannot be kept after the request is gone (say, cached
// across a consent withdrawal).
use plenum::consent::Purpose;
use plenum::store::{Gate, PurposeGrant, Request};

fn keep(gate: &Gate, request: Request) -> PurposeGrant<'_> {
    gate.grant(&request, Purpose::Scheduling).unwrap()
}

fn main() {}
