//! Winograd convolution F(4x4, 3x3) for 3x3 stride-1 layers (Lavin & Gray, "Fast Algorithms
//! for Convolutional Neural Networks", CVPR 2016).
//!
//! Each 4x4 tile of a 3x3 convolution's output is read from a 6x6 window `d` of the padded
//! input, and for one input channel and one kernel `g`
//!
//! ```text
//! Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A
//! ```
//!
//! (`⊙` elementwise, [`BT`], [`G`], [`AT`] below, from the interpolation points 0, ±1, ±2
//! and ∞). Summed over input channels, the 36 elementwise products become 36 independent
//! matrix products, one per position ξ of the 6x6 transformed window:
//!
//! ```text
//! M_ξ (cout x tiles) = U_ξ (cout x cin) · V_ξ (cin x tiles),   U = G g Gᵀ,  V = Bᵀ d B
//! ```
//!
//! That is 36 multiply-adds per output tile of 16 pixels, per channel pair, where direct
//! convolution does 9 per pixel: 2.25 against 9, four times fewer. The price is the two
//! transforms (input and output, vectorised over tiles here) and their rounding error; see
//! [`ERROR_GROWTH`].
//!
//! The weights are transformed at each call, in f64, straight into the packed form the GEMM
//! reads (`U_ξ` as 36 A operands, see [`WinogradWeights`]). The tiles of an image are
//! processed in batches, one batch per parallel task: transform the batch's windows into `V`
//! (laid out so the GEMM micro-kernel reads its panels in place, nothing packed), run the 36
//! products on the task's own thread ([`gemm_serial_rows`]), and transform `M` back into the
//! output, adding the bias and applying the ReLU on the way (no second pass over the output). A batch's `V` and `M` are sized to stay
//! in cache (`BATCH_FLOATS`). An image with too few tiles for two batches a thread (VGG's
//! deepest layers on a training crop) is one batch instead, its products split between the
//! tasks by output channels ([`Split`]). Either way each output value is the same sums in the
//! same order, so the result does not depend on the split or the thread count.
//!
//! The backward pass to the input of a stride-1 layer is the convolution of the output
//! gradient with the flipped kernel (see `kernels::conv`), so it runs through this same code,
//! transforming the same kernels flipped ([`Pass::InputGradient`]). The backward pass to the
//! weights ([`weight_gradient`]) transforms the same windows and the output gradient's tiles,
//! and multiplies them with the tiles as the products' depth. It does a quarter of the direct
//! route's multiply-adds but measured 1.5-2.1x slower (its transformed tiles go through memory
//! twice, and the products' depth is not batched in cache as the forward pass's is), so no
//! layer takes it by default (`ConvAlgorithms::for_geometry`); it stays selectable, tested
//! and benchmarked beside the direct route.
//!
//! Unlike direct convolution, Winograd is not exactly translation-invariant: the 16 outputs of
//! a tile are different combinations of the products, so equal windows at different places
//! in a tile can give outputs a rounding apart. A wholly flat window is exact (see `bt`), but a
//! tile straddling the edge of a flat region is not, and a max-pool reading the result meets
//! near-ties where direct convolution gives exact ones (resolved first-cell-first, as
//! PyTorch does). A caller that needs those ties keeps that layer's forward direct.

use rayon::prelude::*;

use super::gemm::params::NR;
use std::mem::MaybeUninit;
use std::ops::Range;
use std::sync::Mutex;

use super::gemm::params::MR;
use super::gemm::{gemm, gemm_serial_rows, positive_mask_into, AOperand, MatRef, PackB, PackedA, SharedC};
use super::simd::{load, load8, transpose8, LANES, V, VD};

/// Output pixels per tile side (the m of F(m x m, 3x3)).
pub const TILE: usize = 4;
/// Input pixels per window side: `TILE + 3 - 1`.
pub const WINDOW: usize = 6;
/// Positions ξ of a transformed window, one GEMM each.
const POINTS: usize = WINDOW * WINDOW;

/// The input transform `Bᵀ` (rows: transformed positions; columns: window pixels).
pub const BT: [[f32; WINDOW]; WINDOW] = [
    [4.0, 0.0, -5.0, 0.0, 1.0, 0.0],
    [0.0, -4.0, -4.0, 1.0, 1.0, 0.0],
    [0.0, 4.0, -4.0, -1.0, 1.0, 0.0],
    [0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
    [0.0, 2.0, -1.0, -2.0, 1.0, 0.0],
    [0.0, 4.0, 0.0, -5.0, 0.0, 1.0],
];

/// The kernel transform `G` (applied once per layer, in f64: 1/6 and 1/12 are not floats).
pub const G: [[f64; 3]; WINDOW] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// The output transform `Aᵀ` (rows: tile pixels; columns: transformed positions).
pub const AT: [[f32; WINDOW]; TILE] = [
    [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
    [0.0, 1.0, -1.0, 2.0, -2.0, 0.0],
    [0.0, 1.0, 1.0, 4.0, 4.0, 0.0],
    [0.0, 1.0, -1.0, 8.0, -8.0, 1.0],
];

/// How much larger Winograd's rounding error may be than a direct dot product's, as a
/// multiple of the same `k·ε·Σ|terms|` bound, where the terms are those of the transformed
/// product: `Aᵀ [ Σ_ci |G||g||Gᵀ| ⊙ |Bᵀ||d||B| ] |A|` with absolute values throughout.
///
/// Each stage rounds once per addition: the input transform adds at most 4 terms each way
/// (8 roundings), the weight transform rounds once (it runs in f64), the GEMM adds `cin`
/// terms, the output transform at most 5 each way (10), the bias once. So the error is at
/// most `(cin + 20)·ε` times that absolute sum (Higham, "Accuracy and Stability of Numerical
/// Algorithms", §3.1, applied stage by stage as in Barabasz et al., "Error Analysis and
/// Improving the Accuracy of Winograd Convolution for Deep Neural Networks", 2020). The
/// absolute sum is itself larger than the direct convolution's `Σ|w||x|`: with all
/// magnitudes equal, from 28x (a tile's top-left output) to 256x (its bottom-right, where the
/// points ±2 weigh 8 in `Aᵀ`); 57-118x (median 80) on Gaussian windows and kernels. That, not
/// the extra roundings, is F(4x4)'s accuracy cost. In practice the errors stay far below the
/// bound: on VGG's layer shapes with random data the two routes differ by 1.6e-6 to 3.0e-6
/// relative (L2), and the golden gradients stay within 1.1e-6 of the float64 reference.
pub const ERROR_GROWTH: usize = 20;

/// Whether a layer takes the Winograd route: 3x3, stride 1, and enough channels each way that
/// the 36 products per batch are real matrix products (VGG's conv1_1, 3 -> 64, is not: its
/// products would be 3 deep).
pub fn pays(cin: usize, cout: usize, kh: usize, kw: usize, stride: usize) -> bool {
    (kh, kw, stride) == (3, 3, 1) && cin >= MIN_CHANNELS && cout >= MIN_CHANNELS
}

/// Fewest input and output channels for the Winograd route. With 16 each way (the half-width
/// network's 32 -> 16 upsampling layer) it measured 27% faster than direct convolution
/// forward and 6-24% on the input gradient, and `apply` 11-17% faster whole, once its
/// transforms stopped sharing an L1 set ([`SKEW`]; before that 16 -> 16 was a tie):
/// `benches/README.md`, "Winograd from 16 channels".
const MIN_CHANNELS: usize = 16;

/// What a convolution sees around its input, `(rows, columns)` deep on every side: zeros
/// (VGG's padding), or the image mirrored about its edges, the edge itself not repeated, as
/// `pad::reflection_pad2d` pads (the feed-forward network's padding). The windows read either
/// straight from the unpadded input ([`Windows::copy_band`]), so a reflection-padded layer
/// needs no padded copy of its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Border {
    Zeros(usize, usize),
    Reflect(usize, usize),
}

impl Border {
    /// `(rows, columns)`.
    pub fn depth(self) -> (usize, usize) {
        match self {
            Border::Zeros(rows, columns) | Border::Reflect(rows, columns) => (rows, columns),
        }
    }

    /// Panics unless the border suits a 3x3 kernel and an `h x w` image: smaller than the
    /// kernel, and a mirrored one smaller than the image (one reflection reaches every pixel).
    fn check(self, h: usize, w: usize) {
        let (rows, columns) = self.depth();
        assert!(rows < 3 && columns < 3, "padding must be smaller than the 3x3 kernel");
        if let Border::Reflect(..) = self {
            assert!(rows < h && columns < w, "a mirrored border of {rows}x{columns} needs a larger image than {h}x{w}");
        }
    }
}

/// The image a convolution's windows read, as a view of its input x `[cin, h, w]`: x, or x
/// upsampled 2x by nearest neighbour (`upsample::nearest2x`, the network's resize-convolutions),
/// within a [`Border`]. Both are read in place ([`Windows::copy_band`]), so neither an upsampled
/// nor a padded copy of x is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct View {
    pub upsample: bool,
    pub border: Border,
}

