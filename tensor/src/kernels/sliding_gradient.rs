//! The weight gradient of a stride-1 convolution by sliding rows, with no im2col: for the style
//! network's layers, the thin ones at a picture's full size above all (its 9x9 first and last
//! layers and its resize-convolutions, 3 to 32 output channels).
//!
//! As a GEMM, `dW = dY · col(X)ᵀ` has M = cout rows: 16 fill two thirds of two of AVX-512's
//! 12-row micro-kernel tiles, 3 a quarter of one, and each float of `col(X)ᵀ`, packed from the
//! image by a gather, feeds only cout multiply-adds. Those layers' weight gradients ran at 44-63
//! GFLOP/s in a training step, 62-103 alone (`benches/README.md`, "The weight gradient by
//! sliding rows"). Here the sum is taken where the rows lie:
//!
//! ```text
//! dW[co, ci, ky, kx] = Σ_images Σ_oy Σ_ox dY[co, oy, ox] · x[ci, oy + ky, ox + kx]
//! ```
//!
//! For one input channel ci, kernel row ky and a block of `KX` kernel columns (3, or 1 for a
//! kernel width 3 does not divide), a block of `CO` output channels holds `CO x KX` vector
//! accumulators. For each vector of `LANES` consecutive pixels of dY's row oy, the `KX` vectors
//! of x's row `oy + ky` shifted by kx are loaded once and each multiplied by the `CO` channels'
//! dY vectors: `KX + CO` loads feed `CO·KX` multiply-adds (3 + 8 loads for 24 on AVX-512), and
//! nothing is gathered. dY is copied a band of rows at a time into a buffer of its `CO`
//! channels' vectors side by side, read then by every (ci, ky, kx block) from L1 (the planes
//! themselves are 4 KiB-aliased at the network's sizes: 288² floats is 81 pages).
//!
//! Lane `l` of an accumulator sums the products of its pixels (`ox ≡ l (mod LANES)`, and a
//! row's last `LANES` pixels when `LANES` does not divide its width, the lanes already counted
//! multiplied by zero), image by image, row by row, left to right; the lanes are then added in
//! order. Each element of dW is summed by one task alone, so the result does not depend on the
//! thread count. Zero padding is written out first (a copy of x, small beside the work).

use std::ops::Range;

use rayon::prelude::*;

use super::conv::ConvGeometry;
use super::pad::{self, Window};
use super::simd::{self, ACCUMULATORS, LANES, V};

/// Floats of dY a band of rows copies (24 KiB, half a Xeon's L1d): the copy and the band's rows
/// of x stay in L1 while every (ci, ky, kx block) runs over them.
const BAND_FLOATS: usize = 6 * 1024;

/// The most output channels a layer may have to take this route. With more, each float of
/// `col(X)ᵀ` the GEMM packs feeds enough multiply-adds that the GEMM keeps up: the two tied at
/// 64 outputs, and the GEMM was ahead in four pairs of six at 128 (`benches/README.md`, "The
/// weight gradient by sliding rows").
pub const MAX_COUT: usize = 32;

/// Whether a layer's weight gradient is taken here: stride 1, at most [`MAX_COUT`] outputs.
pub fn takes(g: ConvGeometry) -> bool {
    g.stride == 1 && g.cout <= MAX_COUT
}

