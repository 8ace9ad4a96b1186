//! The Gram matrix of Gatys et al. (2015), `G = F Fᵀ / n`, for features `F` viewed as a
//! `c x n` matrix (n = H·W pixels), and its backward `dF = (dG + dGᵀ) F / n`, made in place.

use rayon::prelude::*;

use super::elementwise;
use super::gemm::params::NR;
use super::gemm::{gemm, gemm_serial, AOperand, Epilogue, MatRef, PackedA, SharedC};

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

/// Most columns of F per task of [`gram_backward`]: a block of F and its result stay in L2 (at
/// c = 64, 2 x 256 KiB), and the c = 64 layer at 512 px gives 256 tasks to spread. Smaller
/// layers (relu5_1 of a 256² training crop has 256 pixels) are cut finer, into at least four
/// tasks per thread.
const BACKWARD_COLUMNS: usize = 1 << 10;

/// `f [c, n] ← (dg + dgᵀ) f / n`: the gradient of [`gram`] given `dg = ∂L/∂G`, written over the
/// features it is computed from.
///
/// Why in place: the backward pass needs F only to make this gradient, and F is the largest
/// thing a style layer keeps (relu1_1 is 256 MiB at 1024²). Making the gradient in a second
/// buffer put both at the peak of a Gatys step, at its first backward op. Each pixel's
/// gradient (a column of dF) depends only on that pixel's features (the same column of F), so
/// each task copies its block of columns out, multiplies, and writes the product back. The
/// GEMM sums over the c channels in the same order whatever the blocks (see `gemm`), so the
/// result is the same to the bit as one product into a new buffer.
pub fn gram_backward(f: &mut [f32], dg: &[f32], c: usize, n: usize) {
    assert_eq!(dg.len(), c * c);
    assert_eq!(f.len(), c * n);
    if c == 0 || n == 0 {
        return;
    }
    let scale = inverse_pixels(n);
    let mut sym = vec![0.0; c * c];
    for i in 0..c {
        for j in 0..c {
            sym[i * c + j] = (dg[i * c + j] + dg[j * c + i]) * scale;
        }
    }
    let sym = PackedA::new(MatRef::row_major(&sym, c, c));
    let per_task = n.div_ceil(4 * rayon::current_num_threads()).next_multiple_of(NR).clamp(NR, BACKWARD_COLUMNS);
    let f = SharedC::new(f, n);
    (0..n.div_ceil(per_task)).into_par_iter().for_each_init(
        || (Vec::new(), Vec::new(), Vec::new()),
        |(block, product, b_buf): &mut (Vec<f32>, Vec<f32>, Vec<f32>), task| {
            let (j0, cols) = (task * per_task, per_task.min(n - task * per_task));
            block.resize(c * cols, 0.0);
            product.resize(c * cols, 0.0);
            for (i, row) in block.chunks_exact_mut(cols).enumerate() {
                // SAFETY: task `task` alone touches columns j0..j0 + cols, and this borrow ends
                // before the next.
                row.copy_from_slice(unsafe { f.row(i, j0, cols) });
            }
            gemm_serial(sym.view(), &MatRef::row_major(block, c, cols), product, b_buf);
            for (i, row) in product.chunks_exact(cols).enumerate() {
                // SAFETY: as above.
                unsafe { f.row(i, j0, cols) }.copy_from_slice(row);
            }
        },
    );
}

/// `1 / n`, with an empty feature map (n = 0) giving a zero Gram matrix rather than 0/0.
fn inverse_pixels(n: usize) -> f32 {
    if n == 0 {
        0.0
    } else {
        1.0 / n as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In place, in blocks of columns (several here, the last one short), the gradient is the one
    /// product `(dg + dgᵀ)/n · F` into a new buffer, to the bit.
    #[test]
    fn in_place_backward_is_the_whole_product() {
        let (c, n) = (37, 2 * BACKWARD_COLUMNS + 333);
        let f = crate::Rng::new(1).vec(c * n);
        let dg = crate::Rng::new(2).vec(c * c);
        let scale = 1.0 / n as f32;
        let sym: Vec<f32> = (0..c * c).map(|k| (dg[k] + dg[(k % c) * c + k / c]) * scale).collect();
        let mut whole = vec![0.0; c * n];
        let a = AOperand::View(MatRef::row_major(&sym, c, c));
        gemm(a, &MatRef::row_major(&f, c, n), &mut whole, Epilogue::default());
        let mut df = f.clone();
        gram_backward(&mut df, &dg, c, n);
        assert!(df.iter().zip(&whole).all(|(a, b)| a.to_bits() == b.to_bits()));
        assert_ne!(df, f);
    }
}
