//! criterion benchmarks live beside this file as bench targets; this library is empty.

#![forbid(unsafe_code)]
