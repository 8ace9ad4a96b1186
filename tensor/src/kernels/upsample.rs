//! Nearest-neighbour 2x upsampling, the "resize" half of a resize-convolution: Odena, Dumoulin
//! and Olah, "Deconvolution and Checkerboard Artifacts" (Distill, 2016), show that upsampling
//! then convolving avoids the checkerboard a strided transposed convolution leaves, and Johnson
//! et al.'s network is commonly built this way (PyTorch's `fast_neural_style` example).
//!
//! Output pixel `(i, j)` copies input pixel `(i / 2, j / 2)`; so the backward sums each 2x2 block.

use std::mem::MaybeUninit;

/// `[planes, 2h, 2w]`: every pixel of `x [planes, h, w]` repeated into a 2x2 block, written
/// once, without zeros first (`kernels::filled`).
pub fn nearest2x(x: &[f32], planes: usize, h: usize, w: usize) -> Vec<f32> {
    assert_eq!(x.len(), planes * h * w);
    let fill = |plane: usize, y: &mut [MaybeUninit<f32>]| {
        let x = &x[plane * h * w..][..h * w];
        for (rows, src) in y.chunks_exact_mut(4 * w).zip(x.chunks_exact(w)) {
            let (top, bottom) = rows.split_at_mut(2 * w);
            for row in [top, bottom] {
                for (pair, &v) in row.chunks_exact_mut(2).zip(src) {
                    pair[0].write(v);
                    pair[1].write(v);
                }
            }
        }
    };
    // SAFETY: a piece is one 2h x 2w plane, h pairs of output rows; each pair of rows is split
    // into two-value blocks, each written whole with its source pixel.
    unsafe { super::filled(4 * x.len(), 4 * h * w, fill) }
}

/// `dx [planes, h, w]`, the adjoint of [`nearest2x`]: the sum of each 2x2 block of
/// `dy [planes, 2h, 2w]`, as `(top-left + top-right) + (bottom-left + bottom-right)`, written
/// once into a new buffer (`kernels::filled`).
pub fn nearest2x_backward(dy: &[f32], planes: usize, h: usize, w: usize) -> Vec<f32> {
    assert_eq!(dy.len(), 4 * planes * h * w);
    let fill = |plane: usize, dx: &mut [MaybeUninit<f32>]| {
        let dy = &dy[4 * plane * h * w..][..4 * h * w];
        for (out, rows) in dx.chunks_exact_mut(w).zip(dy.chunks_exact(4 * w)) {
            let (top, bottom) = rows.split_at(2 * w);
            for ((o, t), b) in out.iter_mut().zip(top.chunks_exact(2)).zip(bottom.chunks_exact(2)) {
                o.write((t[0] + t[1]) + (b[0] + b[1]));
            }
        }
    };
    // SAFETY: a piece is one h x w plane, h rows of w, each value written from its 2x2 block.
    unsafe { super::filled(planes * h * w, h * w, fill) }
}
