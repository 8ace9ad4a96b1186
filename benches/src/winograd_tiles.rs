//! Winograd F(m x m, 3x3) for any tile size m, plainly written, to measure F(2x2) and F(6x6)
//! beside the engine's F(4x4) (issue 11, item 1) before building either into the engine.
//!
//! The transforms are derived rather than copied (Toom-Cook, as Lavin and Gray, "Fast
//! Algorithms for Convolutional Neural Networks", 2016, §4): correlating a 3-tap kernel `g`
//! with `α = m + 2` inputs `d` to give `m` outputs is the transpose of the linear convolution
//! of an m-coefficient polynomial with `g`, which Toom-Cook computes by evaluating both at `α`
//! points (`α - 1` finite ones and ∞), multiplying, and interpolating. With `V` the α x α
//! evaluation matrix, `V_g` (α x 3) and `V_h` (α x m) its first columns (the ∞ row picks the
//! leading coefficient):
//!
//! ```text
//! linear convolution:  c = V⁻¹ [(V_g g) ⊙ (V_h h)]
//! its transpose:       y = V_hᵀ [(V_g g) ⊙ (V⁻ᵀ d)],   so  Aᵀ = V_hᵀ,  G = V_g,  Bᵀ = V⁻ᵀ
//! ```
//!
//! Each row of `Bᵀ` is then multiplied by its point's Lagrange denominator `Π (aᵢ - aₖ)` and the
//! same row of `G` divided by it, which leaves the product unchanged and makes `Bᵀ` small
//! integers for the usual points (it gives the engine's F(4x4) matrices exactly). In 2-D,
//! `Y = Aᵀ [Σ_ci (G g Gᵀ) ⊙ (Bᵀ d B)] A` over overlapping α x α windows of the input.
//!
//! The three stages run as the engine's do, but unfused: the input transform writes every
//! transformed window, the α² products are the engine's parallel GEMM with the transformed
//! kernels packed once, the output transform reads them back. The transforms are plain loops
//! that the compiler vectorises across a row of tiles; they multiply by every entry of the
//! matrices, zeros included. So the stages are timed apart (`benches/benches/conv.rs`,
//! `winograd-tiles`), and what compares across m is each stage's cost.

use rayon::prelude::*;
use tensor::kernels::gemm::{gemm, AOperand, Epilogue, MatRef, PackedA};

/// The interpolation points of F(m x m, 3x3) besides ∞: Lavin and Gray's, the smallest in
/// magnitude, since the output transform raises them to the power m - 1.
pub fn points(m: usize) -> Vec<f64> {
    let all = [0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 3.0, -3.0];
    assert!((1..=all.len() - 1).contains(&m), "F({m}x{m}, 3x3) needs {} points; up to F(8x8) here", m + 1);
    all[..m + 1].to_vec()
}

/// The transform matrices of F(m x m, 3x3), row-major in f64.
#[derive(Clone, Debug)]
pub struct Transforms {
    /// Output pixels per tile side.
    pub m: usize,
    /// Input pixels per window side, `m + 2`.
    pub alpha: usize,
    /// `Bᵀ`, α x α.
    pub bt: Vec<f64>,
    /// `G`, α x 3.
    pub g: Vec<f64>,
    /// `Aᵀ`, m x α.
    pub at: Vec<f64>,
}

impl Transforms {
    pub fn new(m: usize) -> Self {
        let a = points(m);
        let alpha = m + 2;
        // Row i evaluates a polynomial's coefficients at point i; the last row is ∞.
        let eval = |i: usize, j: usize| -> f64 {
            match a.get(i) {
                Some(&p) => p.powi(j as i32),
                None => f64::from(u8::from(j + 1 == alpha)),
            }
        };
        let mut v = vec![0.0; alpha * alpha];
        for i in 0..alpha {
            for j in 0..alpha {
                v[i * alpha + j] = eval(i, j);
            }
        }
        let v_inv = invert(&v, alpha);
        let scale: Vec<f64> = (0..alpha)
            .map(|i| match a.get(i) {
                Some(&p) => a.iter().filter(|&&q| q != p).map(|&q| p - q).product(),
                None => 1.0,
            })
            .collect();
        let mut bt = vec![0.0; alpha * alpha];
        let mut g = vec![0.0; alpha * 3];
        for i in 0..alpha {
            for j in 0..alpha {
                bt[i * alpha + j] = v_inv[j * alpha + i] * scale[i];
            }
            // The ∞ row of V_g is the leading coefficient of g, its third tap.
            for k in 0..3 {
                g[i * 3 + k] = if i < a.len() { eval(i, k) } else { f64::from(u8::from(k == 2)) } / scale[i];
            }
        }
        let mut at = vec![0.0; m * alpha];
        for i in 0..m {
            for j in 0..alpha {
                // V_h's ∞ row picks coefficient m - 1.
                at[i * alpha + j] = if j < a.len() { eval(j, i) } else { f64::from(u8::from(i + 1 == m)) };
            }
        }
        Transforms { m, alpha, bt, g, at }
    }
}

