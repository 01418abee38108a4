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
    alternate(rt, b, other, measured, 1);
}

/// How many runs of one variant [`block_paired`] makes before switching to the other.
const BLOCK: u64 = 32;

/// The paired design by blocks, for variants on **different connection pools** whose single run
/// lasts a few round trips: each sample alternates blocks of 32 untimed runs of `other` with
/// blocks of 32 timed runs of `measured`, so noise still lands on both variants within
/// milliseconds of each other, while consecutive runs use the same pool. Alternating pools run
/// by run added ~170 us to a ~200 us point get on the development VM, whichever pool was timed
/// (measured: the same hand-written statements through a second, identical raw pool): a
/// property of the alternation, not of either variant. One switch per block is still paid,
/// alike by both sides (a few us per run).
pub fn block_paired<O, M, FO, FM>(rt: &Runtime, b: &mut Bencher<'_>, other: O, measured: M)
where
    O: Fn() -> FO,
    M: Fn() -> FM,
    FO: Future,
    FM: Future,
{
    alternate(rt, b, other, measured, BLOCK);
}

/// Blocks of `block` untimed runs of `other` and `block` timed runs of `measured`, until
/// criterion's `iters` timed runs are done.
fn alternate<O, M, FO, FM>(rt: &Runtime, b: &mut Bencher<'_>, other: O, measured: M, block: u64)
where
    O: Fn() -> FO,
    M: Fn() -> FM,
    FO: Future,
    FM: Future,
{
    b.iter_custom(|iters| {
        rt.block_on(async {
            let mut timed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(block);
                for _ in 0..n {
                    other().await;
                }
                let start = Instant::now();
                for _ in 0..n {
                    measured().await;
                }
                timed += start.elapsed();
                left -= n;
            }
            timed
        })
    });
}
