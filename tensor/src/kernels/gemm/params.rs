//! Register and cache blocking of the GEMM (BLIS names: Van Zee & van de Geijn, 2015).
//!
//! The micro-kernel holds an `MR x NR` tile of C in registers, `NR = 2 * LANES`. With AVX2's
//! 16 ymm registers that is a 6 x 16 tile: 12 accumulators plus 2 loads of B and one broadcast
//! of A, 15 registers. AVX-512's 32 zmm registers hold a 12 x 32 tile: 24 accumulators, 27
//! registers, and twice the multiply-adds per load of B. The cache blocks were chosen by the
//! `gemm` benchmark on a 2-core AMD EPYC (32 KiB L1d, 512 KiB L2 per core); see
//! `benches/README.md`.

use crate::kernels::simd::LANES;

/// Rows of the register tile (rows of A per micro-panel). On AVX-512, 12 rows ran the
/// micro-kernel alone at 199-209 GFLOP/s on a 2-vCPU Xeon where 6 rows ran at 170-178 and 8 at
/// 179-191 (`benches/README.md`, "A taller tile for AVX-512"). MC is a multiple of both.
pub const MR: usize = if LANES == 16 { 12 } else { 6 };
/// Columns of the register tile (columns of B per micro-panel).
pub const NR: usize = 2 * LANES;
/// Depth of one packed block: a `KC x NR` panel of B (16 KiB on AVX2) stays in L1 (4th loop, PC).
/// On AVX-512 the panel is 32 KiB, all of a Xeon's L1d, yet 128 measured slower there than 256
/// (`benches/README.md`, "A taller tile for AVX-512"). Changing it changes every result's
/// rounding: partial sums are added per K block.
pub const KC: usize = 256;
/// Rows of A per block: `MC x KC` floats of packed A (144 KiB) stay in L2 (3rd loop, IC).
pub const MC: usize = 144;
/// Columns of B per block: a `KC x NC` packed block of B (256 KiB) stays in L2 with the A block
/// (5th loop, JC). 128 to 1024 were measured; 256 was best for the VGG layers.
/// It is also the unit of parallel work together with `MC`.
pub const NC: usize = 256;

// Blocks of A start on micro-panel boundaries (`PackedA::block` reads whole panels).
const _: () = assert!(MC.is_multiple_of(MR));