impl From<Border> for View {
    fn from(border: Border) -> Self {
        View { upsample: false, border }
    }
}

impl View {
    /// Pixels of the image per pixel of x, along each axis.
    fn scale(self) -> usize {
        if self.upsample {
            2
        } else {
            1
        }
    }

    /// The size of the image the windows read, border included, for an `h x w` input.
    fn padded(self, h: usize, w: usize) -> (usize, usize) {
        let ((rows, columns), s) = (self.border.depth(), self.scale());
        (s * h + 2 * rows, s * w + 2 * columns)
    }

    /// [`Border::check`] on the upsampled image.
    fn check(self, h: usize, w: usize) {
        self.border.check(self.scale() * h, self.scale() * w);
    }
}

/// A layer's 3x3 kernels, kept as they are and transformed into `U = G g Gᵀ` at every call.
///
/// Why not once: `U` is four times the kernels' size, for each of the two passes. Kept for
/// VGG19 up to relu5_1 that is about 400 MB, most of a 512² run's memory; transformed per call, one layer's `U` at a time lives in a buffer every
/// layer reuses (38 MB for a 512 -> 512 layer). A caller for whom time matters more, and
/// whose images are small enough that the transform weighs, keeps them transformed instead
/// ([`WinogradWeights::keep_transformed`], `conv::Transforms`).
#[derive(Clone, Debug)]
pub struct WinogradWeights {
    cin: usize,
    cout: usize,
    /// `[cout, cin, 3, 3]`, row-major.
    kernels: Vec<f32>,
    /// The passes whose transform is kept ([`WinogradWeights::keep_transformed`]), each as
    /// [`WinogradWeights::transform`] writes it.
    kept: Vec<(Pass, Vec<f32>)>,
}

/// Which convolution of a layer's kernels a call runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// `y = conv(x, W)`: `cin` channels in, `cout` out.
    Forward,
    /// `dx = conv(dy, W')` with `W'[ci, co] = W[co, ci]` rotated 180° (the backward pass to
    /// the input, see `kernels::conv`): `cout` channels in, `cin` out.
    InputGradient,
}

impl WinogradWeights {
    /// Keeps `weight` (`[cout, cin, 3, 3]`, row-major).
    pub fn new(weight: &[f32], cout: usize, cin: usize) -> Self {
        assert_eq!(weight.len(), cout * cin * 9, "3x3 conv weight is [cout, cin, 3, 3]");
        WinogradWeights { cin, cout, kernels: weight.to_vec(), kept: Vec::new() }
    }

    /// Transforms the kernels for `pass` once and keeps the result, so that calls of that pass
    /// transform nothing (`conv::Transforms::Kept`: faster, four times the kernels' memory).
    pub fn keep_transformed(&mut self, pass: Pass) {
        if self.kept.iter().all(|(p, _)| *p != pass) {
            let mut u = vec![0.0; WinogradWeights::transformed_bytes_for(self.cout, self.cin, pass) / 4];
            self.transform(pass, &mut u);
            self.kept.push((pass, u));
        }
    }

    /// Whether some pass's transform is kept.
    pub fn kept_any(&self) -> bool {
        !self.kept.is_empty()
    }

    /// Bytes held: the kernels as they are, and the transforms kept.
    pub fn bytes(&self) -> usize {
        std::mem::size_of_val(self.kernels.as_slice())
            + self.kept.iter().map(|(_, u)| std::mem::size_of_val(u.as_slice())).sum::<usize>()
    }

    /// [`WinogradWeights::bytes`] for a `cout x cin` layer, before keeping it.
    pub fn bytes_for(cout: usize, cin: usize) -> usize {
        cout * cin * 9 * std::mem::size_of::<f32>()
    }

    /// Bytes of the buffer a call of `pass` transforms the kernels into: 36 packed matrices.
    /// It is shared by every layer and sized by the largest (see `TRANSFORMED`).
    pub fn transformed_bytes_for(cout: usize, cin: usize, pass: Pass) -> usize {
        let (rows, cols) = match pass {
            Pass::Forward => (cout, cin),
            Pass::InputGradient => (cin, cout),
        };
        POINTS * PackedA::bytes_for(rows, cols)
    }

    /// `(channels in, channels out)` of `pass`.
    fn channels(&self, pass: Pass) -> (usize, usize) {
        match pass {
            Pass::Forward => (self.cin, self.cout),
            Pass::InputGradient => (self.cout, self.cin),
        }
    }