/// The inverse of the n x n matrix `v` (Gauss-Jordan with partial pivoting, in f64).
fn invert(v: &[f64], n: usize) -> Vec<f64> {
    let mut a = v.to_vec();
    let mut inv: Vec<f64> = (0..n * n).map(|k| f64::from(u8::from(k / n == k % n))).collect();
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs())).unwrap();
        assert!(a[pivot * n + col].abs() > 1e-12, "the evaluation points must be distinct");
        for k in 0..n {
            a.swap(col * n + k, pivot * n + k);
            inv.swap(col * n + k, pivot * n + k);
        }
        let p = a[col * n + col];
        for k in 0..n {
            a[col * n + k] /= p;
            inv[col * n + k] /= p;
        }
        for row in (0..n).filter(|&r| r != col) {
            let f = a[row * n + col];
            for k in 0..n {
                a[row * n + k] -= f * a[col * n + k];
                inv[row * n + k] -= f * inv[col * n + k];
            }
        }
    }
    inv
}

/// A 3x3 stride-1 layer with padding 1, its kernels transformed and packed once.
pub struct Layer {
    pub t: Transforms,
    pub cin: usize,
    pub cout: usize,
    /// `U_ξ = (G g Gᵀ)_ξ`, cout x cin, for each of the α² positions ξ.
    u: Vec<PackedA>,
    bias: Vec<f32>,
}

/// The buffers of one forward pass: the transformed windows (channels x α² x tiles) and the
/// products (α² x channels x tiles).
pub struct Scratch {
    v: Vec<f32>,
    m: Vec<f32>,
}

impl Layer {
    /// `weights [cout, cin, 3, 3]`, `bias [cout]`.
    pub fn new(t: Transforms, weights: &[f32], bias: &[f32], cin: usize, cout: usize) -> Self {
        let alpha = t.alpha;
        let points = alpha * alpha;
        let mut u = vec![vec![0.0f32; cout * cin]; points];
        for (k, taps) in weights.chunks_exact(9).enumerate() {
            // G g (α x 3), then (G g) Gᵀ (α x α).
            let mut gg = vec![0.0; alpha * 3];
            for i in 0..alpha {
                for c in 0..3 {
                    gg[i * 3 + c] = (0..3).map(|r| t.g[i * 3 + r] * f64::from(taps[r * 3 + c])).sum();
                }
            }
            for i in 0..alpha {
                for j in 0..alpha {
                    let v: f64 = (0..3).map(|c| gg[i * 3 + c] * t.g[j * 3 + c]).sum();
                    u[i * alpha + j][k] = v as f32;
                }
            }
        }
        let u = u.iter().map(|u| PackedA::new(MatRef::row_major(u, cout, cin))).collect();
        Layer { t, cin, cout, u, bias: bias.to_vec() }
    }

    /// Tiles across and down an `h x w` image.
    pub fn tiles(&self, h: usize, w: usize) -> (usize, usize) {
        (w.div_ceil(self.t.m), h.div_ceil(self.t.m))
    }

    pub fn scratch(&self, h: usize, w: usize) -> Scratch {
        let (tx, ty) = self.tiles(h, w);
        let per_point = tx * ty;
        let points = self.t.alpha * self.t.alpha;
        Scratch { v: vec![0.0; points * self.cin * per_point], m: vec![0.0; points * self.cout * per_point] }
    }

    /// `y [cout, h, w] = conv3x3(x [cin, h, w]) + bias`: the three stages in turn.
    pub fn forward(&self, x: &[f32], h: usize, w: usize, s: &mut Scratch, y: &mut [f32]) {
        self.input_transform(x, h, w, s);
        self.products(h, w, s);
        self.output_transform(h, w, s, y);
    }

