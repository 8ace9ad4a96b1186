//! Elementwise kernels over slices, parallel in fixed-size chunks (so results never depend on
//! the thread count).

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::simd::{load, LANES, V};

/// Elements per parallel chunk: large enough to amortise a task, small enough to balance.
const CHUNK: usize = 1 << 15;

/// `y = max(x, 0)`, and `mask = (x > 0)` when asked for: ReLU saves one byte per element for
/// its backward (none at inference). A NaN input gives 0.
pub fn relu(x: &[f32], y: &mut [f32], mask: Option<&mut [u8]>) {
    rectify(Some(x), y, mask, |_| 0.0);
}

/// [`relu`] with x read from y and overwritten: the tape's ReLU when nothing else holds its
/// input, so that it needs no output buffer of its own.
pub fn relu_in_place(y: &mut [f32], mask: Option<&mut [u8]>) {
    rectify(None, y, mask, |_| 0.0);
}

/// `dy *= mask`, in place: ReLU's backward owns the gradient it is handed (the tape gives
/// each op its output's), so its input's gradient takes that buffer rather than a new one of
/// the same size (64 MiB at conv1_1 for a 512² picture).
pub fn relu_backward(dy: &mut [f32], mask: &[u8]) {
    where_clear(dy, mask, |_| 0.0);
}

/// `y = x` where `x > 0`, else `slope·x`, and `mask = (x > 0)` when asked for: the leaky ReLU of
/// Maas, Hannun and Ng, "Rectifier Nonlinearities Improve Neural Network Acoustic Models"
/// (2013), which keeps a small gradient for negative inputs. Like [`relu`] it saves one byte
/// per element for its backward, not x. A NaN input gives NaN (`slope·NaN`), as PyTorch's
/// `leaky_relu` does.
pub fn leaky_relu(x: &[f32], slope: f32, y: &mut [f32], mask: Option<&mut [u8]>) {
    rectify(Some(x), y, mask, |v| slope * v);
}

/// [`leaky_relu`] in place, as [`relu_in_place`].
pub fn leaky_relu_in_place(y: &mut [f32], slope: f32, mask: Option<&mut [u8]>) {
    rectify(None, y, mask, |v| slope * v);
}

/// `y = x` where `x > 0`, else `below(x)`, and `mask = (x > 0)`; x is y itself when `None`.
/// Per chunk the mask is written first, from x, so that it is x's sign whatever `below` does
/// (a negative slope would turn y's).
fn rectify(x: Option<&[f32]>, y: &mut [f32], mask: Option<&mut [u8]>, below: impl Fn(f32) -> f32 + Sync) {
    assert!(x.is_none_or(|x| x.len() == y.len()), "x and y have the same length");
    assert!(mask.as_ref().is_none_or(|m| m.len() == y.len()), "one mask byte per element");
    let f = |v: f32| if v > 0.0 { v } else { below(v) };
    let chunk = |i: usize, y: &mut [f32], mask: Option<&mut [u8]>| {
        let x = x.map(|x| &x[i * CHUNK..][..y.len()]);
        if let Some(mask) = mask {
            for (m, &v) in mask.iter_mut().zip(x.unwrap_or(y)) {
                *m = (v > 0.0) as u8;
            }
        }
        match x {
            Some(x) => y.iter_mut().zip(x).for_each(|(y, &x)| *y = f(x)),
            None => y.iter_mut().for_each(|y| *y = f(*y)),
        }
    };
    let chunks = y.par_chunks_mut(CHUNK);
    match mask {
        Some(mask) => chunks.zip(mask.par_chunks_mut(CHUNK)).enumerate().for_each(|(i, (y, m))| chunk(i, y, Some(m))),
        None => chunks.enumerate().for_each(|(i, y)| chunk(i, y, None)),
    }
}

/// `dy *= slope` where the mask is clear, in place, as [`relu_backward`] does.
pub fn leaky_relu_backward(dy: &mut [f32], mask: &[u8], slope: f32) {
    where_clear(dy, mask, |d| slope * d);
}