    /// Writes `U_ξ` for `pass` into `u` (`POINTS` packed `out x in` matrices back to back, see
    /// [`PackedA::index`]; [`WinogradWeights::transformed_bytes_for`] bytes), one task per
    /// micro-panel of MR output channels. Public for its benchmark.
    pub fn transform(&self, pass: Pass, u: &mut [f32]) {
        let (cols, rows) = self.channels(pass);
        let len = PackedA::len_for(rows, cols);
        assert_eq!(u.len(), POINTS * len, "transformed weights buffer");
        // One long row, of which each task writes only its own runs.
        let out = SharedC::new(u, POINTS * len);
        let flip = pass == Pass::InputGradient;
        (0..rows.div_ceil(MR)).into_par_iter().for_each(|panel| {
            let lanes = panel * MR..rows.min(panel * MR + MR);
            // COLUMNS columns at a time (never across a KC block, so that their MR-float runs are
            // consecutive in each matrix), gathered here and then stored as one run per ξ.
            let mut block = [[[0.0f32; MR]; COLUMNS]; POINTS];
            for k0 in (0..cols).step_by(COLUMNS) {
                let n = COLUMNS.min(cols - k0);
                for k in k0..k0 + n {
                    // Eight lanes per f64 transform (one VD); MR is 6 or 12.
                    for q in 0..LANE_GROUPS {
                        // Lane l is the kernel of row panel·MR + 8q + l, column k (zero past
                        // the last row). Each kernel's first eight taps are read as a row and
                        // transposed into one row per tap; the ninth is gathered.
                        let (mut rows8, mut tap8) = ([[0.0f32; 8]; 8], [0.0f32; 8]);
                        for (l, i) in lanes.clone().skip(8 * q).take(8).enumerate() {
                            let g = match pass {
                                Pass::Forward => self.kernel(i, k),
                                Pass::InputGradient => self.kernel(k, i),
                            };
                            rows8[l] = load8(g);
                            tap8[l] = g[8];
                        }
                        let by_tap = transpose8(rows8);
                        let taps: [VD; 9] = std::array::from_fn(|t| {
                            let t = if flip { 8 - t } else { t };
                            VD::new(if t == 8 { tap8 } else { by_tap[t] }.map(f64::from))
                        });
                        // Copies of sizes known at compile time: a variable width made each a
                        // `memcpy` call, a third of this function's time.
                        transform_kernels(taps, |xi, u| {
                            let run = &mut block[xi][k - k0][8 * q..];
                            if q + 1 < LANE_GROUPS {
                                run[..8].copy_from_slice(&u);
                            } else {
                                run.copy_from_slice(&u[..LAST_GROUP]);
                            }
                        });
                    }
                }
                let at = PackedA::index(rows, cols, panel * MR, k0);
                for (xi, b) in block.iter().enumerate() {
                    // SAFETY: rows panel·MR.. of columns k0..k0 + n (zeros past the last row) belong
                    // to this panel alone, in each of the POINTS matrices; they are n runs of MR
                    // floats, one after another (k0..k0 + n lie in one KC block).
                    let dst = unsafe { out.row(0, xi * len + at, n * MR) };
                    dst.copy_from_slice(b[..n].as_flattened());
                }
            }
        });
    }

    /// The kernel from input channel `ci` to output channel `co`.
    fn kernel(&self, co: usize, ci: usize) -> &[f32; 9] {
        self.kernels[(co * self.cin + ci) * 9..][..9].try_into().expect("9 taps")
    }
}

/// Columns of `U` a task of [`WinogradWeights::transform`] transforms before storing them
/// (36 runs of `COLUMNS·MR` floats, one per matrix: 14 KB at MR = 6, 27 KB at 12).
const COLUMNS: usize = 16;

/// Groups of eight lanes (one `f64x8` each) that cover a micro-panel's MR rows, and the lanes
/// of the last group that are rows.
const LANE_GROUPS: usize = MR.div_ceil(8);
const LAST_GROUP: usize = MR - 8 * (LANE_GROUPS - 1);

/// The buffer every call transforms its weights into, kept between calls and grown to the
/// largest layer: allocating it per call would fault in every page of it every time. A call
/// that finds it in use (two convolutions at once, from different threads) allocates its own.
static TRANSFORMED: Mutex<Vec<f32>> = Mutex::new(Vec::new());

/// Runs `f` on `U_ξ` of `pass`: kept, or transformed into [`TRANSFORMED`] (or, when that is
/// in use, a buffer of its own).
fn with_transformed<R>(w: &WinogradWeights, pass: Pass, f: impl FnOnce(&[PackedA<&[f32]>]) -> R) -> R {
    /// The POINTS packed `rows x cols` matrices `u` holds back to back.
    fn matrices(u: &[f32], rows: usize, cols: usize) -> Vec<PackedA<&[f32]>> {
        u.chunks_exact(PackedA::len_for(rows, cols)).map(|u| PackedA::from_packed(rows, cols, u)).collect()
    }
    let (cin, cout) = w.channels(pass);
    if let Some((_, u)) = w.kept.iter().find(|(p, _)| *p == pass) {
        return f(&matrices(u, cout, cin));
    }
    let mut own = Vec::new();
    let mut shared = TRANSFORMED.try_lock().ok();
    let buf = shared.as_deref_mut().unwrap_or(&mut own);
    let u = grow(buf, POINTS * PackedA::len_for(cout, cin));
    w.transform(pass, u);
    f(&matrices(u, cout, cin))
}

/// `G g Gᵀ` for eight 3x3 kernels at once (lane l of `taps[t]`: tap t = 3·row + column of
/// kernel l), in f64 and rounded once: hands `store` the 36 values of each lane, ξ by ξ
/// (ξ = 6·row + column), without building them into an array first (a returned array of
/// arrays was moved by `memcpy`).
#[inline(always)]
fn transform_kernels(taps: [VD; 9], mut store: impl FnMut(usize, [f32; 8])) {
    let c = |x: f64| VD::splat(x);
    // G g: 6 x 3.
    let gg: [[VD; 3]; WINDOW] = std::array::from_fn(|i| {
        std::array::from_fn(|j| c(G[i][0]) * taps[j] + c(G[i][1]) * taps[3 + j] + c(G[i][2]) * taps[6 + j])
    });
    for (i, gg) in gg.iter().enumerate() {
        for (j, g) in G.iter().enumerate() {
            let u = (gg[0] * c(g[0]) + gg[1] * c(g[1]) + gg[2] * c(g[2])).to_array();
            store(i * WINDOW + j, std::array::from_fn(|l| u[l] as f32));
        }
    }
}

/// What [`conv3x3`] does to each output pixel as it stores it: add the bias, apply the ReLU
/// (NaN becomes 0, as `elementwise::relu`), and write the ReLU's mask `(y > 0)`, one byte per
/// pixel, with the output's layout (only with the ReLU); or, with `accumulate`, add the pixel
/// into what the output holds (`y = y + conv`, no ReLU): a backward pass adding an input
/// gradient into the one already held, with no second buffer.
#[derive(Default)]
pub struct Epilogue<'a> {
    pub bias: Option<&'a [f32]>,
    pub relu: bool,
    pub mask: Option<&'a mut [u8]>,
    pub accumulate: bool,
}

/// `y [n, cout, ho, wo] = conv(x [n, cin, h, w], W) (+ bias) (then max(·, 0))` for a 3x3
/// stride-1 convolution of x as `view` shows it (upsampled or not, within a border at most 2
/// deep), `W` being the layer's kernels for `pass` (flipped for the input gradient, whose
/// `cin` is the layer's `cout`).
pub fn conv3x3(
    weights: &WinogradWeights,
    pass: Pass,
    view: View,
    x: &[f32],
    dims: (usize, usize, usize),
    y: &mut [f32],
    epilogue: Epilogue,
) {
    let (len, image) = (y.len(), y.len() / dims.0.max(1));
    let wo = view.padded(dims.1, dims.2).1.saturating_sub(2);
    let outs = y.chunks_mut(image.max(1)).map(|y| SharedC::new(y, wo)).collect();
    conv3x3_with(weights, pass, view, x, dims, (len, outs), epilogue, None);
}

/// [`conv3x3`] into uninitialised memory, which it only writes (so not `accumulate`): every
/// value of y is written.
pub fn conv3x3_uninit(
    weights: &WinogradWeights,
    pass: Pass,
    view: View,
    x: &[f32],
    dims: (usize, usize, usize),
    y: &mut [MaybeUninit<f32>],
    epilogue: Epilogue,
) {
    assert!(!epilogue.accumulate, "conv3x3_uninit only writes its output");
    let (len, image) = (y.len(), y.len() / dims.0.max(1));
    let wo = view.padded(dims.1, dims.2).1.saturating_sub(2);
    let outs = y.chunks_mut(image.max(1)).map(|y| SharedC::from_uninit(y, wo)).collect();
    conv3x3_with(weights, pass, view, x, dims, (len, outs), epilogue, None);
}

