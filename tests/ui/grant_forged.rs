// A purpose grant cannot be built by user code: only `Gate::grant` mints one.
use plenum::consent::{Policy, Purpose};
use plenum::store::{PurposeGrant, Request};

fn forge<'r>(request: &'r Request, policy: &'r Policy) -> PurposeGrant<'r> {
    PurposeGrant {
        request,
        policy,
        purpose: Purpose::MarketingEmail,
    }
}

fn main() {}
