//! Reflection padding, and cropping: the window of each plane that cuts a padded border back off.
//!
//! Reflection padding (PyTorch's `ReflectionPad2d`): each plane mirrored about its edge rows and
//! columns, the edge itself not repeated, so a row `a b c d` padded by 2 reads `c b a b c d c b`.
//! Johnson et al. (2016, supplementary material) pad this way before every convolution of the
//! feed-forward network, because zero padding leaves dark artefacts along the image borders.
//!
//! Padded coordinate `i` in `[-pad, len + pad)` reads source index `|i|` on the low side and
//! `2(len - 1) - i` on the high side; `pad < len` keeps both inside the plane.

use std::mem::MaybeUninit;

use rayon::prelude::*;

/// The source index of padded coordinate `i` (which may be negative) in an axis of `len`.
pub(crate) fn reflect(i: isize, len: usize) -> usize {
    let last = len as isize - 1;
    let r = if i < 0 {
        -i
    } else if i > last {
        2 * last - i
    } else {
        i
    };
    debug_assert!((0..=last).contains(&r), "pad < len keeps one reflection enough");
    r as usize
}

/// `[planes, h + 2·pad, w + 2·pad]`: each plane of `x [planes, h, w]` padded by reflection.
/// Needs `pad < h` and `pad < w` (PyTorch's condition): one reflection then reaches every pad.
/// The output is written once, without zeros first (`kernels::filled`).
pub fn reflection_pad2d(x: &[f32], planes: usize, h: usize, w: usize, pad: usize) -> Vec<f32> {
    assert!(pad < h && pad < w, "reflection padding {pad} needs a plane larger than it, got {h}x{w}");
    let (ho, wo) = (h + 2 * pad, w + 2 * pad);
    assert_eq!(x.len(), planes * h * w);
    let fill = |plane: usize, y: &mut [MaybeUninit<f32>]| {
        let x = &x[plane * h * w..][..h * w];
        for (oy, out) in y.chunks_exact_mut(wo).enumerate() {
            let row = &x[reflect(oy as isize - pad as isize, h) * w..][..w];
            let (left, rest) = out.split_at_mut(pad);
            let (middle, right) = rest.split_at_mut(w);
            middle.write_copy_of_slice(row);
            // left[j] is column j - pad, which reads pad - j; right[j] is column w + j, which
            // reads w - 2 - j.
            for (j, o) in left.iter_mut().enumerate() {
                o.write(row[pad - j]);
            }
            for (j, o) in right.iter_mut().enumerate() {
                o.write(row[w - 2 - j]);
            }
        }
    };
    // SAFETY: a piece is one ho x wo plane, whose rows `chunks_exact_mut` covers; each row is
    // split into left, middle and right, and each part is written whole.
    unsafe { super::filled(planes * ho * wo, ho * wo, fill) }
}

/// `dx [planes, h, w]`, the adjoint of [`reflection_pad2d`]: every output pixel's gradient is
/// added back to the pixel it copied, so pixels within `pad` of an edge (but not on it) receive
/// two contributions per axis, and three when the axis is short (`len <= 2·pad + 1`, where the
/// two mirrored bands overlap). Each plane is summed in
/// one fixed order (rows top to bottom; within a row the copy, then the left and the right pad),
/// whatever the thread count. Each plane is zeroed by its own task just before its sums, in a
/// new buffer (`kernels::filled`): no zeroing pass over the whole of it first.
pub fn reflection_pad2d_backward(dy: &[f32], planes: usize, h: usize, w: usize, pad: usize) -> Vec<f32> {
    assert!(pad < h && pad < w, "reflection padding {pad} needs a plane larger than it, got {h}x{w}");
    let (ho, wo) = (h + 2 * pad, w + 2 * pad);
    assert_eq!(dy.len(), planes * ho * wo);
    let fill = |plane: usize, dx: &mut [MaybeUninit<f32>]| {
        let dy = &dy[plane * ho * wo..][..ho * wo];
        let dx = super::write_zeros(dx);
        for (oy, g) in dy.chunks_exact(wo).enumerate() {
            let row = &mut dx[reflect(oy as isize - pad as isize, h) * w..][..w];
            let (left, rest) = g.split_at(pad);
            let (middle, right) = rest.split_at(w);
            for (r, &g) in row.iter_mut().zip(middle) {
                *r += g;
            }
            for (j, &g) in left.iter().enumerate() {
                row[pad - j] += g;
            }
            for (j, &g) in right.iter().enumerate() {
                row[w - 2 - j] += g;
            }
        }
    };
    // SAFETY: a piece is one h x w plane, which `fill` zeroes whole (`write_zeros`) before adding
    // into it.
    unsafe { super::filled(planes * h * w, h * w, fill) }
}

/// The window of a plane that a crop keeps: `h x w` pixels from row `top`, column `left`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub top: usize,
    pub left: usize,
    pub h: usize,
    pub w: usize,
}

/// `y [planes, win.h, win.w]`: the window `win` of each plane of `x [planes, h, w]`.
pub fn crop2d(x: &[f32], planes: usize, h: usize, w: usize, win: Window, y: &mut [f32]) {
    assert!(win.top + win.h <= h && win.left + win.w <= w, "the window {win:?} lies outside a {h}x{w} plane");
    assert!(x.len() == planes * h * w && y.len() == planes * win.h * win.w);
    if win.h * win.w == 0 {
        return;
    }
    y.par_chunks_mut(win.h * win.w).zip(x.par_chunks(h * w)).for_each(|(y, x)| {
        for (out, row) in y.chunks_exact_mut(win.w).zip(x.chunks_exact(w).skip(win.top)) {
            out.copy_from_slice(&row[win.left..win.left + win.w]);
        }
    });
}

/// `dx [planes, h, w]`, the adjoint of [`crop2d`]: the window's gradient in place, zero around
/// it, in a new buffer each of whose planes one task writes once (`kernels::filled`).
pub fn crop2d_backward(dy: &[f32], planes: usize, h: usize, w: usize, win: Window) -> Vec<f32> {
    assert!(win.top + win.h <= h && win.left + win.w <= w, "the window {win:?} lies outside a {h}x{w} plane");
    assert_eq!(dy.len(), planes * win.h * win.w);
    let fill = |plane: usize, dx: &mut [MaybeUninit<f32>]| {
        let dy = &dy[plane * win.h * win.w..][..win.h * win.w];
        for (y, row) in dx.chunks_exact_mut(w).enumerate() {
            if (win.top..win.top + win.h).contains(&y) {
                let (left, rest) = row.split_at_mut(win.left);
                let (middle, right) = rest.split_at_mut(win.w);
                super::write_zeros(left);
                super::write_zeros(right);
                middle.write_copy_of_slice(&dy[(y - win.top) * win.w..][..win.w]);
            } else {
                super::write_zeros(row);
            }
        }
    };
    // SAFETY: a piece is one h x w plane, whose rows `chunks_exact_mut` covers; each row is
    // written whole, zeros or its left zeros, the window's row and its right zeros.
    unsafe { super::filled(planes * h * w, h * w, fill) }
}