/// The convolution into `outs`, one output image each (`len` values in all), which are
/// initialised wherever they are read: everywhere when `epilogue.accumulate` (only
/// [`conv3x3`] accumulates, on initialised memory), else each value is written before the
/// mask reads it back. `split` is [`Split::for_layer`]'s unless given (by the tests, which
/// hold the two splits to the same bits).
#[allow(clippy::too_many_arguments)]
fn conv3x3_with(
    weights: &WinogradWeights,
    pass: Pass,
    view: View,
    x: &[f32],
    (n, h, w): (usize, usize, usize),
    (len, outs): (usize, Vec<SharedC<'_>>),
    epilogue: Epilogue,
    split: Option<Split>,
) {
    let Epilogue { bias, relu, mask, accumulate } = epilogue;
    assert!(!(relu && accumulate), "an accumulating convolution has no ReLU");
    let (cin, cout) = weights.channels(pass);
    view.check(h, w);
    let (hp, wp) = view.padded(h, w);
    assert!(hp >= 3 && wp >= 3, "kernel larger than the image");
    let (ho, wo) = (hp - 2, wp - 2);
    assert_eq!(x.len(), n * cin * h * w, "conv input is [n, cin, h, w]");
    assert_eq!(len, n * cout * ho * wo, "conv output is [n, cout, ho, wo]");
    if let Some(b) = bias {
        assert_eq!(b.len(), cout, "one bias per output channel");
    }
    if let Some(m) = &mask {
        assert!(relu && m.len() == len, "a mask needs the ReLU, one byte per output value");
    }
    let tiles = Tiles::new(ho, wo);
    let image = cout * ho * wo;
    let mut masks = mask.map(|m| m.chunks_exact_mut(image));
    let split = split.unwrap_or_else(|| Split::for_layer(cin, cout, tiles.count));
    with_transformed(weights, pass, |u| {
        for (x, out) in x.chunks_exact(cin * h * w).zip(&outs) {
            let windows = Windows { x, cin, h, w, view, tiles: &tiles };
            // The output (and its mask) as `cout·ho` rows of `wo`, written by every task, each
            // only its own tiles' pixels of its own channels.
            let mask = masks.as_mut().and_then(Iterator::next).map(|m| SharedC::new(m, wo));
            let store = || Store { relu, accumulate, out, mask: mask.as_ref() };
            match split {
                Split::Tiles(batch) => {
                    let starts: Vec<usize> = (0..tiles.count).step_by(batch).collect();
                    starts.par_iter().for_each(|&t0| {
                        SCRATCH.with_borrow_mut(|Scratch { v, m, b_buf, band }| {
                            let v = grow(v, POINTS * matrix_len(cin, batch));
                            windows.transform(t0, batch, band, v);
                            let m = products(u, v, batch, 0..cout, m, b_buf);
                            transform_output(m, 0..cout, batch, t0, &tiles, bias, store());
                        })
                    });
                }
                Split::Channels(rows) => {
                    let batch = tiles.count.div_ceil(NR) * NR;
                    // This thread's V, taken out of its scratch for the call, so that the tasks
                    // below (some of which may run on this thread) borrow nothing it holds.
                    let mut v = SCRATCH.with_borrow_mut(|s| std::mem::take(&mut s.v));
                    let shared = SharedC::new(grow(&mut v, POINTS * matrix_len(cin, batch)), batch);
                    let per = cin.div_ceil(2 * rayon::current_num_threads());
                    let firsts: Vec<usize> = (0..cin).step_by(per).collect();
                    firsts.par_iter().for_each(|&c0| {
                        let channels = c0..(c0 + per).min(cin);
                        SCRATCH
                            .with_borrow_mut(|s| windows.transform_channels(0, batch, channels, &mut s.band, &shared));
                    });
                    let all = &v[..POINTS * matrix_len(cin, batch)];
                    let firsts: Vec<usize> = (0..cout).step_by(rows).collect();
                    firsts.par_iter().for_each(|&c0| {
                        let channels = c0..(c0 + rows).min(cout);
                        SCRATCH.with_borrow_mut(|Scratch { m, b_buf, .. }| {
                            let m = products(u, all, batch, channels.clone(), m, b_buf);
                            transform_output(m, channels, batch, 0, &tiles, bias, store());
                        })
                    });
                    SCRATCH.with_borrow_mut(|s| s.v = v);
                }
            }
        }
    })
}

/// `M_ξ = U_ξ · V_ξ` for the output channels `channels` (the rows of `U_ξ`), all 36 on this
/// thread, from `v [ξ, cin + SKEW, batch]` into `m`, grown to `[ξ, channels + SKEW, batch]`
/// and returned (the [`SKEW`] rows neither read nor written).
fn products<'m>(
    u: &[PackedA<&[f32]>],
    v: &[f32],
    batch: usize,
    channels: Range<usize>,
    m: &'m mut Vec<f32>,
    b_buf: &mut Vec<f32>,
) -> &'m mut [f32] {
    let (cin, rows) = (u[0].cols(), channels.len());
    assert_eq!(v.len(), POINTS * matrix_len(cin, batch), "v is [ξ, cin + SKEW, batch]");
    let m = grow(m, POINTS * matrix_len(rows, batch));
    let from_memory = u.iter().map(PackedA::bytes).sum::<usize>() > U_IN_CACHE_BYTES;
    let vs = v.chunks_exact(matrix_len(cin, batch)).map(|v| InPlace::new(&v[..cin * batch], cin, batch));
    for ((u, v), m) in u.iter().zip(vs).zip(m.chunks_exact_mut(matrix_len(rows, batch))) {
        gemm_serial_rows(*u, channels.clone(), &v, &mut m[..rows * batch], b_buf, from_memory);
    }
    m
}

/// The largest transformed kernels `U` (all 36 `U_ξ`) whose products run without prefetching
/// them: half this machine's 32 MiB L3. Beyond it (VGG's conv4 and conv5 layers, 19 and 38
/// MB) each call reads `U` from memory, and the micro-kernel's prefetch of A took 13-37% off
/// those layers; within it (conv3_x, 9.4 MB, and every layer before) it gained nothing clear in
/// isolation and made conv1_2 and conv2_2 3-5% slower (`benches/README.md`, "Prefetching the
/// deepest layers' kernels").
const U_IN_CACHE_BYTES: usize = 16 << 20;

/// Spare rows after each of the 36 matrices of a batch's `V` (`[ξ, cin + SKEW, batch]`) and
/// `M` (`[ξ, channels + SKEW, batch]`), never read or written, so that the 36 do not lie a
/// multiple of 4 KiB apart.
///
/// Without them they lie `cin·batch` floats apart, a multiple of 4 KiB whenever `cin` is a
/// multiple of 32 (`batch` is one of NR, 128 bytes), as in every layer of VGG19 and of the
/// network. Then the input transform's 36 stores for one channel's group of tiles (one per ξ),
/// like the output transform's 36 loads, all fall in one set of the L1 cache, which the
/// address's bits 6-11 choose: 12 lines where 36 are wanted, so each store evicts a line just
/// written. One row of `batch` floats (128 B to 1 KiB here) spreads the 36 over 4 to 32 sets.
/// On the 256² training crop's layers (Zen 5, `benches/README.md`, "V and M skewed") it took
/// the forward pass of conv1_2 from 6.5-6.9 to 5.4-5.6 ms, conv2_2 from 4.4-4.8 to 3.5-3.6 and
/// conv3_x from 3.4-3.5 to 3.0, the same bits either way.
const SKEW: usize = 1;

