//! 2x2 max-pooling with stride 2, flooring odd sizes (PyTorch's default `ceil_mode=False`): the
//! last row or column of an odd-sized input belongs to no window.

use rayon::prelude::*;

/// `y [c, h/2, w/2]` = max over each 2x2 window of `x [c, h, w]`; `argmax` records which of
/// the window's four cells (0 = top-left, 1 = top-right, 2 = bottom-left, 3 = bottom-right)
/// won, the first in that order on ties, as PyTorch does. A NaN wins, so it propagates.
pub fn max_pool2(x: &[f32], c: usize, h: usize, w: usize, y: &mut [f32], argmax: &mut [u8]) {
    let (ho, wo) = (h / 2, w / 2);
    assert_eq!(x.len(), c * h * w);
    assert!(y.len() == c * ho * wo && argmax.len() == y.len());
    if y.is_empty() {
        return;
    }
    y.par_chunks_mut(ho * wo).zip(argmax.par_chunks_mut(ho * wo)).zip(x.par_chunks(h * w)).for_each(|((y, am), x)| {
        for ((y, am), rows) in y.chunks_exact_mut(wo).zip(am.chunks_exact_mut(wo)).zip(x.chunks_exact(2 * w)) {
            let (top, bottom) = rows.split_at(w);
            let windows = top.chunks_exact(2).zip(bottom.chunks_exact(2));
            for ((y, am), (t, b)) in y.iter_mut().zip(am.iter_mut()).zip(windows) {
                // Straight-line selects rather than a loop over the cells: the compiler keeps
                // it branch-free, which matters on random data.
                let (mut best, mut at) = (t[0], 0);
                for (v, i) in [(t[1], 1), (b[0], 2), (b[1], 3)] {
                    let wins = v > best || (v.is_nan() && !best.is_nan());
                    best = if wins { v } else { best };
                    at = if wins { i } else { at };
                }
                *y = best;
                *am = at;
            }
        }
    });
}

/// `dx [c, h, w]`: each `dy` goes to the cell its window's `argmax` names; all else is 0.
pub fn max_pool2_backward(dy: &[f32], argmax: &[u8], c: usize, h: usize, w: usize, dx: &mut [f32]) {
    let (ho, wo) = (h / 2, w / 2);
    assert!(dy.len() == c * ho * wo && argmax.len() == dy.len() && dx.len() == c * h * w);
    if dx.is_empty() {
        return;
    }
    dx.par_chunks_mut(h * w).enumerate().for_each(|(ch, dx)| {
        dx.fill(0.0);
        let (dy, am) = (&dy[ch * ho * wo..], &argmax[ch * ho * wo..]);
        for oy in 0..ho {
            for ox in 0..wo {
                let a = am[oy * wo + ox] as usize;
                dx[(2 * oy + a / 2) * w + 2 * ox + a % 2] = dy[oy * wo + ox];
            }
        }
    });
}
