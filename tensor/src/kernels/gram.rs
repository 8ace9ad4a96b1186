//! The Gram matrix of Gatys et al. (2015), `G = F Fᵀ / n`, for features `F` viewed as a
//! `c x n` matrix (n = H·W pixels), and its backward `dF = (dG + dGᵀ) F / n`.

use super::gemm::{gemm, AOperand, Epilogue, MatRef};

/// `g [c, c] = f fᵀ / n` for `f [c, n]`.
pub fn gram(f: &[f32], c: usize, n: usize, g: &mut [f32]) {
    let fm = MatRef::row_major(f, c, n);
    gemm(AOperand::View(fm), &fm.t(), g, Epilogue::default());
    let scale = inverse_pixels(n);
    g.iter_mut().for_each(|v| *v *= scale);
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
