//! The scalar twin of every fast kernel: plain loops, readable top to bottom, no SIMD, no
//! threads, no packing. Property tests hold the fast kernels to these; students can read the
//! textbook version here first. Sums are accumulated in f64, so these are the "exact" side of
//! every comparison.

use super::conv::ConvGeometry;
use super::gemm::MatRef;
use super::norm::{NormGeometry, NormParams, Statistics};
use super::winograd::{AT, BT, G, TILE, WINDOW};

/// `c = a·b [+ bias per row] [+ c]`.
pub fn gemm(a: &MatRef, b: &MatRef, c: &mut [f32], bias: Option<&[f32]>, accumulate: bool) {
    assert_eq!(a.cols, b.rows);
    assert_eq!(c.len(), a.rows * b.cols);
    for i in 0..a.rows {
        for j in 0..b.cols {
            let mut s = 0.0f64;
            for k in 0..a.cols {
                s += a.at(i, k) as f64 * b.at(k, j) as f64;
            }
            s += bias.map_or(0.0, |b| b[i] as f64);
            let out = &mut c[i * b.cols + j];
            *out = if accumulate { *out + s as f32 } else { s as f32 };
        }
    }
}

/// Where kernel tap `(ky, kx)` of output pixel `(oy, ox)` reads the `h x w` input, or `None`
/// in the zero padding: `(s·oy + ky - pad_h, s·ox + kx - pad_w)`.
fn tap(g: ConvGeometry, (h, w): (usize, usize), (oy, ox): (usize, usize), (ky, kx): (usize, usize)) -> Option<usize> {
    let iy = (g.stride * oy + ky).checked_sub(g.pad_h).filter(|&iy| iy < h)?;
    let ix = (g.stride * ox + kx).checked_sub(g.pad_w).filter(|&ix| ix < w)?;
    Some(iy * w + ix)
}

/// The im2col matrix `[cin·kh·kw, ho·wo]` of `x [cin, h, w]` (see `kernels::conv`).
pub fn im2col(x: &[f32], g: ConvGeometry, h: usize, w: usize) -> Vec<f32> {
    let (ho, wo) = g.output_size(h, w).expect("kernel fits");
    let mut col = vec![0.0; g.patch_len() * ho * wo];
    for ci in 0..g.cin {
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let row = (ci * g.kh + ky) * g.kw + kx;
                for oy in 0..ho {
                    for ox in 0..wo {
                        if let Some(i) = tap(g, (h, w), (oy, ox), (ky, kx)) {
                            col[row * ho * wo + oy * wo + ox] = x[ci * h * w + i];
                        }
                    }
                }
            }
        }
    }
    col
}

/// Direct convolution of a batch `x [n, cin, h, w]`, the textbook's seven loops:
/// `y[i, co, oy, ox] = b[co] + Σ w[co, ci, ky, kx] · x[i, ci, s·oy+ky-ph, s·ox+kx-pw]`.
pub fn conv2d(x: &[f32], weight: &[f32], bias: &[f32], g: ConvGeometry, n: usize, h: usize, w: usize) -> Vec<f32> {
    let (ho, wo) = g.output_size(h, w).expect("kernel fits");
    let mut y = vec![0.0; n * g.cout * ho * wo];
    for i in 0..n {
        for co in 0..g.cout {
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut s = bias[co] as f64;
                    for ci in 0..g.cin {
                        for ky in 0..g.kh {
                            for kx in 0..g.kw {
                                if let Some(at) = tap(g, (h, w), (oy, ox), (ky, kx)) {
                                    let wv = weight[((co * g.cin + ci) * g.kh + ky) * g.kw + kx];
                                    s += wv as f64 * x[(i * g.cin + ci) * h * w + at] as f64;
                                }
                            }
                        }
                    }
                    y[((i * g.cout + co) * ho + oy) * wo + ox] = s as f32;
                }
            }
        }
    }
    y
}

