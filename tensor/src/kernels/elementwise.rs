//! Elementwise kernels over slices, parallel in fixed-size chunks (so results never depend on
//! the thread count).

use rayon::prelude::*;

/// Elements per parallel chunk: large enough to amortise a task, small enough to balance.
const CHUNK: usize = 1 << 15;

/// `y = max(x, 0)`, `mask = (x > 0)`: ReLU saves one byte per element for its backward.
pub fn relu(x: &[f32], y: &mut [f32], mask: &mut [u8]) {
    assert!(x.len() == y.len() && x.len() == mask.len());
    y.par_chunks_mut(CHUNK).zip(mask.par_chunks_mut(CHUNK)).zip(x.par_chunks(CHUNK)).for_each(|((y, m), x)| {
        for ((y, m), &x) in y.iter_mut().zip(m.iter_mut()).zip(x) {
            let on = x > 0.0;
            *y = if on { x } else { 0.0 };
            *m = on as u8;
        }
    });
}

/// `dy *= mask`, in place: ReLU's backward owns the gradient it is handed (the tape gives
/// each op its output's), so its input's gradient takes that buffer rather than a new one of
/// the same size (64 MiB at conv1_1 for a 512² picture).
pub fn relu_backward(dy: &mut [f32], mask: &[u8]) {
    where_clear(dy, mask, |_| 0.0);
}

/// `y = x` where `x > 0`, else `slope·x`; `mask = (x > 0)`: the leaky ReLU of Maas, Hannun and
/// Ng, "Rectifier Nonlinearities Improve Neural Network Acoustic Models" (2013), which keeps a
/// small gradient for negative inputs. Like [`relu`] it saves one byte per element for its
/// backward, not x. A NaN input gives NaN (`slope·NaN`), as PyTorch's `leaky_relu` does.
pub fn leaky_relu(x: &[f32], slope: f32, y: &mut [f32], mask: &mut [u8]) {
    assert!(x.len() == y.len() && x.len() == mask.len());
    y.par_chunks_mut(CHUNK).zip(mask.par_chunks_mut(CHUNK)).zip(x.par_chunks(CHUNK)).for_each(|((y, m), x)| {
        for ((y, m), &x) in y.iter_mut().zip(m.iter_mut()).zip(x) {
            let on = x > 0.0;
            *y = if on { x } else { slope * x };
            *m = on as u8;
        }
    });
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

/// `out[i] = f(a[i], b[i])`.
pub fn zip_map(a: &[f32], b: &[f32], out: &mut [f32], f: impl Fn(f32, f32) -> f32 + Sync) {
    assert!(a.len() == b.len() && a.len() == out.len());
    out.par_chunks_mut(CHUNK).zip(a.par_chunks(CHUNK)).zip(b.par_chunks(CHUNK)).for_each(|((o, a), b)| {
        for ((o, &a), &b) in o.iter_mut().zip(a).zip(b) {
            *o = f(a, b);
        }
    });
}

/// `out[i] = f(a[i])`.
pub fn map(a: &[f32], out: &mut [f32], f: impl Fn(f32) -> f32 + Sync) {
    assert_eq!(a.len(), out.len());
    out.par_chunks_mut(CHUNK).zip(a.par_chunks(CHUNK)).for_each(|(o, a)| {
        for (o, &a) in o.iter_mut().zip(a) {
            *o = f(a);
        }
    });
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