/// Floats of one of the 36 matrices of a batch's `V` or `M` with `rows` rows: its [`SKEW`]
/// rows included, so that matrix ξ begins at `ξ·matrix_len(rows, batch)`.
fn matrix_len(rows: usize, batch: usize) -> usize {
    (rows + SKEW) * batch
}

/// How the work on one image is shared between parallel tasks.
#[derive(Clone, Copy, Debug)]
enum Split {
    /// Batches of this many tiles, one task each: the task transforms its windows, runs the
    /// 36 products and transforms them back.
    Tiles(usize),
    /// One batch of all the image's tiles, whose windows tasks transform a share of the input
    /// channels each; then tasks of this many output channels each run their rows of the 36
    /// products and transform them back. For images with too few tiles to give every thread
    /// two batches (VGG's deepest layers on a 256² training crop: 64 tiles at 32², 16 at
    /// 16²). There batches leave threads idle: conv5_1's 16 tiles are one batch, one task on
    /// one thread, which this split shares between all of them (5.5 -> 3.5 ms on 2 cores,
    /// `benches/README.md`, "Few tiles"). It also reads each row of `U_ξ` once where batches
    /// read all of it once a thread, which measured no faster at 32² (64 tiles, two batches).
    Channels(usize),
}

impl Split {
    fn for_layer(cin: usize, cout: usize, tiles: usize) -> Self {
        let threads = rayon::current_num_threads();
        let batch = batch_tiles(cin, cout, tiles);
        if tiles.div_ceil(batch) >= 2 * threads {
            Split::Tiles(batch)
        } else {
            Split::Channels(cout.div_ceil(2 * threads).div_ceil(MR) * MR)
        }
    }
}

/// `dW [cout, cin, 3, 3]` of a 3x3 stride-1 convolution with `pad = (rows, columns)` zeros on
/// every side, from its input `x [n, cin, h, w]` and output gradient `dy [n, cout, ho, wo]`:
/// the backward pass to the weights of a trainable layer, by the same transforms.
///
/// With `Y = Aᵀ [U ⊙ V] A` per tile and `U = G g Gᵀ`, the chain rule gives, per position ξ,
///
/// ```text
/// dU_ξ (cin x cout) = V_ξ (cin x tiles) · Ŷ_ξ (tiles x cout),   Ŷ = A dY Aᵀ,   dW = Gᵀ dU G
/// ```
///
/// where `Ŷ` takes each 4x4 tile of the output gradient to 6x6 (pixels past the output's
/// bottom and right edges count as zeros). So 36 products with all of an image's tiles as their
/// K: 2.25 multiply-adds per output pixel and channel pair, where the direct weight gradient
/// does 9. The windows are transformed as in the forward pass; `Gᵀ dU G` runs in f64, rounded
/// once. Every sum runs in a fixed order (K never split, the images added in order), so the
/// result does not depend on the thread count. Its rounding error is bounded as the forward
/// pass's ([`ERROR_GROWTH`]), with the images' tiles as the GEMM's depth.
pub fn weight_gradient(
    x: &[f32],
    (n, h, w): (usize, usize, usize),
    pad: (usize, usize),
    dy: &[f32],
    (cin, cout): (usize, usize),
    dw: &mut [f32],
) {
    let border = Border::Zeros(pad.0, pad.1);
    border.check(h, w);
    let (hp, wp) = (h + 2 * pad.0, w + 2 * pad.1);
    assert!(hp >= 3 && wp >= 3, "kernel larger than the image");
    let (ho, wo) = (hp - 2, wp - 2);
    assert_eq!(x.len(), n * cin * h * w, "conv input is [n, cin, h, w]");
    assert_eq!(dy.len(), n * cout * ho * wo, "conv output gradient is [n, cout, ho, wo]");
    assert_eq!(dw.len(), cout * cin * 9, "3x3 conv weight gradient is [cout, cin, 3, 3]");
    let tiles = Tiles::new(ho, wo);
    let count = tiles.count;
    let batch = batch_tiles(cin, cout, count);
    let starts: Vec<usize> = (0..count).step_by(batch).collect();
    // V [ξ, ci, tile] and Ŷ [ξ, tile, co] of one image; dU [ξ, ci, co] summed over the images.
    let (mut v, mut g) = (vec![0.0; POINTS * cin * count], vec![0.0; POINTS * count * cout]);
    let mut du = vec![0.0; POINTS * cin * cout];
    for (i, (x, dy)) in x.chunks_exact(cin * h * w).zip(dy.chunks_exact(cout * ho * wo)).enumerate() {
        let windows = Windows { x, cin, h, w, view: border.into(), tiles: &tiles };
        let (v_all, g_all) = (SharedC::new(&mut v, count), SharedC::new(&mut g, cout));
        starts.par_iter().for_each(|&t0| {
            let valid = batch.min(count - t0);
            SCRATCH.with_borrow_mut(|Scratch { v: vb, m: gb, band, .. }| {
                let vb = grow(vb, POINTS * matrix_len(cin, batch));
                windows.transform(t0, batch, band, vb);
                let rows =
                    vb.chunks_exact(matrix_len(cin, batch)).flat_map(|point| point.chunks_exact(batch).take(cin));
                for (row, src) in rows.enumerate() {
                    // SAFETY: columns t0..t0 + valid of every row of V are this batch's tiles,
                    // and each tile is in exactly one batch.
                    unsafe { v_all.row(row, t0, valid) }.copy_from_slice(&src[..valid]);
                }
                let gb = grow(gb, POINTS * batch * cout);
                transform_output_gradient(dy, cout, batch, t0, &tiles, gb);
                for xi in 0..POINTS {
                    for j in 0..valid {
                        // SAFETY: row ξ·count + t0 + j of Ŷ is tile t0 + j's, in this batch alone.
                        let dst = unsafe { g_all.row(xi * count + t0 + j, 0, cout) };
                        dst.copy_from_slice(&gb[(xi * batch + j) * cout..][..cout]);
                    }
                }
            })
        });
        for (xi, du) in du.chunks_exact_mut(cin * cout).enumerate() {
            let a = AOperand::View(MatRef::row_major(&v[xi * cin * count..][..cin * count], cin, count));
            let b = MatRef::row_major(&g[xi * count * cout..][..count * cout], count, cout);
            gemm(a, &b, du, super::gemm::Epilogue { accumulate: i > 0, ..Default::default() });
        }
    }
    dw.par_chunks_mut(cin * 9).enumerate().for_each(|(co, dw)| {
        for (ci, dw) in dw.chunks_exact_mut(9).enumerate() {
            let du: [f64; POINTS] = std::array::from_fn(|xi| du[(xi * cin + ci) * cout + co] as f64);
            for (tap, d) in dw.iter_mut().enumerate() {
                let (ky, kx) = (tap / 3, tap % 3);
                let sum: f64 = (0..POINTS).map(|xi| G[xi / WINDOW][ky] * G[xi % WINDOW][kx] * du[xi]).sum();
                *d = sum as f32;
            }
        }
    });
}

