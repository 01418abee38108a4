// A purpose grant cannot be built by user code: only `Gate::grant` and `Gate::unrestricted`
// mint one. Its fields are private, and so is the type of its scope.
use plenum::consent::Policy;
use plenum::store::{PurposeGrant, Request};

fn forge<'r>(request: &'r Request, policy: &'r Policy) -> PurposeGrant<'r> {
    PurposeGrant {
        request,
        policy,
        scope: todo!(),
    }
}

fn main() {}
