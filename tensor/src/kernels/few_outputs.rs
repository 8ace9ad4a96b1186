//! Sliding-window convolution for stride-1 layers with at most [`MAX_COUT`] output channels:
//! the style network's last layer (9x9, 16 or 32 channels to 3, at the picture's full size).
//!
//! As a GEMM, `Y = W · col(X)`, such a layer has M = cout = 3 rows, a quarter of the 12-row
//! micro-kernel tile on AVX-512: it ran at 60 GFLOP/s where the network's other layers reach
//! 130 (`benches/README.md`, "The last layer"), and at 512² it was 14% of `apply`. Here the
//! roles turn: a block of `NV` vectors of consecutive output pixels of one row is held in
//! registers for every output channel at once, and for each tap (ci, ky, kx) the `NV` input
//! vectors it reads (the padded row `oy + ky` from column `x0 + kx`) are loaded once and
//! multiplied by the tap's `cout` weights, broadcast. Each load feeds `cout` multiply-adds and
//! each broadcast `NV`, with no packing at all: the input rows are read where they lie.
//!
//! Each output is `bias + Σ w·x` over (ci, ky, kx) in that order, one fused multiply-add per
//! tap, the same for every pixel whatever block it falls in, so the result does not depend on
//! the thread count. A row narrower than a block is computed by the scalar loop, in the same
//! order; the last block of a wider row is shifted left to end at the row's end (the pixels it
//! shares with the block before are computed twice, identically).

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::gemm::SharedC;
use super::simd::{self, ACCUMULATORS, LANES, V};

/// The most output channels [`forward`] takes (its accumulators are `cout x NV` vectors).
pub const MAX_COUT: usize = 4;

/// Output rows per parallel task.
const ROWS_PER_TASK: usize = 4;

/// Whether a layer of geometry `g` runs its forward pass here: stride 1, at most
/// [`MAX_COUT`] outputs.
pub fn takes(g: super::conv::ConvGeometry) -> bool {
    g.stride == 1 && (1..=MAX_COUT).contains(&g.cout)
}

/// The layer's weights for [`forward`]: `[cin, kh, kw, cout]`, so a tap's `cout` weights are
/// adjacent.
#[derive(Clone, Debug)]
pub struct TapMajor {
    w: Vec<f32>,
    cout: usize,
    cin: usize,
    kh: usize,
    kw: usize,
}

impl TapMajor {
    /// Reorders `weight` (`[cout, cin, kh, kw]`, row-major).
    pub fn new(weight: &[f32], cout: usize, cin: usize, kh: usize, kw: usize) -> Self {
        assert!((1..=MAX_COUT).contains(&cout), "1 to {MAX_COUT} output channels, got {cout}");
        assert_eq!(weight.len(), cout * cin * kh * kw, "weight is [cout, cin, kh, kw]");
        let taps = cin * kh * kw;
        let w = (0..taps * cout).map(|i| weight[(i % cout) * taps + i / cout]).collect();
        TapMajor { w, cout, cin, kh, kw }
    }

    pub fn bytes(&self) -> usize {
        std::mem::size_of_val(self.w.as_slice())
    }
}

/// `y [cout, ho, wo] = bias + conv(x, W)` for one padded image `x [cin, hp, wp]` (stride 1,
/// ho = hp - kh + 1, wo = wp - kw + 1), then the ReLU and its mask when asked for (as the
/// GEMM's epilogue: NaN becomes 0, `mask = (y > 0)`). y is only written, every value of it.
pub fn forward(
    w: &TapMajor,
    bias: &[f32],
    x: &[f32],
    (hp, wp): (usize, usize),
    y: &mut [MaybeUninit<f32>],
    relu: bool,
    mask: Option<&mut [u8]>,
) {
    assert!(hp >= w.kh && wp >= w.kw, "a {}x{} kernel does not fit a {hp}x{wp} image", w.kh, w.kw);
    let (ho, wo) = (hp - w.kh + 1, wp - w.kw + 1);
    assert_eq!(x.len(), w.cin * hp * wp, "x is [cin, hp, wp]");
    assert_eq!(y.len(), w.cout * ho * wo, "y is [cout, ho, wo]");
    assert_eq!(bias.len(), w.cout, "one bias per output channel");
    let y = SharedC::from_uninit(y, wo);
    let mask = mask.map(|m| {
        assert_eq!(m.len(), w.cout * ho * wo, "one mask byte per output");
        SharedC::new(m, wo)
    });
    let image = Image { w, bias, x, hp, wp, ho, wo };
    let run = |oy: usize| match w.cout {
        1 => image.row::<1, { ACCUMULATORS }>(oy, &y, mask.as_ref(), relu),
        2 => image.row::<2, { ACCUMULATORS / 2 }>(oy, &y, mask.as_ref(), relu),
        3 => image.row::<3, { ACCUMULATORS / 3 }>(oy, &y, mask.as_ref(), relu),
        _ => image.row::<4, { ACCUMULATORS / 4 }>(oy, &y, mask.as_ref(), relu),
    };
    (0..ho.div_ceil(ROWS_PER_TASK)).into_par_iter().for_each(|t| {
        (t * ROWS_PER_TASK..((t + 1) * ROWS_PER_TASK).min(ho)).for_each(run);
    });
}

