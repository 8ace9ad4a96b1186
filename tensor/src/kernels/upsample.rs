//! Nearest-neighbour 2x upsampling, the "resize" half of a resize-convolution: Odena, Dumoulin
//! and Olah, "Deconvolution and Checkerboard Artifacts" (Distill, 2016), show that upsampling
//! then convolving avoids the checkerboard a strided transposed convolution leaves, and Johnson
//! et al.'s network is commonly built this way (PyTorch's `fast_neural_style` example).
//!
//! Output pixel `(i, j)` copies input pixel `(i / 2, j / 2)`; so the backward sums each 2x2 block.

use rayon::prelude::*;

/// `y [planes, 2h, 2w]`: every pixel of `x [planes, h, w]` repeated into a 2x2 block.
pub fn nearest2x(x: &[f32], planes: usize, h: usize, w: usize, y: &mut [f32]) {
    assert!(x.len() == planes * h * w && y.len() == 4 * x.len());
    if y.is_empty() {
        return;
    }
    y.par_chunks_mut(4 * h * w).zip(x.par_chunks(h * w)).for_each(|(y, x)| {
        for (rows, src) in y.chunks_exact_mut(4 * w).zip(x.chunks_exact(w)) {
            let (top, bottom) = rows.split_at_mut(2 * w);
            for (pair, &v) in top.chunks_exact_mut(2).zip(src) {
                pair.fill(v);
            }
            bottom.copy_from_slice(top);
        }
    });
}

/// `dx [planes, h, w]`, the adjoint of [`nearest2x`]: the sum of each 2x2 block of
/// `dy [planes, 2h, 2w]`, as `(top-left + top-right) + (bottom-left + bottom-right)`.
pub fn nearest2x_backward(dy: &[f32], planes: usize, h: usize, w: usize, dx: &mut [f32]) {
    assert!(dx.len() == planes * h * w && dy.len() == 4 * dx.len());
    if dx.is_empty() {
        return;
    }
    dx.par_chunks_mut(h * w).zip(dy.par_chunks(4 * h * w)).for_each(|(dx, dy)| {
        for (out, rows) in dx.chunks_exact_mut(w).zip(dy.chunks_exact(4 * w)) {
            let (top, bottom) = rows.split_at(2 * w);
            for ((o, t), b) in out.iter_mut().zip(top.chunks_exact(2)).zip(bottom.chunks_exact(2)) {
                *o = (t[0] + t[1]) + (b[0] + b[1]);
            }
        }
    });
}