/// `dx = ∂L/∂x` of [`conv2d`]: every output pixel sends `w · dy` back to the inputs it read.
pub fn conv2d_backward_input(dy: &[f32], weight: &[f32], g: ConvGeometry, n: usize, h: usize, w: usize) -> Vec<f32> {
    let (ho, wo) = g.output_size(h, w).expect("kernel fits");
    let mut dx = vec![0.0f64; n * g.cin * h * w];
    for i in 0..n {
        for co in 0..g.cout {
            for oy in 0..ho {
                for ox in 0..wo {
                    let d = dy[((i * g.cout + co) * ho + oy) * wo + ox] as f64;
                    for ci in 0..g.cin {
                        for ky in 0..g.kh {
                            for kx in 0..g.kw {
                                if let Some(at) = tap(g, (h, w), (oy, ox), (ky, kx)) {
                                    let wv = weight[((co * g.cin + ci) * g.kh + ky) * g.kw + kx] as f64;
                                    dx[(i * g.cin + ci) * h * w + at] += wv * d;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    dx.into_iter().map(|v| v as f32).collect()
}

/// `(dw, db)` of [`conv2d`], summed over the batch.
pub fn conv2d_backward_weight(
    x: &[f32],
    dy: &[f32],
    g: ConvGeometry,
    n: usize,
    h: usize,
    w: usize,
) -> (Vec<f32>, Vec<f32>) {
    let (ho, wo) = g.output_size(h, w).expect("kernel fits");
    let mut dw = vec![0.0f64; g.cout * g.patch_len()];
    let mut db = vec![0.0f64; g.cout];
    for i in 0..n {
        for co in 0..g.cout {
            for oy in 0..ho {
                for ox in 0..wo {
                    let d = dy[((i * g.cout + co) * ho + oy) * wo + ox] as f64;
                    db[co] += d;
                    for ci in 0..g.cin {
                        for ky in 0..g.kh {
                            for kx in 0..g.kw {
                                if let Some(at) = tap(g, (h, w), (oy, ox), (ky, kx)) {
                                    let xv = x[(i * g.cin + ci) * h * w + at] as f64;
                                    dw[((co * g.cin + ci) * g.kh + ky) * g.kw + kx] += xv * d;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    (dw.into_iter().map(|v| v as f32).collect(), db.into_iter().map(|v| v as f32).collect())
}

/// Winograd F(4x4, 3x3) convolution (3x3, stride 1, `g.pad_*` zeros) tile by tile, as in
/// Lavin & Gray's paper: for each 4x4 output tile and channel pair, the 6x6 window `d`, the
/// kernel `k`, and `Y += Aᵀ [(G k Gᵀ) ⊙ (Bᵀ d B)] A`, all in f64. In exact arithmetic this is
/// [`conv2d`]; the fast kernel (`kernels::winograd`) batches the same products as GEMMs.
///
/// With `magnitudes`, every matrix and operand is replaced by its absolute value: the result
/// is then the sum of the magnitudes of every term the algorithm adds, the scale of its
/// rounding error (`winograd::ERROR_GROWTH`).
pub fn winograd_conv3x3(
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    g: ConvGeometry,
    (n, h, w): (usize, usize, usize),
    magnitudes: bool,
) -> Vec<f32> {
    let tw = Twin::new(g, magnitudes);
    let m = tw.m;
    let (ho, wo) = g.output_size(h, w).expect("kernel fits");
    let mut y = vec![0.0; n * g.cout * ho * wo];
    for i in 0..n {
        for co in 0..g.cout {
            for ty in (0..ho).step_by(TILE) {
                for tx in (0..wo).step_by(TILE) {
                    let mut sum = [[0.0f64; WINDOW]; WINDOW];
                    for ci in 0..g.cin {
                        let k: [[f64; 3]; 3] = std::array::from_fn(|ky| {
                            std::array::from_fn(|kx| m(weight[((co * g.cin + ci) * 3 + ky) * 3 + kx] as f64))
                        });
                        let u = mul(&mul(&tw.g, &k), &t(&tw.g));
                        let v = tw.window(&x[(i * g.cin + ci) * h * w..][..h * w], (h, w), (ty, tx));
                        for (s, (u, v)) in sum.iter_mut().flatten().zip(u.iter().flatten().zip(v.iter().flatten())) {
                            *s += u * v;
                        }
                    }
                    let tile = mul(&mul(&tw.at, &sum), &t(&tw.at));
                    for (r, row) in tile.iter().enumerate().filter(|(r, _)| ty + r < ho) {
                        for (c, v) in row.iter().enumerate().filter(|(c, _)| tx + c < wo) {
                            y[((i * g.cout + co) * ho + ty + r) * wo + tx + c] = (v + m(bias[co] as f64)) as f32;
                        }
                    }
                }
            }
        }
    }
    y
}

/// The weight gradient of [`winograd_conv3x3`] tile by tile, in f64, as
/// `kernels::winograd::weight_gradient` computes it: for each image, 4x4 tile of the output
/// gradient `dy` (zeros past its edges) and channel pair, `dU += (A dY Aᵀ) ⊙ (Bᵀ d B)`, then
/// `dW = Gᵀ dU G`. In exact arithmetic this is [`conv2d_backward_weight`]'s `dw`. With
/// `magnitudes`, every matrix and operand is replaced by its absolute value: the sum of the
/// magnitudes of every term, the scale of the rounding error.
pub fn winograd_conv3x3_backward_weight(
    x: &[f32],
    dy: &[f32],
    g: ConvGeometry,
    (n, h, w): (usize, usize, usize),
    magnitudes: bool,
) -> Vec<f32> {
    let tw = Twin::new(g, magnitudes);
    let m = tw.m;
    let (ho, wo) = g.output_size(h, w).expect("kernel fits");
    let mut dw = vec![0.0f32; g.cout * g.cin * 9];
    for co in 0..g.cout {
        for ci in 0..g.cin {
            let mut du = [[0.0f64; WINDOW]; WINDOW];
            for i in 0..n {
                let plane = &dy[(i * g.cout + co) * ho * wo..][..ho * wo];
                for ty in (0..ho).step_by(TILE) {
                    for tx in (0..wo).step_by(TILE) {
                        let tile: [[f64; TILE]; TILE] = std::array::from_fn(|r| {
                            std::array::from_fn(|c| match ty + r < ho && tx + c < wo {
                                true => m(plane[(ty + r) * wo + tx + c] as f64),
                                false => 0.0,
                            })
                        });
                        let yhat = mul(&mul(&t(&tw.at), &tile), &tw.at);
                        let v = tw.window(&x[(i * g.cin + ci) * h * w..][..h * w], (h, w), (ty, tx));
                        for (s, (y, v)) in du.iter_mut().flatten().zip(yhat.iter().flatten().zip(v.iter().flatten())) {
                            *s += y * v;
                        }
                    }
                }
            }
            let k = mul(&mul(&t(&tw.g), &du), &tw.g);
            for (d, k) in dw[(co * g.cin + ci) * 9..][..9].iter_mut().zip(k.iter().flatten()) {
                *d = *k as f32;
            }
        }
    }
    dw
}

/// What both Winograd twins share: the geometry, the transforms as f64 matrices (their
/// magnitudes, with `magnitudes`) and the map applied to every operand.
struct Twin {
    geometry: ConvGeometry,
    bt: [[f64; WINDOW]; WINDOW],
    g: [[f64; 3]; WINDOW],
    at: [[f64; WINDOW]; TILE],
    m: fn(f64) -> f64,
}

impl Twin {
    fn new(geometry: ConvGeometry, magnitudes: bool) -> Self {
        assert_eq!((geometry.kh, geometry.kw, geometry.stride), (3, 3, 1), "Winograd F(4x4, 3x3) is for 3x3 stride 1");
        let m: fn(f64) -> f64 = if magnitudes { f64::abs } else { std::convert::identity };
        Twin {
            geometry,
            bt: BT.map(|r| r.map(|v| m(v as f64))),
            g: G.map(|r| r.map(m)),
            at: AT.map(|r| r.map(|v| m(v as f64))),
            m,
        }
    }

    /// `Bᵀ d B` for the window `d` whose pixel (r, c) is the padded plane's (ty + r, tx + c).
    fn window(&self, plane: &[f32], (h, w): (usize, usize), (ty, tx): (usize, usize)) -> [[f64; WINDOW]; WINDOW] {
        let g = self.geometry;
        let d: [[f64; WINDOW]; WINDOW] = std::array::from_fn(|r| {
            std::array::from_fn(|c| {
                let iy = (ty + r).checked_sub(g.pad_h).filter(|&iy| iy < h);
                let ix = (tx + c).checked_sub(g.pad_w).filter(|&ix| ix < w);
                match (iy, ix) {
                    (Some(iy), Some(ix)) => (self.m)(plane[iy * w + ix] as f64),
                    _ => 0.0,
                }
            })
        });
        mul(&mul(&self.bt, &d), &t(&self.bt))
    }
}

/// `P (r x k) · Q (k x c)`, on small row-major arrays.
fn mul<const R: usize, const K: usize, const C: usize>(p: &[[f64; K]; R], q: &[[f64; C]; K]) -> [[f64; C]; R] {
    std::array::from_fn(|i| std::array::from_fn(|j| (0..K).map(|k| p[i][k] * q[k][j]).sum()))
}

/// `Pᵀ`.
fn t<const R: usize, const C: usize>(p: &[[f64; C]; R]) -> [[f64; R]; C] {
    std::array::from_fn(|i| std::array::from_fn(|j| p[j][i]))
}

/// 2x2 stride-2 max-pool with floor: `(y, argmax)`, first maximum wins, NaN propagates.
pub fn max_pool2(x: &[f32], c: usize, h: usize, w: usize) -> (Vec<f32>, Vec<u8>) {
    let (ho, wo) = (h / 2, w / 2);
    let mut y = vec![0.0; c * ho * wo];
    let mut am = vec![0u8; c * ho * wo];
    for ch in 0..c {
        for oy in 0..ho {
            for ox in 0..wo {
                let mut best = f32::NEG_INFINITY;
                let mut arg = 0u8;
                for a in 0..4u8 {
                    let v = x[ch * h * w + (2 * oy + a as usize / 2) * w + 2 * ox + a as usize % 2];
                    if a == 0 || v > best || (v.is_nan() && !best.is_nan()) {
                        best = v;
                        arg = a;
                    }
                }
                y[ch * ho * wo + oy * wo + ox] = best;
                am[ch * ho * wo + oy * wo + ox] = arg;
            }
        }
    }
    (y, am)
}

/// `dx` of [`max_pool2`].
pub fn max_pool2_backward(dy: &[f32], argmax: &[u8], c: usize, h: usize, w: usize) -> Vec<f32> {
    let (ho, wo) = (h / 2, w / 2);
    let mut dx = vec![0.0; c * h * w];
    for ch in 0..c {
        for oy in 0..ho {
            for ox in 0..wo {
                let i = ch * ho * wo + oy * wo + ox;
                let a = argmax[i] as usize;
                dx[ch * h * w + (2 * oy + a / 2) * w + 2 * ox + a % 2] += dy[i];
            }
        }
    }
    dx
}

/// `G = F Fᵀ / n` for `F [c, n]` (zero when n = 0).
pub fn gram(f: &[f32], c: usize, n: usize) -> Vec<f32> {
    let mut g = vec![0.0; c * c];
    for i in 0..c {
        for j in 0..c {
            let s: f64 = (0..n).map(|k| f[i * n + k] as f64 * f[j * n + k] as f64).sum();
            g[i * c + j] = if n == 0 { 0.0 } else { (s / n as f64) as f32 };
        }
    }
    g
}

/// `dF = (dG + dGᵀ) F / n`.
pub fn gram_backward(f: &[f32], dg: &[f32], c: usize, n: usize) -> Vec<f32> {
    let mut df = vec![0.0; c * n];
    for i in 0..c {
        for k in 0..n {
            let s: f64 = (0..c).map(|j| (dg[i * c + j] + dg[j * c + i]) as f64 * f[j * n + k] as f64).sum();
            df[i * n + k] = (s / n as f64) as f32; // n > 0 inside this loop
        }
    }
    df
}

/// `y = x` where `x > 0`, else `slope·x`, and the mask `x > 0`.
pub fn leaky_relu(x: &[f32], slope: f32) -> (Vec<f32>, Vec<u8>) {
    let y = x.iter().map(|&v| if v > 0.0 { v } else { slope * v }).collect();
    let mask = x.iter().map(|&v| (v > 0.0) as u8).collect();
    (y, mask)
}

/// `dx` of [`leaky_relu`].
pub fn leaky_relu_backward(dy: &[f32], mask: &[u8], slope: f32) -> Vec<f32> {
    dy.iter().zip(mask).map(|(&g, &m)| if m != 0 { g } else { slope * g }).collect()
}

/// `y = mid + half·tanh((x - mid)/half)` with channel c's `(lo, hi)` giving `mid = (lo + hi)/2`
/// and `half = (hi - lo)/2`, elements in `[n, c, plane]` order, and the slope `1 - tanh²`.
pub fn soft_clamp(x: &[f32], plane: usize, bounds: &[(f32, f32)]) -> (Vec<f32>, Vec<f32>) {
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let (lo, hi) = bounds[(i / plane) % bounds.len()];
            let (mid, half) = ((lo + hi) / 2.0, (hi - lo) / 2.0);
            let t = ((v - mid) / half).tanh();
            (mid + half * t, 1.0 - t * t)
        })
        .unzip()
}

/// `dx` of [`soft_clamp`]: `dy·slope`.
pub fn soft_clamp_backward(dy: &[f32], slope: &[f32]) -> Vec<f32> {
    dy.iter().zip(slope).map(|(&g, &s)| g * s).collect()
}

/// Where padded coordinate `i` of an axis of `len` reads from: mirrored about the first and the
/// last element, which are not repeated.
fn reflect(i: isize, len: usize) -> usize {
    let last = len as isize - 1;
    (if i < 0 {
        -i
    } else if i > last {
        2 * last - i
    } else {
        i
    }) as usize
}

/// Reflection padding of `[planes, h, w]` by `pad` on every side (`pad < h`, `pad < w`).
pub fn reflection_pad2d(x: &[f32], planes: usize, h: usize, w: usize, pad: usize) -> Vec<f32> {
    let (ho, wo) = (h + 2 * pad, w + 2 * pad);
    let mut y = vec![0.0; planes * ho * wo];
    for p in 0..planes {
        for oy in 0..ho {
            for ox in 0..wo {
                let iy = reflect(oy as isize - pad as isize, h);
                let ix = reflect(ox as isize - pad as isize, w);
                y[(p * ho + oy) * wo + ox] = x[(p * h + iy) * w + ix];
            }
        }
    }
    y
}

/// `dx` of [`reflection_pad2d`]: each output pixel's gradient added to the pixel it copied.
pub fn reflection_pad2d_backward(dy: &[f32], planes: usize, h: usize, w: usize, pad: usize) -> Vec<f32> {
    let (ho, wo) = (h + 2 * pad, w + 2 * pad);
    let mut dx = vec![0.0f64; planes * h * w];
    for p in 0..planes {
        for oy in 0..ho {
            for ox in 0..wo {
                let iy = reflect(oy as isize - pad as isize, h);
                let ix = reflect(ox as isize - pad as isize, w);
                dx[(p * h + iy) * w + ix] += dy[(p * ho + oy) * wo + ox] as f64;
            }
        }
    }
    dx.into_iter().map(|v| v as f32).collect()
}

/// Nearest-neighbour 2x upsampling of `[planes, h, w]`: `y[i, j] = x[i / 2, j / 2]`.
pub fn upsample_nearest2x(x: &[f32], planes: usize, h: usize, w: usize) -> Vec<f32> {
    let mut y = vec![0.0; 4 * planes * h * w];
    for p in 0..planes {
        for oy in 0..2 * h {
            for ox in 0..2 * w {
                y[(p * 2 * h + oy) * 2 * w + ox] = x[(p * h + oy / 2) * w + ox / 2];
            }
        }
    }
    y
}

/// `dx` of [`upsample_nearest2x`]: the sum of each 2x2 block of `dy`.
pub fn upsample_nearest2x_backward(dy: &[f32], planes: usize, h: usize, w: usize) -> Vec<f32> {
    let mut dx = vec![0.0f64; planes * h * w];
    for p in 0..planes {
        for oy in 0..2 * h {
            for ox in 0..2 * w {
                dx[(p * h + oy / 2) * w + ox / 2] += dy[(p * 2 * h + oy) * 2 * w + ox] as f64;
            }
        }
    }
    dx.into_iter().map(|v| v as f32).collect()
}

/// The indices of the values in group `group` of a normalisation of `[n, c, m]`: one plane
/// (instance statistics), or one channel of every sample (batch or running statistics).
fn group_members(g: NormGeometry, group: usize) -> Vec<usize> {
    match g.stats {
        Statistics::Instance => (group * g.m..(group + 1) * g.m).collect(),
        Statistics::Batch | Statistics::Running => {
            (0..g.n).flat_map(|i| (i * g.c + group) * g.m..(i * g.c + group + 1) * g.m).collect()
        }
    }
}

/// The mean and the biased variance `(1/M) Σ (x - μ)²` of each group.
pub fn moments(x: &[f32], g: NormGeometry) -> (Vec<f32>, Vec<f32>) {
    let (mut mean, mut var) = (vec![0.0; g.groups()], vec![0.0; g.groups()]);
    for group in 0..g.groups() {
        let members = group_members(g, group);
        let count = members.len() as f64;
        let mu = members.iter().map(|&i| x[i] as f64).sum::<f64>() / count;
        let v = members.iter().map(|&i| (x[i] as f64 - mu).powi(2)).sum::<f64>() / count;
        mean[group] = mu as f32;
        var[group] = v as f32;
    }
    (mean, var)
}

/// `(y, x̂)`: `x̂ = (x - μ)·(1/σ)` and `y = γ·x̂ + β`, each from the given statistics.
pub fn normalize(x: &[f32], g: NormGeometry, p: NormParams<'_>) -> (Vec<f32>, Vec<f32>) {
    let (mut y, mut xhat) = (vec![0.0; x.len()], vec![0.0; x.len()]);
    for group in 0..g.groups() {
        let channel = g.channel_of_group(group);
        for i in group_members(g, group) {
            let v = (x[i] as f64 - p.mean[group] as f64) * p.inv_std[group] as f64;
            xhat[i] = v as f32;
            y[i] = (p.gamma[channel] as f64 * v + p.beta[channel] as f64) as f32;
        }
    }
    (y, xhat)
}

/// `(dx, dγ, dβ)` of [`normalize`] given `dy`, the x̂ it computed and `γ/σ` per group:
/// `dx = (γ/σ)·(dy - mean(dy) - x̂·mean(dy·x̂))` over each group when the statistics came from x,
/// `(γ/σ)·dy` when they are constants; `dγ = Σ dy·x̂`, `dβ = Σ dy` per channel.
pub fn normalize_backward(
    dy: &[f32],
    xhat: &[f32],
    g: NormGeometry,
    dx_scale: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut dx = vec![0.0; dy.len()];
    let (mut dgamma, mut dbeta) = (vec![0.0f64; g.c], vec![0.0f64; g.c]);
    assert_eq!(dx_scale.len(), g.groups());
    for (group, &k) in dx_scale.iter().enumerate() {
        let channel = g.channel_of_group(group);
        let members = group_members(g, group);
        let count = members.len() as f64;
        let sum_dy: f64 = members.iter().map(|&i| dy[i] as f64).sum();
        let sum_dot: f64 = members.iter().map(|&i| dy[i] as f64 * xhat[i] as f64).sum();
        dbeta[channel] += sum_dy;
        dgamma[channel] += sum_dot;
        let (a, b) = if g.stats.from_input() { (sum_dy / count, sum_dot / count) } else { (0.0, 0.0) };
        for i in members {
            dx[i] = (k as f64 * (dy[i] as f64 - a - xhat[i] as f64 * b)) as f32;
        }
    }
    let round = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect();
    (dx, round(dgamma), round(dbeta))
}
