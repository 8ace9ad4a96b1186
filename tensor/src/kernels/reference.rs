//! The scalar twin of every fast kernel: plain loops, readable top to bottom, no SIMD, no
//! threads, no packing. Property tests hold the fast kernels to these; students can read the
//! textbook version here first. Sums are accumulated in f64, so these are the "exact" side of
//! every comparison.

use super::conv::ConvGeometry;
use super::gemm::MatRef;

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