/// `dy = f(dy)` where the mask is clear, in place: both ReLUs' backward.
fn where_clear(dy: &mut [f32], mask: &[u8], f: impl Fn(f32) -> f32 + Sync) {
    assert_eq!(dy.len(), mask.len());
    dy.par_chunks_mut(CHUNK).zip(mask.par_chunks(CHUNK)).for_each(|(dy, m)| {
        for (dy, &m) in dy.iter_mut().zip(m) {
            if m == 0 {
                *dy = f(*dy);
            }
        }
    });
}

/// A range `lo..hi` that [`soft_clamp`] bounds a channel to, `lo < hi`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bounds {
    pub lo: f32,
    pub hi: f32,
}

impl Bounds {
    /// The middle and the half-width: `y = mid + half·tanh((x - mid)/half)`.
    fn mid_half(self) -> (f32, f32) {
        ((self.lo + self.hi) / 2.0, (self.hi - self.lo) / 2.0)
    }
}

/// `y = mid + half·tanh((x - mid)/half)` in place, per channel of `[n, c, plane]` values
/// (`bounds[c]` is channel c's), and `slope = dy/dx = 1 - tanh²` when asked for.
///
/// Why: a style network's picture is clamped to 0..255 when saved, but a network trained on its
/// raw output learns to put some of the style into values out of that range, which the saved
/// picture loses (models/README.md, "the clamp is the next wall"). A bound the loss sees makes
/// the training loss that of the saved picture. It is the identity near the middle (slope 1, as
/// Johnson et al.'s `150·tanh` output), and stays inside `lo..hi` up to rounding, so clamping it
/// when saved changes nothing that shows. A NaN stays NaN.
///
/// The tanh is `wide`'s, a vector at a time (an exp-based formula within a few ulps of the
/// scalar `f32::tanh` the reference uses; libm's scalar tanh cost 18 ns a value, 8% of a 512²
/// `apply` on a Zen 5 EPYC; benches/README.md). Saves the slope, not x: backward is
/// `dx = dy·slope`, no tanh again.
pub fn soft_clamp(y: &mut [f32], plane: usize, bounds: &[Bounds], slope: Option<&mut [f32]>) {
    assert!(plane > 0 && !bounds.is_empty(), "a plane and a channel at least");
    assert!(y.len().is_multiple_of(plane * bounds.len()), "whole samples of [c, plane]");
    assert!(slope.as_ref().is_none_or(|s| s.len() == y.len()), "one slope per element");
    // Chunk i holds elements i·CHUNK..; each run of it within one plane shares a channel.
    let chunk = |i: usize, y: &mut [f32], mut slope: Option<&mut [f32]>| {
        let mut at = 0;
        while at < y.len() {
            let global = i * CHUNK + at;
            let end = (plane - global % plane).min(y.len() - at) + at;
            let bounds = bounds[(global / plane) % bounds.len()];
            soft_clamp_run(&mut y[at..end], slope.as_deref_mut().map(|s| &mut s[at..end]), bounds);
            at = end;
        }
    };
    let chunks = y.par_chunks_mut(CHUNK);
    match slope {
        Some(s) => chunks.zip(s.par_chunks_mut(CHUNK)).enumerate().for_each(|(i, (y, s))| chunk(i, y, Some(s))),
        None => chunks.enumerate().for_each(|(i, y)| chunk(i, y, None)),
    }
}

/// [`soft_clamp`] of one run of values that share their bounds, `LANES` at a time; the last
/// few go through the same vector code in a padded copy, so every value gets the same formula.
fn soft_clamp_run(y: &mut [f32], mut slope: Option<&mut [f32]>, bounds: Bounds) {
    let (mid, half) = bounds.mid_half();
    let (m, h, one) = (V::splat(mid), V::splat(half), V::splat(1.0));
    let f = |x: V| {
        let t = ((x - m) / h).tanh();
        (t.mul_add(h, m), one - t * t)
    };
    let mut k = 0;
    while k < y.len() {
        let n = LANES.min(y.len() - k);
        let (v, s) = if n == LANES {
            f(load(&y[k..]))
        } else {
            let mut pad = [mid; LANES];
            pad[..n].copy_from_slice(&y[k..]);
            f(V::new(pad))
        };
        y[k..k + n].copy_from_slice(&v.to_array()[..n]);
        if let Some(slope) = slope.as_deref_mut() {
            slope[k..k + n].copy_from_slice(&s.to_array()[..n]);
        }
        k += n;
    }
}