    /// `V[ci][ξ][tile] = (Bᵀ d B)_ξ` for every input channel's windows.
    pub fn input_transform(&self, x: &[f32], h: usize, w: usize, s: &mut Scratch) {
        let (alpha, m) = (self.t.alpha, self.t.m);
        let (tx, ty) = self.tiles(h, w);
        let per_point = tx * ty;
        let bt: Vec<f32> = self.t.bt.iter().map(|&v| v as f32).collect();
        let v = s.v.par_chunks_exact_mut(alpha * alpha * per_point);
        v.zip(x.par_chunks_exact(h * w)).for_each(|(v, plane)| {
            let (mut d, mut tmp) = (vec![0.0f32; alpha * alpha * tx], vec![0.0f32; alpha * alpha * tx]);
            let mut half = vec![0.0f32; alpha * alpha * tx];
            for row in 0..ty {
                // d[k][j][t]: pixel (k, j) of tile t's window, zero outside the image.
                for k in 0..alpha {
                    let yy = (row * m + k) as isize - 1;
                    for j in 0..alpha {
                        let lane = &mut d[(k * alpha + j) * tx..][..tx];
                        for (t, out) in lane.iter_mut().enumerate() {
                            let xx = (t * m + j) as isize - 1;
                            let inside = (0..h as isize).contains(&yy) && (0..w as isize).contains(&xx);
                            *out = if inside { plane[yy as usize * w + xx as usize] } else { 0.0 };
                        }
                    }
                }
                // tmp = Bᵀ d B, each entry a sum of lanes across the row's tiles.
                two_sided(&bt, alpha, alpha, &d, &mut half, &mut tmp, tx);
                for (xi, lane) in tmp.chunks_exact(tx).enumerate() {
                    v[xi * per_point + row * tx..][..tx].copy_from_slice(lane);
                }
            }
        });
    }

    /// `M_ξ = U_ξ V_ξ` (cout x tiles) for each of the α² positions, with the engine's GEMM.
    pub fn products(&self, h: usize, w: usize, s: &mut Scratch) {
        let (tx, ty) = self.tiles(h, w);
        let n = tx * ty;
        let points = self.t.alpha * self.t.alpha;
        for (xi, (u, m)) in self.u.iter().zip(s.m.chunks_exact_mut(self.cout * n)).enumerate() {
            // V_ξ: row ci of it is channel ci's ξ-th run of tiles.
            let v = MatRef { data: &s.v[xi * n..], rows: self.cin, cols: n, row_stride: points * n, col_stride: 1 };
            gemm(AOperand::Packed(u.view()), &v, m, Epilogue::default());
        }
    }

    /// `y = Aᵀ M A + bias`, each tile's m x m pixels cut to the image.
    pub fn output_transform(&self, h: usize, w: usize, s: &Scratch, y: &mut [f32]) {
        let (alpha, m) = (self.t.alpha, self.t.m);
        let (tx, ty) = self.tiles(h, w);
        let (per_point, stride) = (tx * ty, self.cout * tx * ty);
        let at: Vec<f32> = self.t.at.iter().map(|&v| v as f32).collect();
        y.par_chunks_exact_mut(h * w).enumerate().for_each(|(co, plane)| {
            let (mut mm, mut out) = (vec![0.0f32; alpha * alpha * tx], vec![0.0f32; m * m * tx]);
            let mut half = vec![0.0f32; m * alpha * tx];
            for row in 0..ty {
                for xi in 0..alpha * alpha {
                    mm[xi * tx..][..tx].copy_from_slice(&s.m[xi * stride + co * per_point + row * tx..][..tx]);
                }
                two_sided(&at, m, alpha, &mm, &mut half, &mut out, tx);
                for i in 0..m {
                    let yy = row * m + i;
                    if yy >= h {
                        break;
                    }
                    for j in 0..m {
                        for (t, &v) in out[(i * m + j) * tx..][..tx].iter().enumerate() {
                            let xx = t * m + j;
                            if xx < w {
                                plane[yy * w + xx] = v + self.bias[co];
                            }
                        }
                    }
                }
            }
        });
    }
}