/// `dw [cout, cin, kh, kw] = Σ_images dY ⋆ x`, from `x [n, cin, h, w]` and `dy [n, cout, ho,
/// wo]`, for a layer [`takes`] accepts.
pub fn weight_gradient(g: ConvGeometry, x: &[f32], (n, h, w): (usize, usize, usize), dy: &[f32], dw: &mut [f32]) {
    assert!(takes(g), "sliding weight gradient: stride 1 and at most {MAX_COUT} outputs; got {g:?}");
    let (ho, wo) = g.output_size(h, w).expect("the kernel fits the image");
    assert_eq!(x.len(), n * g.cin * h * w, "x is [n, cin, h, w]");
    assert_eq!(dy.len(), n * g.cout * ho * wo, "dy is [n, cout, ho, wo]");
    assert_eq!(dw.len(), g.cout * g.patch_len(), "dw is [cout, cin, kh, kw]");
    if dw.is_empty() {
        return;
    }
    let padded;
    let (x, h, w) = if g.pad_h + g.pad_w > 0 {
        let (hp, wp) = (h + 2 * g.pad_h, w + 2 * g.pad_w);
        let image = Window { top: g.pad_h, left: g.pad_w, h, w };
        // The zero padding around x is the adjoint of cropping x out of it.
        padded = pad::crop2d_backward(x, n * g.cin, hp, wp, image);
        (&padded[..], hp, wp)
    } else {
        (x, h, w)
    };
    let layer = Layer { g, x, dy, n, h, w, ho, wo };
    let kx = if g.kw.is_multiple_of(3) { 3 } else { 1 };
    // The widest block of output channels that divides cout, so that every task is alike.
    let co =
        [8, 4, 3, 2, 1].into_iter().find(|&c| c * kx <= ACCUMULATORS && g.cout.is_multiple_of(c)).expect("1 divides");
    // Tasks of a block of output channels and a group of input channels: within a band of rows
    // each task runs every channel of its group over the same rows of dY. Groups only share
    // the work out (each dW element is summed by one task in the same order whatever the
    // group), so they may depend on the thread count.
    let co_blocks = g.cout / co;
    let groups = (4 * rayon::current_num_threads()).div_ceil(co_blocks).min(g.cin);
    let per_group = g.cin.div_ceil(groups);
    let tasks: Vec<(usize, Range<usize>)> = (0..co_blocks)
        .flat_map(|b| (0..g.cin).step_by(per_group).map(move |c0| (b * co, c0..(c0 + per_group).min(g.cin))))
        .collect();
    let taps = g.kh * g.kw;
    let sums: Vec<Vec<f32>> = tasks
        .par_iter()
        .map(|(co0, cis)| {
            let (co0, cis) = (*co0, cis.clone());
            match (co, kx) {
                (8, 3) => layer.block::<8, 3>(co0, cis),
                (4, 3) => layer.block::<4, 3>(co0, cis),
                (3, 3) => layer.block::<3, 3>(co0, cis),
                (2, 3) => layer.block::<2, 3>(co0, cis),
                (1, 3) => layer.block::<1, 3>(co0, cis),
                (8, _) => layer.block::<8, 1>(co0, cis),
                (4, _) => layer.block::<4, 1>(co0, cis),
                (3, _) => layer.block::<3, 1>(co0, cis),
                (2, _) => layer.block::<2, 1>(co0, cis),
                _ => layer.block::<1, 1>(co0, cis),
            }
        })
        .collect();
    // Each task's sums are [ci, co, ky, kx] for its channels: placed in dw's [cout, cin, kh, kw].
    for ((co0, cis), sums) in tasks.iter().zip(&sums) {
        for (j, sums) in sums.chunks_exact(taps).enumerate() {
            let (ci, co) = (cis.start + j / co, co0 + j % co);
            dw[(co * g.cin + ci) * taps..][..taps].copy_from_slice(sums);
        }
    }
}

/// The layer's operands and sizes, for [`Layer::block`].
struct Layer<'a> {
    g: ConvGeometry,
    x: &'a [f32],
    dy: &'a [f32],
    n: usize,
    h: usize,
    w: usize,
    ho: usize,
    wo: usize,
}

impl Layer<'_> {
    /// `dW[co0..co0 + CO, cis, .., ..]`, as `[cis.len(), CO, kh, kw]`.
    fn block<const CO: usize, const KX: usize>(&self, co0: usize, cis: Range<usize>) -> Vec<f32> {
        let Layer { g, n, h, w, ho, wo, .. } = *self;
        let column_blocks = g.kw / KX;
        let offsets = g.kh * column_blocks;
        // One set of accumulators per (ci, ky, kx block), kept here between bands.
        let mut partial = vec![[[V::ZERO; KX]; CO]; cis.len() * offsets];
        let (tail, vectors) = Tail::new(wo);
        let band = (BAND_FLOATS / (CO * vectors * LANES)).clamp(1, ho.max(1));
        let mut rows = vec![[V::ZERO; CO]; band * vectors];
        for i in 0..n {
            for oy0 in (0..ho).step_by(band) {
                let count = band.min(ho - oy0);
                let rows = &mut rows[..count * vectors];
                for (c, d) in (co0..co0 + CO).enumerate() {
                    let d = &self.dy[((i * g.cout + d) * ho + oy0) * wo..][..count * wo];
                    for (vs, d) in rows.chunks_exact_mut(vectors).zip(d.chunks_exact(wo)) {
                        tail.split(d, |v, value| vs[v][c] = value);
                    }
                }
                for (j, ci) in cis.clone().enumerate() {
                    let x = &self.x[(i * g.cin + ci) * h * w..][..h * w];
                    for (o, acc) in partial[j * offsets..][..offsets].iter_mut().enumerate() {
                        let (ky, b) = (o / column_blocks, o % column_blocks);
                        let mut a = *acc;
                        for (r, d) in rows.chunks_exact(vectors).enumerate() {
                            let oy = oy0 + r;
                            let x_row = &x[(oy + ky) * w + b * KX..(oy + ky + 1) * w];
                            accumulate_row(&mut a, x_row, d, &tail);
                        }
                        *acc = a;
                    }
                }
            }
        }
        let mut sums = vec![0.0; cis.len() * CO * g.kh * g.kw];
        for (jo, acc) in partial.iter().enumerate() {
            let (j, ky, b) = (jo / offsets, jo % offsets / column_blocks, jo % column_blocks);
            for (c, acc) in acc.iter().enumerate() {
                for (k, a) in acc.iter().enumerate() {
                    sums[((j * CO + c) * g.kh + ky) * g.kw + b * KX + k] = lane_sum(*a);
                }
            }
        }
        sums
    }
}

