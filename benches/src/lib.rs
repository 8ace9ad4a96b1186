//! Criterion benchmarks of the tensor kernels (see `benches/*.rs` and `README.md`).
//!
//! Helpers shared by the benchmarks: deterministic inputs and a FLOP-count throughput, which
//! criterion reports as "elem/s": read Gelem/s as GFLOP/s.

/// `n` pseudo-random values in [-1, 1), fixed by `seed` (the tests' generator, [`tensor::Rng`]).
pub fn data(n: usize, seed: u64) -> Vec<f32> {
    tensor::Rng::new(seed).vec(n)
}

/// FLOPs of an `m x k` by `k x n` product (one multiply and one add per term).
pub fn gemm_flops(m: usize, n: usize, k: usize) -> u64 {
    2 * (m * n * k) as u64
}

pub mod winograd_tiles;
