//! Reductions with a fixed partition: the input is cut into chunks of a constant size, each
//! chunk is summed in f64, and the partial sums are added in order. The result is the same for
//! any thread count and is accurate to f64 rounding, far below f32's.

use rayon::prelude::*;

/// Elements per partial sum.
const CHUNK: usize = 1 << 14;

/// `Σ f(x[i])`, in f64.
pub fn sum_map(x: &[f32], f: impl Fn(f32) -> f64 + Sync) -> f64 {
    let partials: Vec<f64> = x.par_chunks(CHUNK).map(|c| c.iter().map(|&v| f(v)).sum()).collect();
    partials.iter().sum()
}

/// `Σ (a[i] - b[i])²`, in f64, also writing `diff = a - b`.
pub fn sum_sq_diff(a: &[f32], b: &[f32], diff: &mut [f32]) -> f64 {
    assert!(a.len() == b.len() && a.len() == diff.len());
    let partials: Vec<f64> = diff
        .par_chunks_mut(CHUNK)
        .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
        .map(|(d, (a, b))| {
            let mut s = 0.0f64;
            for ((d, &a), &b) in d.iter_mut().zip(a).zip(b) {
                *d = a - b;
                s += (*d as f64) * (*d as f64);
            }
            s
        })
        .collect();
    partials.iter().sum()
}
