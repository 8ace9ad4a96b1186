//! Helpers shared by the stylize-cli integration tests.
#![allow(dead_code)]

pub mod npy;

use std::path::{Path, PathBuf};

/// A file of the repository, from its root.
pub fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

/// `tests/golden/<case>`: the reference's numbers (see its README).
pub fn golden_dir(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(case)
}

/// `|a - b| / |b|`.
pub fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-30)
}

/// ‖a - b‖ / ‖b‖.
pub fn rel_l2(a: &[f32], b: &[f64]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(&x, &y)| (x as f64 - y).powi(2)).sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    (num / den).sqrt()
}

/// How close `eval`'s losses and gradient norm come to the reference's: 8 float32 ulps
/// (8 · 2⁻²³ ≈ 9.5e-7) relative. Both sides are float32 sums over the same values in different
/// orders (our GEMM blocks, PyTorch's), which differ by a few ulps; measured: at most 2.9e-7
/// (case a's style loss, 4 ulps) on an AMD EPYC with AVX-512, about 3e-7 with AVX2.
pub const LOSS_RTOL: f64 = 8.0 * f32::EPSILON as f64;
