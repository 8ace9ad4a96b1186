//! Register and cache blocking of the GEMM (BLIS names: Van Zee & van de Geijn, 2015).
//!
//! The micro-kernel holds an `MR x NR` tile of C in registers: with `NR = 2 * LANES` that is
//! 12 accumulators plus 2 loads of B and one broadcast of A, 15 of the 16 ymm registers on
//! AVX2 (12 of 32 zmm on AVX-512). The cache blocks were chosen by the `gemm` benchmark on a
//! 2-core AMD EPYC (32 KiB L1d, 512 KiB L2 per core); see `benches/README.md`.

use crate::kernels::simd::LANES;

/// Rows of the register tile (rows of A per micro-panel).
pub const MR: usize = 6;
/// Columns of the register tile (columns of B per micro-panel).
pub const NR: usize = 2 * LANES;
/// Depth of one packed block: a `KC x NR` panel of B (16 KiB on AVX2) stays in L1 (4th loop, PC).
pub const KC: usize = 256;
/// Rows of A per block: `MC x KC` floats of packed A (144 KiB) stay in L2 (3rd loop, IC).
pub const MC: usize = 144;
/// Columns of B per block: a `KC x NC` packed block of B (256 KiB) stays in L2 with the A block
/// (5th loop, JC). 128 to 1024 were measured; 256 was best for the VGG layers.
/// It is also the unit of parallel work together with `MC`.
pub const NC: usize = 256;
