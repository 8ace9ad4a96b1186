//! 2-D convolution (stride 1, zero padding) as GEMM with im2col fused into the packing of B.
//!
//! Forward: `Y (cout x P) = W (cout x cin·kh·kw) · col(X) (cin·kh·kw x P) + b`, where P is the
//! number of output pixels and `col(X)` the im2col matrix (Chellapilla et al., "High
//! Performance Convolutional Neural Networks for Document Processing", 2006). `col(X)` is
//! never built (600 MB saved for conv1_2 at 512x512): the image is zero-padded once, and then
//! [`Im2col`] lets the micro-kernel read most panels of `col(X)` straight from it, packing only
//! the few that wrap from one image row to the next.
//!
//! Backward to the input: for stride 1, `dX = conv(dY, W')` with padding `k - 1 - p`, where
//! `W'[ci, co, ky, kx] = W[co, ci, kh-1-ky, kw-1-kx]` (in/out swapped, rotated 180°). So the
//! backward pass reuses the forward kernel with a second weight matrix packed once.
//!
//! For layers with few input channels (VGG's conv1_1: 3 in, 64 out) that gathers a tall
//! im2col of dY (576 rows) to produce only 3 rows of output. There the cheaper route is
//! `dX = col2im(Wᵀ · dY)`: a GEMM whose B is dY itself (64 rows), then a scatter-add of the
//! 27 patch rows back into the image.

use std::borrow::Cow;

use super::gemm::params::{KC, NR};
use super::gemm::{gemm, AOperand, Epilogue, MatRef, PackB, PackedA};
use rayon::prelude::*;

/// Shape of a convolution: channels, kernel size and zero padding; stride is 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    pub cin: usize,
    pub cout: usize,
    pub kh: usize,
    pub kw: usize,
    pub pad_h: usize,
    pub pad_w: usize,
}

impl ConvGeometry {
    /// The usual VGG layer: 3x3 kernel, padding 1, so the output has the input's size.
    pub fn same3x3(cin: usize, cout: usize) -> Self {
        ConvGeometry { cin, cout, kh: 3, kw: 3, pad_h: 1, pad_w: 1 }
    }

    /// Rows of the im2col matrix: one per (input channel, kernel row, kernel column).
    pub fn patch_len(&self) -> usize {
        self.cin * self.kh * self.kw
    }

    /// Output height and width for an `h x w` input, or `None` when the kernel does not fit.
    pub fn output_size(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let (hp, wp) = (h + 2 * self.pad_h, w + 2 * self.pad_w);
        (hp >= self.kh && wp >= self.kw).then(|| (hp - self.kh + 1, wp - self.kw + 1))
    }

    /// The same convolution on an image already padded.
    fn unpadded(&self) -> Self {
        ConvGeometry { pad_h: 0, pad_w: 0, ..*self }
    }

    /// The geometry of the backward-to-input convolution (channels swapped, padding k-1-p).
    fn transposed(&self) -> Self {
        ConvGeometry {
            cin: self.cout,
            cout: self.cin,
            kh: self.kh,
            kw: self.kw,
            pad_h: self.kh - 1 - self.pad_h,
            pad_w: self.kw - 1 - self.pad_w,
        }
    }
}

/// Convolution weights packed once for the forward and the backward-to-input GEMMs.
///
/// Invariant: `forward` is `W` as a `cout x cin·kh·kw` matrix and `backward` is `W'` (see the
/// module docs) as a `cin x cout·kh·kw` matrix, both in [`PackedA`] layout; `bias.len() == cout`.
#[derive(Clone, Debug)]
pub struct PackedConv {
    pub geometry: ConvGeometry,
    forward: PackedA,
    backward: PackedA,
    /// `Wᵀ` (`cin·kh·kw x cout`), only for layers where the col2im backward is cheaper.
    transposed: Option<PackedA>,
    bias: Vec<f32>,
}

