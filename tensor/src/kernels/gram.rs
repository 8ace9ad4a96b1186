//! The Gram matrix of Gatys et al. (2015), `G = F Fᵀ / n`, for features `F` viewed as a
//! `c x n` matrix (n = H·W pixels), and its backward `dF = (dG + dGᵀ) F / n`.

use rayon::prelude::*;

use super::elementwise;
use super::gemm::{gemm, AOperand, Epilogue, MatRef};

/// Floats of F per partial Gram matrix (1 MiB): slices long enough for an efficient GEMM each,
/// and for the c = 64 layer at 512 px, 64 of them to spread over the threads. Measured with
/// `cargo bench --bench pool_gram -- gram` from 256 KiB to 4 MiB: 1 MiB or more is best.
pub const SLICE_FLOATS: usize = 1 << 18;

/// `g [c, c] = f fᵀ / n` for `f [c, n]`, computing one triangle and mirroring it.
///
/// The early VGG layers give a tall-and-skinny product (c = 64, n = 262144 at 512 px): a
/// small C with a long K. A single GEMM would stream all of F through each of its few output
/// blocks, so instead F is cut into column slices, each slice's `F_s F_sᵀ` is one parallel
/// task, and the partial sums are added in slice order (the sum, like the slicing, does not
/// depend on the thread count, so results stay bit-identical).
pub fn gram(f: &[f32], c: usize, n: usize, g: &mut [f32]) {
    let fm = MatRef::row_major(f, c, n);
    let slice = (SLICE_FLOATS / c.max(1)).max(1);
    let partials: Vec<Vec<f32>> = (0..n.div_ceil(slice))
        .into_par_iter()
        .map(|s| {
            let fs = fm.columns(s * slice, slice.min(n - s * slice));
            let mut p = vec![0.0; c * c];
            // One triangle (SYRK): the tiles below the diagonal stay 0 and are mirrored below.
            gemm(AOperand::View(fs), &fs.t(), &mut p, Epilogue { upper: true, ..Epilogue::default() });
            p
        })
        .collect();
    g.fill(0.0);
    for p in &partials {
        elementwise::add_assign(g, p);
    }
    let scale = inverse_pixels(n);
    g.iter_mut().for_each(|v| *v *= scale);
    // The lower triangle is the upper one mirrored: G is symmetric. (Each element the full
    // product computed was the same sum in the same order as its mirror, so nothing changes
    // to the bit.)
    for i in 0..c {
        for j in i + 1..c {
            g[j * c + i] = g[i * c + j];
        }
    }
}

/// `df [c, n] = (dg + dgᵀ) f / n`: the gradient of [`gram`] given `dg = ∂L/∂G`.
pub fn gram_backward(f: &[f32], dg: &[f32], c: usize, n: usize, df: &mut [f32]) {
    assert_eq!(dg.len(), c * c);
    let scale = inverse_pixels(n);
    let mut sym = vec![0.0; c * c];
    for i in 0..c {
        for j in 0..c {
            sym[i * c + j] = (dg[i * c + j] + dg[j * c + i]) * scale;
        }
    }
    gemm(AOperand::View(MatRef::row_major(&sym, c, c)), &MatRef::row_major(f, c, n), df, Epilogue::default());
}

/// `1 / n`, with an empty feature map (n = 0) giving a zero Gram matrix rather than 0/0.
fn inverse_pixels(n: usize) -> f32 {
    if n == 0 {
        0.0
    } else {
        1.0 / n as f32
    }
}
