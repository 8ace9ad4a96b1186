//! The GEMM micro-kernel: the only clever code in the engine.
//!
//! One call computes an `MR x NR` tile of `A_panel · B_panel` from micro-panels of depth `kc`
//! (A packed, B packed or read in place from an image): per step of k it loads one row of B (NR floats, `NR / LANES` vectors), then for
//! each of the MR rows broadcasts one element of A and does `NR / LANES` fused multiply-adds
//! (BLIS: "a loop where each iteration performs a very small outer product"). The MR x NR
//! accumulators live in registers for the whole loop; the loops over MR and NR have constant
//! bounds so the compiler unrolls them fully. Edges are handled by zero padding in the packs,
//! never by branches here.

use super::params::{MR, NR};
use crate::kernels::simd::{load, prefetch, store, LANES, V};

/// How far ahead of the current step the prefetching kernel asks for A's floats: 1 KiB, about
/// 21 steps of k.
const AHEAD: usize = 256;
/// Vectors per tile row.
const NV: usize = NR / LANES;

/// `tile = Σ_k a[k] ⊗ b[k]`, with `a` a packed A micro-panel (`kc * MR` floats) and `b` the
/// `kc` rows of a B micro-panel, `NR` floats each: the rows of a packed panel, or rows read in
/// place from an image (see `PackB::rows_in_place`). `tile` is overwritten (it is never read).
#[inline(always)]
pub fn microkernel<'b>(a: &[f32], b: impl Iterator<Item = &'b [f32]>, tile: &mut [[f32; NR]; MR]) {
    microkernel_rows::<MR, false>(a, b, tile)
}

/// Rows of the half-height micro-kernel.
pub const HALF: usize = MR / 2;

/// [`microkernel`] for the first `ROWS` rows of the panel only (rows past them are left as they
/// are): for a last micro-panel holding no more than `ROWS` real rows, such as the three of an
/// RGB output, whose other rows are packing's zeros. Each value is the same sum, in the same
/// order, as the full kernel's.
///
/// With `PREFETCH`, each step of k also asks for the A panel's floats [`AHEAD`] of it: for an A
/// that comes from memory rather than cache (Winograd's transformed kernels of VGG's deepest
/// layers, 19-38 MB read once a call), where the hardware's own prefetching left the products
/// waiting on it. Where A is in cache the extra instruction costs a few percent, so it is the
/// caller's choice (`benches/README.md`, "Prefetching the deepest layers' kernels").
#[inline(always)]
pub fn microkernel_rows<'b, const ROWS: usize, const PREFETCH: bool>(
    a: &[f32],
    b: impl Iterator<Item = &'b [f32]>,
    tile: &mut [[f32; NR]; MR],
) {
    let mut acc = [[V::ZERO; NV]; ROWS];
    for (ak, bk) in a.chunks_exact(MR).zip(b) {
        if PREFETCH {
            prefetch(ak, AHEAD);
        }
        let bv: [V; NV] = std::array::from_fn(|v| load(&bk[v * LANES..]));
        for i in 0..ROWS {
            let ai = V::splat(ak[i]);
            for v in 0..NV {
                acc[i][v] = ai.mul_add(bv[v], acc[i][v]);
            }
        }
    }
    for i in 0..ROWS {
        for v in 0..NV {
            store(acc[i][v], &mut tile[i][v * LANES..]);
        }
    }
}