/// `Ŷ = A dY Aᵀ`, the adjoint of [`transform_output`]'s `Aᵀ M A`, for the tiles `t0..` of a
/// batch of the output gradient `dy [cout, ho, wo]` (one image), into `g [ξ, tile, cout]`,
/// `LANES` tiles at a time. Pixels past the output's edges count as zeros; rows of tiles past
/// the last are not written.
fn transform_output_gradient(dy: &[f32], cout: usize, batch: usize, t0: usize, tiles: &Tiles, g: &mut [f32]) {
    let valid = tiles.count.saturating_sub(t0).min(batch);
    let (ho, wo) = (tiles.ho, tiles.wo);
    for (co, plane) in dy.chunks_exact(ho * wo).enumerate() {
        for j in (0..valid).step_by(LANES) {
            let lanes = LANES.min(valid - j);
            let corner: [(usize, usize); LANES] = std::array::from_fn(|l| tiles.corner(t0 + j + l.min(lanes - 1)));
            let pixel = |l: usize, r: usize, c: usize| {
                let (oy, ox) = corner[l];
                if l < lanes && oy + r < ho && ox + c < wo {
                    plane[(oy + r) * wo + ox + c]
                } else {
                    0.0
                }
            };
            let d: [[V; TILE]; TILE] =
                std::array::from_fn(|r| std::array::from_fn(|c| V::new(std::array::from_fn(|l| pixel(l, r, c)))));
            // z = A d (6 x 4), one tile column at a time; then each row of z times Aᵀ.
            let mut z = [[V::ZERO; TILE]; WINDOW];
            for c in 0..TILE {
                for (zr, t) in z.iter_mut().zip(a(std::array::from_fn(|r| d[r][c]))) {
                    zr[c] = t;
                }
            }
            for (i, zr) in z.into_iter().enumerate() {
                for (k, t) in a(zr).into_iter().enumerate() {
                    let at = ((i * WINDOW + k) * batch + j) * cout + co;
                    for (l, value) in t.to_array().into_iter().take(lanes).enumerate() {
                        g[at + l * cout] = value;
                    }
                }
            }
        }
    }
}

/// `A d` for one column of an output-gradient tile (each lane a different tile): the adjoint
/// of [`at`], `A` being [`AT`] transposed.
#[inline(always)]
fn a(d: [V; TILE]) -> [V; WINDOW] {
    let (p02, p13) = (d[0] + d[2], d[1] + d[3]);
    let (e, o) = (d[0] + V::splat(4.0) * d[2], V::splat(2.0) * d[1] + V::splat(8.0) * d[3]);
    [d[0], p02 + p13, p02 - p13, e + o, e - o, d[3]]
}

/// Each thread's `V`, `M`, GEMM packing and window-row buffers, kept between calls:
/// allocating them per call (megabytes each) would cost a page fault per 4 KiB every time.
#[derive(Default)]
struct Scratch {
    v: Vec<f32>,
    m: Vec<f32>,
    b_buf: Vec<f32>,
    band: Vec<f32>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// The first `len` floats of `buf`, growing it if needed (contents unspecified: every use
/// overwrites what it reads).
fn grow(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    &mut buf[..len]
}

/// Floats of `V` and `M` per batch (2 MiB), so each task's working set stays in cache while the
/// 36 products run. Measured on the AVX-512 EPYC with the `conv` benchmark's Winograd forwards
/// at 512 px (`benches/README.md`): 1, 2 and 4 MiB within a few percent, 2 MiB the fastest for
/// conv1_2, conv2_2 and conv3_x; 8 MiB 14-24% slower on conv1_2 and conv2_2.
const BATCH_FLOATS: usize = 1 << 19;

/// Tiles per batch: a multiple of NR (every GEMM panel read in place), as many as fit in
/// [`BATCH_FLOATS`], but no more than gives each thread two batches.
fn batch_tiles(cin: usize, cout: usize, tiles: usize) -> usize {
    let by_cache = BATCH_FLOATS / (POINTS * (cin + cout));
    let by_threads = tiles.div_ceil(2 * rayon::current_num_threads());
    by_cache.min(by_threads).div_ceil(NR).max(1) * NR
}

/// The grid of 4x4 output tiles, numbered row by row.
struct Tiles {
    across: usize,
    count: usize,
    ho: usize,
    wo: usize,
}

impl Tiles {
    fn new(ho: usize, wo: usize) -> Self {
        let across = wo.div_ceil(TILE);
        Tiles { across, count: ho.div_ceil(TILE) * across, ho, wo }
    }

    /// Top-left output pixel of tile `t`.
    fn corner(&self, t: usize) -> (usize, usize) {
        (TILE * (t / self.across), TILE * (t % self.across))
    }
}

/// The 6x6 windows of the tiles, read from the input as its [`View`] shows it. Each batch copies
/// the rows its windows cover, one channel at a time, upsampled where the view is and with the
/// [`Border`] around them, into a small buffer (a few rows, some KB), so that every window,
/// wherever it lies (on the image's edge, or in a group of tiles that wraps onto the next row
/// of tiles), is read by the same branch-free loads; no upsampled or padded copy of the whole
/// input is made.
struct Windows<'a> {
    x: &'a [f32],
    cin: usize,
    h: usize,
    w: usize,
    view: View,
    tiles: &'a Tiles,
}

/// The padded-image rows and columns a batch's windows cover, as a buffer holds them.
struct Band {
    /// First padded row and column held.
    top: usize,
    left: usize,
    rows: usize,
    /// Floats per row: the columns held, and two past the last window for its last
    /// eight-float load ([`window_row`]).
    stride: usize,
}