impl PackedConv {
    /// Packs `weight` (`[cout, cin, kh, kw]`, row-major) and keeps `bias` (`[cout]`).
    pub fn new(weight: &[f32], bias: &[f32], g: ConvGeometry) -> Self {
        assert_eq!(weight.len(), g.cout * g.patch_len(), "conv weight shape");
        assert_eq!(bias.len(), g.cout, "conv bias shape");
        assert!(g.pad_h < g.kh && g.pad_w < g.kw, "padding must be smaller than the kernel");
        let forward = PackedA::new(MatRef::row_major(weight, g.cout, g.patch_len()));
        let (kh, kw) = (g.kh, g.kw);
        let mut flipped = vec![0.0; weight.len()];
        for co in 0..g.cout {
            for ci in 0..g.cin {
                for ky in 0..kh {
                    for kx in 0..kw {
                        let src = ((co * g.cin + ci) * kh + ky) * kw + kx;
                        let dst = ((ci * g.cout + co) * kh + (kh - 1 - ky)) * kw + (kw - 1 - kx);
                        flipped[dst] = weight[src];
                    }
                }
            }
        }
        let backward = PackedA::new(MatRef::row_major(&flipped, g.cin, g.cout * kh * kw));
        let transposed =
            g.col2im_is_cheaper().then(|| PackedA::new(MatRef::row_major(weight, g.cout, g.patch_len()).t()));
        PackedConv { geometry: g, forward, backward, transposed, bias: bias.to_vec() }
    }
}

impl ConvGeometry {
    /// Rows of B each backward route packs: the flipped convolution gathers `cout·kh·kw` rows;
    /// col2im packs `cout` rows of dY and then writes and reads `cin·kh·kw` rows of dcol.
    fn col2im_is_cheaper(&self) -> bool {
        self.cout + 2 * self.patch_len() < self.cout * self.kh * self.kw
    }
}

/// `y [cout, ho, wo] = conv(x [cin, h, w], W) + b`.
pub fn conv_forward(p: &PackedConv, x: &[f32], h: usize, w: usize, y: &mut [f32]) {
    forward(p, x, h, w, y, false);
}

/// `y = max(conv(x, W) + b, 0)`: the ReLU done in the GEMM's write-back (see [`Epilogue::relu`]).
pub fn conv_relu_forward(p: &PackedConv, x: &[f32], h: usize, w: usize, y: &mut [f32]) {
    forward(p, x, h, w, y, true);
}

fn forward(p: &PackedConv, x: &[f32], h: usize, w: usize, y: &mut [f32], relu: bool) {
    let epilogue = Epilogue { bias: Some(&p.bias), accumulate: false, relu };
    conv_gemm(&p.forward, x, p.geometry, h, w, y, epilogue);
}

/// `y = a · col(x)` for the convolution `g` of an `h x w` image: zero-pads the image once
/// (one copy of it), then lets the GEMM read `col` of the padded image (see [`Im2col`]).
fn conv_gemm(a: &PackedA, x: &[f32], g: ConvGeometry, h: usize, w: usize, y: &mut [f32], epilogue: Epilogue) {
    let (x, hp, wp) = padded(x, g, h, w);
    gemm(AOperand::Packed(a), &Im2col::new(&x, g.unpadded(), hp, wp), y, epilogue);
}

/// The im2col matrix `[cin·kh·kw, ho·wo]` of `x [cin, h, w]`, written out (the forward and
/// input-gradient GEMMs never do: they read it in place, see [`Im2col`]). Row k is the
/// zero-padded image shifted by `offset(k)`, so each output row of it is one copy of `wo`
/// consecutive floats.
pub fn im2col(x: &[f32], g: ConvGeometry, h: usize, w: usize) -> Vec<f32> {
    let (x, hp, wp) = padded(x, g, h, w);
    let b = Im2col::new(&x, g.unpadded(), hp, wp);
    let mut offsets = vec![0; g.patch_len()];
    b.row_offsets(0, &mut offsets);
    let mut col = vec![0.0; g.patch_len() * b.pixels];
    col.par_chunks_mut(b.pixels).zip(offsets.par_iter()).for_each(|(row, &offset)| {
        for (oy, out) in row.chunks_exact_mut(b.wo).enumerate() {
            out.copy_from_slice(&x[offset + oy * wp..][..b.wo]);
        }
    });
    col
}

/// `x [cin, h, w]` inside the zero border of `g` (borrowed when `g` has no padding), with its
/// padded height and width.
fn padded(x: &[f32], g: ConvGeometry, h: usize, w: usize) -> (Cow<'_, [f32]>, usize, usize) {
    let (hp, wp) = (h + 2 * g.pad_h, w + 2 * g.pad_w);
    if g.pad_h == 0 && g.pad_w == 0 {
        (Cow::Borrowed(x), hp, wp)
    } else {
        (Cow::Owned(zero_pad(x, g.cin, (h, w), (g.pad_h, g.pad_w))), hp, wp)
    }
}

