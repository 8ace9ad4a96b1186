//! Criterion benchmarks of the tensor kernels (see `benches/*.rs` and `README.md`).
//!
//! Helpers shared by the benchmarks: deterministic inputs and a FLOP-count throughput, which
//! criterion reports as "elem/s": read Gelem/s as GFLOP/s.

/// `n` pseudo-random values in [-1, 1), fixed by `seed`.
pub fn data(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// FLOPs of an `m x k` by `k x n` product (one multiply and one add per term).
pub fn gemm_flops(m: usize, n: usize, k: usize) -> u64 {
    2 * (m * n * k) as u64
}