/// One padded image and the layer, for [`Image::row`].
struct Image<'a> {
    w: &'a TapMajor,
    bias: &'a [f32],
    x: &'a [f32],
    hp: usize,
    wp: usize,
    ho: usize,
    wo: usize,
}

impl Image<'_> {
    /// Output row `oy` of every channel: blocks of `NV` vectors, then the scalar loop for a
    /// row narrower than one block.
    fn row<const C: usize, const NV: usize>(
        &self,
        oy: usize,
        y: &SharedC<'_>,
        mask: Option<&SharedC<'_, u8>>,
        relu: bool,
    ) {
        let block = NV * LANES;
        let mut out = [[0.0f32; LANES]; NV];
        let write = |c: usize, x0: usize, values: &[f32]| {
            let stored = |v: f32| match relu {
                true if v > 0.0 => v,
                true => 0.0, // NaN too, as `elementwise::relu`
                false => v,
            };
            // SAFETY: each task writes only its own output rows (`ROWS_PER_TASK` of them, for
            // every channel), so the ranges of different tasks are disjoint; they are only
            // written.
            let row = unsafe { y.row_uninit(c * self.ho + oy, x0, values.len()) };
            for (o, &v) in row.iter_mut().zip(values) {
                o.write(stored(v));
            }
            if let Some(mask) = mask {
                // SAFETY: as above (the mask is initialised).
                let m = unsafe { mask.row(c * self.ho + oy, x0, values.len()) };
                for (m, &v) in m.iter_mut().zip(values) {
                    *m = (stored(v) > 0.0) as u8;
                }
            }
        };
        if self.wo < block {
            let mut values = vec![0.0; self.wo];
            for c in 0..C {
                for (j, v) in values.iter_mut().enumerate() {
                    *v = self.pixel(c, oy, j);
                }
                write(c, 0, &values);
            }
            return;
        }
        let mut x0 = 0;
        loop {
            let acc = self.block::<C, NV>(oy, x0);
            for (c, acc) in acc.iter().enumerate() {
                for (o, a) in out.iter_mut().zip(acc) {
                    *o = a.to_array();
                }
                write(c, x0, out.as_flattened());
            }
            if x0 + block == self.wo {
                break;
            }
            x0 = (x0 + block).min(self.wo - block);
        }
    }

    /// The `C x NV` accumulators of the block of output row `oy` from column `x0`.
    #[inline(always)]
    fn block<const C: usize, const NV: usize>(&self, oy: usize, x0: usize) -> [[V; NV]; C] {
        let (w, kw) = (self.w, self.w.kw);
        let mut acc: [[V; NV]; C] = std::array::from_fn(|c| [V::splat(self.bias[c]); NV]);
        let reach = kw - 1 + NV * LANES;
        let mut taps = w.w.chunks_exact(C);
        for ci in 0..w.cin {
            for ky in 0..w.kh {
                let row = &self.x[(ci * self.hp + oy + ky) * self.wp + x0..][..reach];
                for kx in 0..kw {
                    let tap = taps.next().expect("one weight per tap and channel");
                    let xs: [V; NV] = std::array::from_fn(|v| simd::load(&row[kx + v * LANES..]));
                    for (acc, &wc) in acc.iter_mut().zip(tap) {
                        let wc = V::splat(wc);
                        for (a, &xv) in acc.iter_mut().zip(&xs) {
                            *a = xv.mul_add(wc, *a);
                        }
                    }
                }
            }
        }
        acc
    }

    /// Output `(c, oy, ox)`, one value at a time in the vector path's order.
    fn pixel(&self, c: usize, oy: usize, ox: usize) -> f32 {
        let (w, cout) = (self.w, self.w.cout);
        let mut acc = self.bias[c];
        for ci in 0..w.cin {
            for ky in 0..w.kh {
                let row = &self.x[(ci * self.hp + oy + ky) * self.wp + ox..];
                for (kx, &x) in row[..w.kw].iter().enumerate() {
                    acc = x.mul_add(w.w[((ci * w.kh + ky) * w.kw + kx) * cout + c], acc);
                }
            }
        }
        acc
    }
}
