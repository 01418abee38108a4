//! criterion benchmarks live beside this file as bench targets; this library holds what they
//! share.

#![forbid(unsafe_code)]

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
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
                    CountedOther::new(other()).await;
                }
                let start = Instant::now();
                for _ in 0..n {
                    CountedMeasured::new(measured()).await;
                }
                timed += start.elapsed();
                left -= n;
            }
            timed
        })
    });
}

/// Defines a wrapper giving a variant's future a poll function of its own, never inlined, so
/// that callgrind can count one side of a pair whatever the compiler inlined: symbol names
/// carry the wrapper's name but not its type parameter, hence one type per side. `$side` only
/// makes the two sides' code differ: rustc merges identical functions, and the measured side's
/// poll of a future would otherwise be folded into the other side's poll of the same future
/// (and counted under its name).
macro_rules! counted {
    ($(#[$doc:meta])* $name:ident, $side:literal) => {
        $(#[$doc])*
        pub struct $name<F>(Pin<Box<F>>);

        impl<F> core::fmt::Debug for $name<F> {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.debug_struct(stringify!($name)).finish_non_exhaustive()
            }
        }

        impl<F: Future> $name<F> {
            /// Wraps `future`.
            pub fn new(future: F) -> Self {
                Self(Box::pin(future))
            }
        }

        impl<F: Future> Future for $name<F> {
            type Output = F::Output;

            #[inline(never)]
            fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
                std::hint::black_box($side);
                self.get_mut().0.as_mut().poll(cx)
            }
        }
    };
}

counted!(
    /// The timed variant of a pair, for callgrind: `--toggle-collect='*CountedMeasured*'`
    /// collects only its work (`benches/README.md`, "Counting instructions"). One allocation
    /// per run, as for the other side.
    CountedMeasured,
    1u8
);

counted!(
    /// The untimed variant of a pair (`--toggle-collect='*CountedOther*'`).
    CountedOther,
    2u8
);
