//! The vector type every fast kernel uses; the only file that names `wide`.
//!
//! With `-C target-cpu=native` on an AVX-512 machine `V` is `f32x16` (one zmm register);
//! everywhere else it is `f32x8` (one ymm register on AVX2, two xmm on older CPUs).
//! `mul_add` compiles to a single fused multiply-add when the `fma` feature is on.
//!
//! `RUSTFLAGS="--cfg stylize_f32x16"` forces the AVX-512 layout (`f32x16`, `NR = 32`, `MR = 12`)
//! on any CPU, where `wide` runs each vector as two halves: slower, but it lets a machine without
//! AVX-512 run the test suite over the layout an AVX-512 machine uses (see `.ci/run`).

#[cfg(any(target_feature = "avx512f", stylize_f32x16))]
pub use wide::f32x16 as V;
#[cfg(not(any(target_feature = "avx512f", stylize_f32x16)))]
pub use wide::f32x8 as V;

/// Eight doubles, for the few transforms done in f64 (Winograd's weight transform, whose
/// constants 1/6 and 1/12 are not floats): one zmm register on AVX-512, two ymm on AVX2.
pub use wide::f64x8 as VD;

/// Floats per vector register.
#[cfg(any(target_feature = "avx512f", stylize_f32x16))]
pub const LANES: usize = 16;
/// Floats per vector register.
#[cfg(not(any(target_feature = "avx512f", stylize_f32x16)))]
pub const LANES: usize = 8;

/// Vector registers a sliding-window kernel gives to accumulators: 24 of AVX-512's 32, 12 of
/// AVX2's 16, leaving room for the vectors each step loads or broadcasts into them
/// (`few_outputs`: the broadcast weights and an input vector; `sliding_gradient`: the shifted
/// rows of x and a vector of dY).
pub const ACCUMULATORS: usize = if LANES == 16 { 24 } else { 12 };

/// Asks the CPU to bring the cache line holding `s[ahead]` into L1 (`prefetcht0`), whether or
/// not that lies inside `s`: a hint that never faults, a no-op off x86-64.
#[inline(always)]
pub fn prefetch(s: &[f32], ahead: usize) {
    // SAFETY: SSE is part of x86-64, and a prefetch reads nothing the program sees: an address
    // outside any mapping is ignored, never faulted on (`wrapping_add` keeps the pointer
    // arithmetic itself defined).
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(s.as_ptr().wrapping_add(ahead).cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (s, ahead);
}

/// Loads `LANES` floats from the front of `s` (panics if `s` is shorter).
#[inline(always)]
pub fn load(s: &[f32]) -> V {
    let a: [f32; LANES] = s[..LANES].try_into().expect("slice has LANES elements");
    V::new(a)
}

/// Stores `v` into the first `LANES` floats of `out`.
#[inline(always)]
pub fn store(v: V, out: &mut [f32]) {
    out[..LANES].copy_from_slice(&v.to_array());
}

/// The first 8 floats of `s` (panics if `s` is shorter), as a row for [`transpose8`].
#[inline(always)]
pub fn load8(s: &[f32]) -> [f32; 8] {
    s[..8].try_into().expect("slice has 8 elements")
}

/// The transpose of an 8x8 block: eight unpacks, eight shuffles and eight permutes on AVX
/// (`wide::f32x8::transpose`). Packing uses it to turn eight columns, read as contiguous runs,
/// into eight rows, where element-wise copies compile to scatters (microcoded on AMD Zen 4:
/// about 3x slower than this).
#[inline(always)]
pub fn transpose8(rows: [[f32; 8]; 8]) -> [[f32; 8]; 8] {
    wide::f32x8::transpose(rows.map(wide::f32x8::new)).map(|v| v.to_array())
}
