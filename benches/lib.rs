//! criterion benchmarks live beside this file as bench targets; this library holds what they
//! share.

#![forbid(unsafe_code)]

use std::future::Future;
use std::time::{Duration, Instant};

use criterion::Bencher;
use tokio::runtime::Runtime;

/// The paired design: every iteration runs `other` and then `measured`, and times only
/// `measured`, so noise on the shared machine lands on both variants alike.
pub fn paired<O, M, FO, FM>(rt: &Runtime, b: &mut Bencher<'_>, other: O, measured: M)
where
    O: Fn() -> FO,
    M: Fn() -> FM,
    FO: Future,
    FM: Future,
{
    b.iter_custom(|iters| {
        rt.block_on(async {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                other().await;
                let start = Instant::now();
                measured().await;
                timed += start.elapsed();
            }
            timed
        })
    });
}