impl Windows<'_> {
    /// `v [ξ, ci, batch] = Bᵀ d B` for the windows of tiles `t0..t0 + batch`, `LANES` tiles at
    /// a time (tiles past the last repeat it; their products are never stored), using `band`
    /// as the rows' buffer. `v` is `[ξ, cin + SKEW, batch]`: the [`SKEW`] rows after each ξ's
    /// are left as they are.
    fn transform(&self, t0: usize, batch: usize, band: &mut Vec<f32>, v: &mut [f32]) {
        self.transform_channels(t0, batch, 0..self.cin, band, &SharedC::new(v, batch));
    }

    /// [`Windows::transform`] for the input channels `channels` only: the rows
    /// `ξ·(cin + SKEW) + ci` of `v` for `ci` in `channels`, so that tasks with disjoint channels
    /// may fill one `v`.
    fn transform_channels(&self, t0: usize, batch: usize, channels: Range<usize>, band: &mut Vec<f32>, v: &SharedC) {
        let last = (t0 + batch).min(self.tiles.count) - 1;
        let (first, end) = (self.tiles.corner(t0), self.tiles.corner(last));
        // One row of tiles: only its columns; more: whole rows.
        let (left, right) = if first.0 == end.0 { (first.1, end.1) } else { (0, TILE * (self.tiles.across - 1)) };
        let b = Band { top: first.0, left, rows: end.0 + WINDOW - first.0, stride: right - left + 8 };
        // Each group of LANES tiles: where each window's top-left pixel lies in the band.
        let groups: Vec<[usize; LANES]> = (0..batch)
            .step_by(LANES)
            .map(|j| {
                std::array::from_fn(|l| {
                    let (py, px) = self.tiles.corner((t0 + j + l).min(last));
                    (py - b.top) * b.stride + px - b.left
                })
            })
            .collect();
        let band = grow(band, b.rows * b.stride);
        // Channel by channel, so each plane's rows are read front to back.
        for ci in channels {
            self.copy_band(&self.x[ci * self.h * self.w..][..self.h * self.w], &b, band);
            for (g, at) in groups.iter().enumerate() {
                let d: [[V; WINDOW]; WINDOW] = std::array::from_fn(|r| window_row(band, at, r * b.stride));
                // z = Bᵀ d, one window column c at a time; then each row of z times B.
                let mut z = [[V::ZERO; WINDOW]; WINDOW];
                for c in 0..WINDOW {
                    for (zr, t) in z.iter_mut().zip(bt(std::array::from_fn(|r| d[r][c]))) {
                        zr[c] = t;
                    }
                }
                for (i, zr) in z.into_iter().enumerate() {
                    for (k, t) in bt(zr).into_iter().enumerate() {
                        // SAFETY: row ξ·(cin + SKEW) + ci is channel ci's, and each channel is one
                        // task's.
                        let dst = unsafe { v.row((i * WINDOW + k) * (self.cin + SKEW) + ci, g * LANES, LANES) };
                        dst.copy_from_slice(&t.to_array());
                    }
                }
            }
        }
    }

    /// Copies the rows and columns of the image the windows read ([`View`]) that `b` covers, of
    /// one channel's `plane`, into `band`: the plane's pixels (each repeated 2x2 when
    /// upsampled), its [`Border`] (zeros, or pixels mirrored about the image's edges) and zeros
    /// past the border.
    fn copy_band(&self, plane: &[f32], b: &Band, band: &mut [f32]) {
        let border = self.view.border;
        let (pad, reflect) = (border.depth(), matches!(border, Border::Reflect(..)));
        let s = self.view.scale();
        let (h, w) = (s * self.h, s * self.w);
        // The band's columns that hold image pixels, and the image columns they hold.
        let first = pad.1.saturating_sub(b.left);
        let from = b.left.saturating_sub(pad.1);
        let n = w.saturating_sub(from).min(b.stride.saturating_sub(first));
        // Padded row or column `i` of an axis of `len` image pixels with a border `pad` deep:
        // the plane's index of the pixel there, or None where zeros lie (a zero border, or
        // past the border). `pad < len` ([`Border::check`]) keeps one reflection enough.
        let source = |i: usize, len: usize, pad: usize| -> Option<usize> {
            let i = i as isize - pad as isize;
            let i = if (0..len as isize).contains(&i) {
                i as usize
            } else if reflect && i < (len + pad) as isize {
                super::pad::reflect(i, len)
            } else {
                return None;
            };
            Some(i / s)
        };
        for (r, dst) in band.chunks_exact_mut(b.stride).enumerate() {
            let Some(iy) = source(b.top + r, h, pad.0) else {
                dst.fill(0.0);
                continue;
            };
            let row = &plane[iy * self.w..][..self.w];
            for (j, d) in dst[..first].iter_mut().enumerate() {
                *d = source(b.left + j, w, pad.1).map_or(0.0, |ix| row[ix]);
            }
            let inner = &mut dst[first..first + n];
            if s == 1 {
                inner.copy_from_slice(&row[from..][..n]);
            } else {
                upsample_row(&row[from / 2..], from % 2 == 1, inner);
            }
            for (j, d) in dst.iter_mut().enumerate().skip(first + n) {
                *d = source(b.left + j, w, pad.1).map_or(0.0, |ix| row[ix]);
            }
        }
    }
}

/// `dst` filled with the pixels of `src` each written twice, as a row of a nearest-neighbour
/// 2x upsampling, starting with the second copy of `src[0]` when `odd`: in pairs, so that the
/// loop compiles to vector loads and shuffles rather than one indexed load per value.
#[inline(always)]
fn upsample_row(src: &[f32], odd: bool, dst: &mut [f32]) {
    let (src, dst) = match (odd, dst) {
        (true, [d, rest @ ..]) => {
            *d = src[0];
            (&src[1..], rest)
        }
        (_, dst) => (src, dst),
    };
    let half = dst.len() / 2;
    let mut pairs = dst.chunks_exact_mut(2);
    for (pair, &v) in (&mut pairs).zip(src) {
        pair.fill(v);
    }
    if let [last] = pairs.into_remainder() {
        *last = src[half];
    }
}

/// Row `r` (at `band[shift..]`, `shift = r·stride`) of the windows of LANES tiles, columns
/// 0..6, lane l's window starting at `band[at[l]]`. A gather, done eight tiles at a time as
/// an 8x8 transpose of eight eight-float loads (row q is lane q's window row and two floats
/// past it, so column c of the transpose is pixel c of each lane's row): 16 loads and 48
/// shuffles per 16 tiles where element-wise gathering takes 96 loads and 96 inserts.
#[inline(always)]
fn window_row(band: &[f32], at: &[usize; LANES], shift: usize) -> [V; WINDOW] {
    let mut columns = [[0.0f32; LANES]; WINDOW];
    for group in 0..LANES / 8 {
        let rows = std::array::from_fn(|q| load8(&band[at[8 * group + q] + shift..]));
        let t = transpose8(rows);
        for (column, t) in columns.iter_mut().zip(t) {
            column[8 * group..8 * group + 8].copy_from_slice(&t);
        }
    }
    columns.map(V::new)
}

/// The inverse for one row of output tiles: `row[c]` holds pixel c of each tile (one tile per
/// lane); returns them in image order, tile l's row at `out[4·l..4·l + 4]` (`out[4·l + c] =
/// row[c][l]`), by the same transpose as [`window_row`] (rows 4..8 unused).
#[inline(always)]
fn interleave_tiles(row: &[[f32; LANES]; TILE]) -> [f32; TILE * LANES] {
    let mut out = [0.0; TILE * LANES];
    for group in 0..LANES / 8 {
        let rows = std::array::from_fn(|c| if c < TILE { load8(&row[c][8 * group..]) } else { [0.0; 8] });
        for (q, t) in transpose8(rows).iter().enumerate() {
            out[TILE * (8 * group + q)..][..TILE].copy_from_slice(&t[..TILE]);
        }
    }
    out
}

/// `Bᵀ d` for one column of a window (each lane a different tile).
///
/// Written so that a constant column gives exact zeros in every row but the second (each row
/// as sums of differences): then a flat window transforms to a single nonzero, every output
/// of its tile comes out bit-identical, and flat image regions stay exactly flat as under
/// direct convolution. That keeps max-pooling's ties (first wins) where the reference has
/// them, so saturated skies route their gradients as PyTorch does.
#[inline(always)]
fn bt(d: [V; WINDOW]) -> [V; WINDOW] {
    let (two, four) = (V::splat(2.0), V::splat(4.0));
    let (d4m2, d3m1) = (d[4] - d[2], d[3] - d[1]);
    [
        four * (d[0] - d[2]) + d4m2,
        (d[3] + d[4]) - four * (d[1] + d[2]),
        (d[4] - d[3]) + four * (d[1] - d[2]),
        d4m2 + two * d3m1,
        d4m2 - two * d3m1,
        (d[5] - d[3]) - four * d3m1,
    ]
}

/// `Aᵀ m` for one column of a transformed tile.
#[inline(always)]
fn at(m: [V; WINDOW]) -> [V; TILE] {
    let (p12, m12, p34, m34) = (m[1] + m[2], m[1] - m[2], m[3] + m[4], m[3] - m[4]);
    [m[0] + p12 + p34, m12 + V::splat(2.0) * m34, p12 + V::splat(4.0) * p34, m12 + V::splat(8.0) * m34 + m[5]]
}

/// How [`transform_output`] stores a pixel: ReLU'd, or added into the output; and where.
struct Store<'a> {
    relu: bool,
    accumulate: bool,
    out: &'a SharedC<'a>,
    mask: Option<&'a SharedC<'a, u8>>,
}