/// How a row's `wo % LANES` last pixels are read, after its `wo / LANES` whole vectors.
enum Tail {
    /// `wo` is a multiple of `LANES`.
    None,
    /// The row's last `LANES` pixels, from `start`, with dY's lanes that the whole vectors
    /// already counted multiplied by zero (`keep` is 0 there, 1 elsewhere).
    Overlapping { start: usize, keep: V },
    /// A row narrower than a vector: zero-filled copies of its `wo` pixels.
    Padded { wo: usize },
}

impl Tail {
    /// The tail of rows of `wo` pixels, and the vectors of dY a row then has.
    fn new(wo: usize) -> (Self, usize) {
        let whole = wo / LANES;
        match wo % LANES {
            0 => (Tail::None, whole),
            _ if whole == 0 => (Tail::Padded { wo }, 1),
            tail => {
                let keep = std::array::from_fn(|l| if l >= LANES - tail { 1.0 } else { 0.0 });
                (Tail::Overlapping { start: wo - LANES, keep: V::new(keep) }, whole + 1)
            }
        }
    }

    /// A row of dY as the vectors [`accumulate_row`] reads: `put(v, vector)` for each.
    #[inline(always)]
    fn split(&self, d: &[f32], mut put: impl FnMut(usize, V)) {
        let whole = d.len() / LANES;
        for v in 0..whole {
            put(v, simd::load(&d[v * LANES..]));
        }
        match *self {
            Tail::None => {}
            Tail::Overlapping { start, keep } => put(whole, simd::load(&d[start..]) * keep),
            Tail::Padded { wo } => put(0, padded(&d[..wo])),
        }
    }
}

/// `s` in the first lanes of a vector, zeros after.
fn padded(s: &[f32]) -> V {
    let mut v = [0.0; LANES];
    v[..s.len()].copy_from_slice(s);
    V::new(v)
}

/// `acc[c][k] += d[v][c] · x_row[ox + k]` lane by lane over one output row, its vectors `d`
/// as [`Tail::split`] made them; `x_row` holds at least `wo + KX - 1` floats.
#[inline(always)]
fn accumulate_row<const CO: usize, const KX: usize>(
    acc: &mut [[V; KX]; CO],
    x_row: &[f32],
    d: &[[V; CO]],
    tail: &Tail,
) {
    let whole = match tail {
        Tail::None => d.len(),
        Tail::Overlapping { .. } | Tail::Padded { .. } => d.len() - 1,
    };
    for (v, d) in d[..whole].iter().enumerate() {
        let xs = std::array::from_fn(|k| simd::load(&x_row[v * LANES + k..]));
        step(acc, xs, d);
    }
    match *tail {
        Tail::None => {}
        Tail::Overlapping { start, .. } => {
            let xs = std::array::from_fn(|k| simd::load(&x_row[start + k..]));
            step(acc, xs, &d[whole]);
        }
        Tail::Padded { wo } => {
            let xs = std::array::from_fn(|k| padded(&x_row[k..k + wo]));
            step(acc, xs, &d[0]);
        }
    }
}

/// `acc[c][k] += xs[k] · d[c]`.
#[inline(always)]
fn step<const CO: usize, const KX: usize>(acc: &mut [[V; KX]; CO], xs: [V; KX], d: &[V; CO]) {
    for (a, &d) in acc.iter_mut().zip(d) {
        for (a, x) in a.iter_mut().zip(&xs) {
            *a = x.mul_add(d, *a);
        }
    }
}

/// The lanes of `v` added in order, lane 0 first.
fn lane_sum(v: V) -> f32 {
    v.to_array().iter().fold(0.0, |s, &l| s + l)
}
