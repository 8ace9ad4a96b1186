//! Helpers shared by the integration tests: seeded data (from [`tensor::Rng`]) and error bounds.
#![allow(dead_code)]

use tensor::Rng;

/// `n` values at least `gap` away from zero (so ReLU kinks are not crossed by a finite
/// difference).
pub fn vec_away_from_zero(rng: &mut Rng, n: usize, gap: f32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let v = rng.uniform();
            v.signum() * (gap + v.abs())
        })
        .collect()
}

/// The rounding-error bound of an f32 dot product of length k with FMA, against an exact sum:
/// `|fast - exact| <= 2·k·ε·Σ|aᵢ·bᵢ|` (Higham, "Accuracy and Stability of Numerical
/// Algorithms", §3.1: γ_k ≈ k·ε, doubled for the f32 rounding of the reference's result and for
/// summing KC blocks separately). `abs_sum` is Σ|aᵢ·bᵢ|.
pub fn dot_bound(k: usize, abs_sum: f32) -> f32 {
    2.0 * (k.max(1) as f32) * f32::EPSILON * abs_sum + f32::MIN_POSITIVE
}

/// Asserts `|fast[i] - exact[i]| <= bound[i]` for every i, naming the first failure.
pub fn assert_within(what: &str, fast: &[f32], exact: &[f32], bound: &[f32]) {
    assert_eq!(fast.len(), exact.len(), "{what}: lengths");
    for (i, ((f, e), b)) in fast.iter().zip(exact).zip(bound).enumerate() {
        assert!((f - e).abs() <= *b, "{what}[{i}]: fast {f} vs reference {e}, |diff| {} > bound {b}", (f - e).abs());
    }
}