/// `y = Aᵀ M A (+ bias) (then max(·, 0))`, or `y += Aᵀ M A`, for the output channels
/// `channels` and the tiles `t0..` of a batch (`m [ξ, channels + SKEW, batch]`), each stored
/// where it lies in the output, clipped at its bottom and right edges.
#[inline(never)]
fn transform_output(
    m: &[f32],
    channels: Range<usize>,
    batch: usize,
    t0: usize,
    tiles: &Tiles,
    bias: Option<&[f32]>,
    Store { relu, accumulate, out, mask }: Store,
) {
    let valid = tiles.count.saturating_sub(t0).min(batch);
    let rows = channels.len();
    for (row, co) in channels.enumerate() {
        let b = V::splat(bias.map_or(0.0, |b| b[co]));
        for j in (0..valid).step_by(LANES) {
            let mv: [V; POINTS] = std::array::from_fn(|xi| load(&m[xi * matrix_len(rows, batch) + row * batch + j..]));
            // s = Aᵀ M (4 x 6), one column at a time; then each row of s times A.
            let mut s = [[V::ZERO; WINDOW]; TILE];
            for c in 0..WINDOW {
                for (sr, t) in s.iter_mut().zip(at(std::array::from_fn(|r| mv[r * WINDOW + c]))) {
                    sr[c] = t;
                }
            }
            let pixels: [[[f32; LANES]; TILE]; TILE] = s.map(|sr| at(sr).map(|v| (v + b).to_array()));
            let relu = |v: f32| if relu && (v.is_nan() || v <= 0.0) { 0.0 } else { v };
            let (oy, ox) = tiles.corner(t0 + j);
            if j + LANES <= valid && ox + TILE * LANES <= tiles.wo && oy + TILE <= tiles.ho {
                // LANES whole tiles side by side: each output row is one run of 4·LANES floats.
                for (r, row) in pixels.iter().enumerate() {
                    let run = interleave_tiles(row).map(relu);
                    let (i, len) = (co * tiles.ho + oy + r, TILE * LANES);
                    if accumulate {
                        // SAFETY: these pixels belong to tiles t0 + j.. t0 + j + LANES alone, and
                        // each tile is in exactly one batch, so no other task writes them (nor
                        // their mask); accumulating, the output is initialised (`conv3x3_with`).
                        let dst = unsafe { out.row(i, ox, len) };
                        dst.iter_mut().zip(&run).for_each(|(d, v)| *d += v);
                    } else {
                        // SAFETY: as above; the range is only written.
                        unsafe { out.row_uninit(i, ox, len) }.write_copy_of_slice(&run);
                    }
                    if let Some(mask) = mask {
                        // SAFETY: as above.
                        positive_mask_into(&run, unsafe { mask.row(co * tiles.ho + oy + r, ox, TILE * LANES) });
                    }
                }
                continue;
            }
            // Otherwise tile by tile (the group wraps onto the next row of tiles, or reaches past
            // the output's edges): each tile's rows, clipped.
            let rows = pixels.each_ref().map(interleave_tiles);
            for l in 0..LANES.min(valid - j) {
                let (oy, ox) = tiles.corner(t0 + j + l);
                let cols = TILE.min(tiles.wo - ox);
                for (r, row) in rows.iter().enumerate().take(TILE.min(tiles.ho - oy)) {
                    // SAFETY: these pixels belong to tile t0 + j + l alone, and each tile is in
                    // exactly one batch, so no other task writes them. The range is initialised
                    // when accumulating (see `conv3x3_with`), and written before it is read
                    // otherwise.
                    let dst = unsafe {
                        if !accumulate {
                            for (d, &v) in
                                out.row_uninit(co * tiles.ho + oy + r, ox, cols).iter_mut().zip(&row[TILE * l..])
                            {
                                d.write(relu(v));
                            }
                        }
                        out.row(co * tiles.ho + oy + r, ox, cols)
                    };
                    if accumulate {
                        for (d, &v) in dst.iter_mut().zip(&row[TILE * l..][..cols]) {
                            *d += v;
                        }
                    }
                    if let Some(mask) = mask {
                        // SAFETY: as above.
                        positive_mask_into(dst, unsafe { mask.row(co * tiles.ho + oy + r, ox, cols) });
                    }
                }
            }
        }
    }
}

/// `V_ξ` (`cin x batch`, row-major) as a GEMM B operand whose panels the micro-kernel reads in
/// place: with `batch` a multiple of NR (the invariant [`InPlace::new`] checks) every panel is
/// NR consecutive floats of each row, so nothing is ever packed.
struct InPlace<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
}

impl<'a> InPlace<'a> {
    fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert!(cols.is_multiple_of(NR) && data.len() == rows * cols, "V_ξ is cin x (a multiple of NR)");
        InPlace { data, rows, cols }
    }
}

impl PackB for InPlace<'_> {
    fn rows(&self) -> usize {
        self.rows
    }

    fn cols(&self) -> usize {
        self.cols
    }

    fn pack(&self, _k0: usize, _kc: usize, _n0: usize, _nc: usize, _out: &mut [f32]) {
        // Every panel is read in place (see `panel_in_place`): nothing to pack.
    }

    fn rows_in_place(&self, k0: usize, kc: usize, offsets: &mut [usize]) -> Option<&[f32]> {
        for (k, o) in offsets[..kc].iter_mut().enumerate() {
            *o = (k0 + k) * self.cols;
        }
        Some(self.data)
    }

    fn panel_in_place(&self, j: usize) -> Option<usize> {
        (j + NR <= self.cols).then_some(j)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both ways of sharing an image's work give the same bits (each output value is the same
    /// sums in the same order, whoever computes it): ragged channel counts against MR and the
    /// tasks' shares, images whose tiles are ragged against NR, several images, the bias, the
    /// ReLU with its mask, and accumulation into what the output holds.
    #[test]
    fn splitting_by_output_channels_gives_the_same_bits_as_by_tiles() {
        let mut rng = crate::Rng::new(5);
        for (n, cin, cout, h, w) in [(1, 33, 40, 13, 22), (2, 40, 29, 9, 9), (1, 17, 64, 30, 7)] {
            let (x, k, bias) = (rng.vec(n * cin * h * w), rng.vec(cout * cin * 9), rng.vec(cout));
            let weights = WinogradWeights::new(&k, cout, cin);
            let start = rng.vec(n * cout * h * w);
            let run = |split: Split, relu: bool, accumulate: bool| {
                let (mut y, mut mask) = (start.clone(), vec![7u8; n * cout * h * w]);
                let (len, image) = (y.len(), cout * h * w);
                let outs = y.chunks_mut(image).map(|y| SharedC::new(y, w)).collect();
                let epilogue = Epilogue { bias: Some(&bias), relu, mask: relu.then_some(&mut mask[..]), accumulate };
                conv3x3_with(
                    &weights,
                    Pass::Forward,
                    Border::Zeros(1, 1).into(),
                    &x,
                    (n, h, w),
                    (len, outs),
                    epilogue,
                    Some(split),
                );
                (y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), mask)
            };
            let tiles = Tiles::new(h, w).count;
            for (relu, accumulate) in [(false, false), (true, false), (false, true)] {
                let by_tiles = run(Split::Tiles(batch_tiles(cin, cout, tiles)), relu, accumulate);
                assert_ne!(by_tiles.0, start.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
                for rows in [MR, 2 * MR, cout.div_ceil(MR) * MR] {
                    let by_channels = run(Split::Channels(rows), relu, accumulate);
                    assert!(by_channels == by_tiles, "{n}x{cin}->{cout} at {h}x{w}, {rows} rows, relu {relu}");
                }
            }
        }
    }
}
