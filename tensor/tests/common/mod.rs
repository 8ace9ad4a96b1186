//! Helpers shared by the integration tests: a seeded generator and error bounds.
#![allow(dead_code)]

/// SplitMix64: a tiny seeded generator, so tests need no `rand` and every run sees the same data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    pub fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.uniform()).collect()
    }

    /// Values at least `gap` away from zero (so ReLU kinks are not crossed by a finite difference).
    pub fn vec_away_from_zero(&mut self, n: usize, gap: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let v = self.uniform();
                v.signum() * (gap + v.abs())
            })
            .collect()
    }
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