/// `x [c, h, w]` inside a border of `pad_h` rows and `pad_w` columns of zeros.
fn zero_pad(x: &[f32], c: usize, (h, w): (usize, usize), (pad_h, pad_w): (usize, usize)) -> Vec<f32> {
    let (hp, wp) = (h + 2 * pad_h, w + 2 * pad_w);
    let mut out = vec![0.0; c * hp * wp];
    out.par_chunks_mut(hp * wp).zip(x.par_chunks(h * w)).for_each(|(dst, src)| {
        for (d, s) in dst.chunks_exact_mut(wp).skip(pad_h).zip(src.chunks_exact(w)) {
            d[pad_w..pad_w + w].copy_from_slice(s);
        }
    });
    out
}

/// `dx [cin, h, w] = ∂L/∂x` from `dy [cout, ho, wo]`, for an `h x w` input.
pub fn conv_backward_input(p: &PackedConv, dy: &[f32], h: usize, w: usize, dx: &mut [f32]) {
    let g = p.geometry;
    let (ho, wo) = g.output_size(h, w).expect("forward ran on this size");
    if let Some(wt) = &p.transposed {
        let mut dcol = vec![0.0; g.patch_len() * ho * wo];
        gemm(AOperand::Packed(wt), &MatRef::row_major(dy, g.cout, ho * wo), &mut dcol, Epilogue::default());
        col2im(&dcol, g, h, w, dx);
        return;
    }
    conv_gemm(&p.backward, dy, g.transposed(), ho, wo, dx, Epilogue::default());
}

/// `dx [cin, h, w]` = the sum, over every patch position, of the patch rows of `dcol`
/// (`[cin·kh·kw, ho·wo]`) put back where im2col took them from. One channel per task, in a
/// fixed order, so the sums do not depend on the thread count.
fn col2im(dcol: &[f32], g: ConvGeometry, h: usize, w: usize, dx: &mut [f32]) {
    let (ho, wo) = g.output_size(h, w).expect("forward ran on this size");
    dx.par_chunks_mut(h * w).enumerate().for_each(|(ci, plane)| {
        plane.fill(0.0);
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let row = &dcol[((ci * g.kh + ky) * g.kw + kx) * ho * wo..][..ho * wo];
                for oy in 0..ho {
                    let iy = (oy + ky) as isize - g.pad_h as isize;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    // ix = ox + kx - pad_w must lie in 0..w.
                    let shift = kx as isize - g.pad_w as isize;
                    let ox_lo = (-shift).clamp(0, wo as isize) as usize;
                    let ox_hi = (w as isize - shift).clamp(ox_lo as isize, wo as isize) as usize;
                    let src = &row[oy * wo + ox_lo..oy * wo + ox_hi];
                    let dst_start = (iy as usize) * w + (ox_lo as isize + shift) as usize;
                    for (d, s) in plane[dst_start..dst_start + src.len()].iter_mut().zip(src) {
                        *d += s;
                    }
                }
            }
        }
    });
}

/// `dw [cout, cin, kh, kw]` and `db [cout]` from the input `x [cin, h, w]` and `dy`.
///
/// `dW = dY · col(X)ᵀ`. This path runs only for trainable weights (never for VGG), so it
/// materialises `col(X)` with [`im2col`] rather than fusing it into a pack.
pub fn conv_backward_weight(
    g: ConvGeometry,
    x: &[f32],
    h: usize,
    w: usize,
    dy: &[f32],
    dw: &mut [f32],
    db: &mut [f32],
) {
    let (ho, wo) = g.output_size(h, w).expect("forward ran on this size");
    let pixels = ho * wo;
    let col = im2col(x, g, h, w);
    let dy_mat = MatRef::row_major(dy, g.cout, pixels);
    gemm(AOperand::View(dy_mat), &MatRef::row_major(&col, g.patch_len(), pixels).t(), dw, Epilogue::default());
    for (b, row) in db.iter_mut().zip(dy.chunks_exact(pixels)) {
        *b = row.iter().map(|&v| v as f64).sum::<f64>() as f32;
    }
}