/// `out = T x Tᵀ` for `x` (n x n) and `T` (r x n), for `lanes` independent matrices stored
/// lane-innermost: `x[(i·n + j)·lanes + t]`, `out[(i·r + j)·lanes + t]`; `half` (r x n) holds
/// `T x` between the two products.
fn two_sided(t: &[f32], r: usize, n: usize, x: &[f32], half: &mut [f32], out: &mut [f32], lanes: usize) {
    half.fill(0.0);
    for i in 0..r {
        for k in 0..n {
            let c = t[i * n + k];
            for j in 0..n {
                let (dst, src) = (&mut half[(i * n + j) * lanes..][..lanes], &x[(k * n + j) * lanes..][..lanes]);
                dst.iter_mut().zip(src).for_each(|(o, &v)| *o += c * v);
            }
        }
    }
    out.fill(0.0);
    for i in 0..r {
        for j in 0..r {
            let dst = &mut out[(i * r + j) * lanes..][..lanes];
            for k in 0..n {
                let c = t[j * n + k];
                let src = &half[(i * n + k) * lanes..][..lanes];
                dst.iter_mut().zip(src).for_each(|(o, &v)| *o += c * v);
            }
        }
    }
}

/// The direct convolution in f64, the reference the errors are measured against.
pub fn direct_f64(x: &[f32], weights: &[f32], bias: &[f32], cin: usize, cout: usize, h: usize, w: usize) -> Vec<f64> {
    let mut y = vec![0.0f64; cout * h * w];
    y.par_chunks_exact_mut(h * w).enumerate().for_each(|(co, plane)| {
        for (i, out) in plane.iter_mut().enumerate() {
            let (yy, xx) = (i / w, i % w);
            let mut sum = f64::from(bias[co]);
            for ci in 0..cin {
                for r in 0..3 {
                    for c in 0..3 {
                        let (sy, sx) = ((yy + r) as isize - 1, (xx + c) as isize - 1);
                        if (0..h as isize).contains(&sy) && (0..w as isize).contains(&sx) {
                            sum += f64::from(weights[((co * cin + ci) * 3 + r) * 3 + c])
                                * f64::from(x[(ci * h + sy as usize) * w + sx as usize]);
                        }
                    }
                }
            }
            *out = sum;
        }
    });
    y
}

/// `‖a - b‖ / ‖b‖`.
pub fn relative_l2(a: &[f32], b: &[f64]) -> f64 {
    let (mut num, mut den) = (0.0, 0.0);
    for (&a, &b) in a.iter().zip(b) {
        num += (f64::from(a) - b).powi(2);
        den += b * b;
    }
    (num / den).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tensor::kernels::winograd;

    #[test]
    fn f4x4_is_the_engines_transforms() {
        let t = Transforms::new(4);
        for i in 0..6 {
            for j in 0..6 {
                assert_eq!(t.bt[i * 6 + j] as f32, winograd::BT[i][j], "Bᵀ[{i}][{j}]");
            }
            for k in 0..3 {
                assert!((t.g[i * 3 + k] - winograd::G[i][k]).abs() < 1e-15, "G[{i}][{k}]");
            }
        }
        for i in 0..4 {
            for j in 0..6 {
                assert_eq!(t.at[i * 6 + j] as f32, winograd::AT[i][j], "Aᵀ[{i}][{j}]");
            }
        }
    }

    /// Every tile size against the f64 direct convolution, on an image whose sides are not
    /// multiples of any m (the cut tiles), with enough channels that an error in a transform
    /// would show far above rounding.
    #[test]
    fn every_tile_size_convolves() {
        let (cin, cout, h, w) = (5, 4, 13, 11);
        let x = tensor::Rng::new(1).vec(cin * h * w);
        let k = tensor::Rng::new(2).vec(cout * cin * 9);
        let b = tensor::Rng::new(3).vec(cout);
        let reference = direct_f64(&x, &k, &b, cin, cout, h, w);
        for m in [2, 3, 4, 6] {
            let layer = Layer::new(Transforms::new(m), &k, &b, cin, cout);
            let mut s = layer.scratch(h, w);
            let mut y = vec![f32::NAN; cout * h * w];
            layer.forward(&x, h, w, &mut s, &mut y);
            let err = relative_l2(&y, &reference);
            assert!(err < 1e-5, "F({m}x{m}): relative error {err}");
        }
    }
}