/// `dy *= slope`, in place: [`soft_clamp`]'s backward, in the gradient's own buffer as
/// [`relu_backward`] does.
pub fn soft_clamp_backward(dy: &mut [f32], slope: &[f32]) {
    assert_eq!(dy.len(), slope.len());
    dy.par_chunks_mut(CHUNK).zip(slope.par_chunks(CHUNK)).for_each(|(dy, s)| {
        for (dy, &s) in dy.iter_mut().zip(s) {
            *dy *= s;
        }
    });
}

/// `f(a[i], b[i])` for every i, in a new buffer written once (`kernels::filled`).
pub fn zip_map(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) -> Vec<f32> {
    assert_eq!(a.len(), b.len());
    let fill = |i: usize, out: &mut [MaybeUninit<f32>]| {
        let (a, b) = (&a[i * CHUNK..][..out.len()], &b[i * CHUNK..][..out.len()]);
        for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
            o.write(f(a, b));
        }
    };
    // SAFETY: piece i is values i·CHUNK.. of the output, as long as the slices of a and b it is
    // zipped with, so every value of it is written.
    unsafe { super::filled(a.len(), CHUNK, fill) }
}

/// `f(a[i])` for every i, in a new buffer written once (`kernels::filled`).
pub fn map(a: &[f32], f: impl Fn(f32) -> f32 + Sync) -> Vec<f32> {
    let fill = |i: usize, out: &mut [MaybeUninit<f32>]| {
        let a = &a[i * CHUNK..][..out.len()];
        for (o, &a) in out.iter_mut().zip(a) {
            o.write(f(a));
        }
    };
    // SAFETY: as in `zip_map`.
    unsafe { super::filled(a.len(), CHUNK, fill) }
}

/// `acc[i] += x[i]`: how autograd sums the gradients of a value used twice.
pub fn add_assign(acc: &mut [f32], x: &[f32]) {
    assert_eq!(acc.len(), x.len());
    acc.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(a, x)| {
        for (a, &x) in a.iter_mut().zip(x) {
            *a += x;
        }
    });
}

/// Differences of neighbours along the last axis (`axis_len` = width) or the one before it
/// (rows): `y[.., j] = x[.., j+1] - x[.., j]`, one fewer element along that axis. `x` is a stack
/// of `planes` planes of `h x w`.
pub fn neighbour_diff(x: &[f32], planes: usize, h: usize, w: usize, along_rows: bool, y: &mut [f32]) {
    assert_eq!(x.len(), planes * h * w);
    if along_rows {
        assert_eq!(y.len(), planes * h.saturating_sub(1) * w);
        for p in 0..planes {
            for i in 0..h.saturating_sub(1) {
                let (a, b) = (&x[(p * h + i) * w..][..w], &x[(p * h + i + 1) * w..][..w]);
                let out = &mut y[(p * (h - 1) + i) * w..][..w];
                for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
                    *o = b - a;
                }
            }
        }
    } else {
        let wd = w.saturating_sub(1);
        assert_eq!(y.len(), planes * h * wd);
        for (row, out) in x.chunks_exact(w.max(1)).zip(y.chunks_exact_mut(wd.max(1))) {
            for (j, o) in out.iter_mut().enumerate() {
                *o = row[j + 1] - row[j];
            }
        }
    }
}

/// The adjoint of [`neighbour_diff`]: `dx[j] = dy[j-1] - dy[j]` (missing terms are 0).
pub fn neighbour_diff_backward(dy: &[f32], planes: usize, h: usize, w: usize, along_rows: bool, dx: &mut [f32]) {
    assert_eq!(dx.len(), planes * h * w);
    dx.fill(0.0);
    if along_rows {
        for p in 0..planes {
            for i in 0..h.saturating_sub(1) {
                let g = &dy[(p * (h - 1) + i) * w..][..w];
                for (j, &g) in g.iter().enumerate() {
                    dx[(p * h + i + 1) * w + j] += g;
                    dx[(p * h + i) * w + j] -= g;
                }
            }
        }
    } else if w > 1 {
        for (dx, g) in dx.chunks_exact_mut(w).zip(dy.chunks_exact(w - 1)) {
            for (j, &g) in g.iter().enumerate() {
                dx[j + 1] += g;
                dx[j] -= g;
            }
        }
    }
}