/// The im2col matrix of an (already padded) image, as a B operand the GEMM reads without
/// ever materialising it.
///
/// Row `k = (ci·kh + ky)·kw + kx`, column `n = oy·wo + ox` holds `x[ci, oy+ky, ox+kx]`: with
/// no padding left to apply, row k is the image shifted by `offset(k) = (ci·h + ky)·w + kx`,
/// so `B[k, n] = x[offset(k) + oy·w + ox]`. A micro-panel of NR pixels inside one output row
/// is then NR consecutive floats of the image in every row k, and the micro-kernel reads it in
/// place ("implicit GEMM"); only panels that wrap to the next output row are packed.
pub struct Im2col<'a> {
    x: &'a [f32],
    g: ConvGeometry,
    h: usize,
    w: usize,
    wo: usize,
    pixels: usize,
}

impl<'a> Im2col<'a> {
    pub fn new(x: &'a [f32], g: ConvGeometry, h: usize, w: usize) -> Self {
        assert_eq!(x.len(), g.cin * h * w, "im2col input is [cin, h, w]");
        assert!(g.pad_h == 0 && g.pad_w == 0, "im2col reads an image padded beforehand");
        let (ho, wo) = g.output_size(h, w).expect("kernel larger than the image");
        Im2col { x, g, h, w, wo, pixels: ho * wo }
    }

    /// `offset(k)` for rows `k0..k0 + offsets.len()`.
    fn row_offsets(&self, k0: usize, offsets: &mut [usize]) {
        let ConvGeometry { kh, kw, .. } = self.g;
        for (k, o) in (k0..).zip(offsets) {
            let (ci, ky, kx) = (k / (kh * kw), (k / kw) % kh, k % kw);
            *o = (ci * self.h + ky) * self.w + kx;
        }
    }
}

impl PackB for Im2col<'_> {
    fn rows(&self) -> usize {
        self.g.patch_len()
    }

    fn cols(&self) -> usize {
        self.pixels
    }

    fn pack(&self, k0: usize, kc: usize, n0: usize, nc: usize, out: &mut [f32]) {
        let mut offsets = [0; KC];
        self.row_offsets(k0, &mut offsets[..kc]);
        for (p, panel) in out.chunks_exact_mut(kc * NR).take(nc.div_ceil(NR)).enumerate() {
            let j0 = n0 + p * NR;
            if self.panel_in_place(j0).is_some() {
                continue;
            }
            let width = NR.min(n0 + nc - j0);
            // The panel's columns as runs of consecutive pixels in one output row:
            // (offset in the panel, oy·w + ox of the first, length).
            let mut runs = [(0, 0, 0); NR];
            let mut n_runs = 0;
            let mut j = 0;
            while j < width {
                let (oy, ox) = ((j0 + j) / self.wo, (j0 + j) % self.wo);
                let len = (self.wo - ox).min(width - j);
                runs[n_runs] = (j, oy * self.w + ox, len);
                n_runs += 1;
                j += len;
            }
            for (row, &offset) in panel.chunks_exact_mut(NR).zip(&offsets[..kc]) {
                for &(j, start, len) in &runs[..n_runs] {
                    copy_run(&mut row[j..j + len], &self.x[offset + start..][..len]);
                }
                row[width..].fill(0.0);
            }
        }
    }

    fn rows_in_place(&self, k0: usize, kc: usize, offsets: &mut [usize]) -> Option<&[f32]> {
        self.row_offsets(k0, &mut offsets[..kc]);
        Some(self.x)
    }

    fn panel_in_place(&self, j: usize) -> Option<usize> {
        let (oy, ox) = (j / self.wo, j % self.wo);
        (ox + NR <= self.wo).then_some(oy * self.w + ox)
    }
}

/// `dst = src` for runs of at most NR floats: a whole panel row is a fixed-size copy (two
/// vector moves), avoiding a call to `memmove` for 64 bytes.
#[inline(always)]
fn copy_run(dst: &mut [f32], src: &[f32]) {
    if let (Ok(d), Ok(s)) = (<&mut [f32; NR]>::try_from(&mut *dst), <&[f32; NR]>::try_from(src)) {
        *d = *s;
    } else {
        dst.copy_from_slice(src);
    }
}
