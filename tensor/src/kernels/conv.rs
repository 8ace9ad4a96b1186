//! 2-D convolution (any stride, zero padding) as GEMM with im2col fused into the packing of B.
//!
//! Forward: `Y (cout x P) = W (cout x cin·kh·kw) · col(X) (cin·kh·kw x P) + b`, where P is the
//! number of output pixels and `col(X)` the im2col matrix (Chellapilla et al., "High
//! Performance Convolutional Neural Networks for Document Processing", 2006). `col(X)` is
//! never built (600 MB saved for conv1_2 at 512x512): the image is zero-padded once, and then
//! [`Im2col`] lets the micro-kernel read most panels of `col(X)` straight from it, packing only
//! the few that wrap from one image row to the next.
//!
//! Stride s > 1: the padded image is split once into its s² stride phases (the polyphase
//! decomposition, or "space-to-depth"): phase `(py, px)` is the plane `x[s·i + py, s·j + px]`.
//! Output pixel `(oy, ox)` reads `x[s·oy + ky, s·ox + kx]`, which is pixel
//! `(oy + ky/s, ox + kx/s)` of phase `(ky mod s, kx mod s)`: so every row of `col(X)` is again
//! one plane shifted, consecutive output pixels are consecutive floats, and the same in-place
//! reading works. For s = 1 the only phase is the padded image itself.
//!
//! Backward to the input: for stride 1, `dX = conv(dY, W')` with padding `k - 1 - p`, where
//! `W'[ci, co, ky, kx] = W[co, ci, kh-1-ky, kw-1-kx]` (in/out swapped, rotated 180°). So the
//! backward pass reuses the forward kernel with a second weight matrix packed once.
//!
//! For layers with few input channels (VGG's conv1_1: 3 in, 64 out) that gathers a tall
//! im2col of dY (576 rows) to produce only 3 rows of output. There the cheaper route is
//! `dX = col2im(Wᵀ · dY)`: a GEMM whose B is dY itself (64 rows), then a scatter-add of the
//! 27 patch rows back into the image. It is also the route for every stride s > 1, where the
//! transposed convolution is no longer a convolution of dY (it would be one of dY dilated with
//! s - 1 zeros between pixels, s² times the arithmetic, three quarters of it on zeros for s = 2).
//!
//! Backward to the weights: `dW = Σ_images dY · col(X)ᵀ` (`cout x P` by `P x cin·kh·kw`), one
//! parallel GEMM per image, each accumulating into dW, with [`Im2colT`] packing the panels of
//! `col(X)ᵀ` straight from the padded image as [`Im2col`] does for the forward. Stride-1 layers
//! with at most 32 outputs instead slide dY's rows over x's
//! ([`sliding_gradient`](super::sliding_gradient)): no gather, whose every float would feed only
//! cout multiply-adds, and no micro-kernel tile left a quarter full by the network's thin layers.
//!
//! 3x3 stride-1 layers with enough channels run all three passes by Winograd F(4x4, 3x3)
//! instead ([`winograd`], four times fewer multiplications), chosen per pass by
//! [`ConvAlgorithms::for_geometry`]; everything here is the direct route, for every other
//! layer.

use std::borrow::Cow;
use std::mem::MaybeUninit;

use super::elementwise;
use super::few_outputs;
use super::gemm::params::{KC, NR};
use super::gemm::{gemm, gemm_uninit, AOperand, Epilogue, MatRef, PackB, PackedA};
use super::pad;
use super::simd::{load8, transpose8};
use super::sliding_gradient;
use super::winograd::{self, Pass, WinogradWeights};
use rayon::prelude::*;

/// Shape of a convolution: channels, kernel size, zero padding and stride.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    pub cin: usize,
    pub cout: usize,
    pub kh: usize,
    pub kw: usize,
    pub pad_h: usize,
    pub pad_w: usize,
    /// The same in both directions; 1 for every VGG layer, 2 for the down-sampling layers of
    /// Johnson et al.'s feed-forward network.
    pub stride: usize,
}

impl ConvGeometry {
    /// The usual VGG layer: 3x3 kernel, padding 1, stride 1, so the output has the input's size.
    pub fn same3x3(cin: usize, cout: usize) -> Self {
        ConvGeometry { cin, cout, kh: 3, kw: 3, pad_h: 1, pad_w: 1, stride: 1 }
    }

    /// Rows of the im2col matrix: one per (input channel, kernel row, kernel column).
    pub fn patch_len(&self) -> usize {
        self.cin * self.kh * self.kw
    }

    /// Output height and width for an `h x w` input, `((h + 2p - k) / s + 1` each way), or
    /// `None` when the kernel does not fit (or the stride is 0).
    pub fn output_size(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let (hp, wp, s) = (h + 2 * self.pad_h, w + 2 * self.pad_w, self.stride);
        (s > 0 && hp >= self.kh && wp >= self.kw).then(|| ((hp - self.kh) / s + 1, (wp - self.kw) / s + 1))
    }

    /// The geometry of the backward-to-input convolution of a stride-1 layer (channels
    /// swapped, padding k-1-p).
    fn transposed(&self) -> Self {
        assert_eq!(self.stride, 1, "only a stride-1 convolution has a convolution as its transpose");
        ConvGeometry {
            cin: self.cout,
            cout: self.cin,
            kh: self.kh,
            kw: self.kw,
            pad_h: self.kh - 1 - self.pad_h,
            pad_w: self.kw - 1 - self.pad_w,
            stride: 1,
        }
    }

    /// Whether the backward to the input goes through `col2im(Wᵀ · dY)`: always for stride
    /// s > 1 (see the module docs); for stride 1 when it packs fewer rows of B than the
    /// flipped convolution, which gathers `cout·kh·kw` rows, where col2im packs `cout` rows of
    /// dY and then writes and reads `cin·kh·kw` rows of dcol.
    fn backward_by_col2im(&self) -> bool {
        self.stride > 1 || self.cout + 2 * self.patch_len() < self.cout * self.kh * self.kw
    }
}

/// The algorithm a pass of a convolution runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvAlgorithm {
    /// Implicit GEMM over im2col (any geometry).
    Direct,
    /// Winograd F(4x4, 3x3) ([`winograd`]): 3x3 stride-1 layers only.
    Winograd,
}

/// The algorithms of a layer's forward, backward-to-input and backward-to-weights passes, and
/// where its Winograd passes get their transformed weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvAlgorithms {
    pub forward: ConvAlgorithm,
    pub input_gradient: ConvAlgorithm,
    /// Only trainable layers run it; it reads no weights, so it keeps nothing either way.
    pub weight_gradient: ConvAlgorithm,
    pub transforms: Transforms,
}

/// Whether a layer's Winograd passes transform its weights at each call or once.
///
/// The trade is memory for time. Transformed, a pass's weights are four times the kernels'
/// size (for VGG19 up to relu5_1, about 200 MB a pass); transforming them takes 5-6 ms for a
/// 512 -> 512 layer, about 14% of conv4_x's forward and a third of conv5_1's at 512², which
/// costs a whole 512² Gatys step 3-7% but a training step 7-35% (on 256² crops conv5_1 sees
/// 16x16 pixels). Measured in `benches/README.md`, "Winograd weights per call".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Transforms {
    /// Keep the kernels once and transform them at each call, into a buffer every layer
    /// shares (`stylize run`: least memory).
    #[default]
    PerCall,
    /// Transform once and keep the result for each Winograd pass (`stylize train`: fastest).
    Kept,
}

impl ConvAlgorithms {
    /// Every pass by `a`, transforming per call.
    pub fn both(a: ConvAlgorithm) -> Self {
        ConvAlgorithms { forward: a, input_gradient: a, weight_gradient: a, transforms: Transforms::PerCall }
    }

    /// The faster algorithm for each pass of `g`: Winograd for the forward and input-gradient
    /// passes where [`winograd::pays`], else direct; the weight gradient always direct, since
    /// [`winograd::weight_gradient`] measured 1.5-2.1x slower than the direct route at every
    /// shape of the feed-forward network and at larger ones (`benches/README.md`, "The Winograd weight gradient").
    /// (A caller may keep a pass direct for another reason: VGG keeps conv1_2's forward
    /// direct, see `vgg::model::conv_algorithms`.)
    pub fn for_geometry(g: ConvGeometry) -> Self {
        let pays = winograd::pays(g.cin, g.cout, g.kh, g.kw, g.stride);
        let a = ConvAlgorithms::both(if pays { ConvAlgorithm::Winograd } else { ConvAlgorithm::Direct });
        ConvAlgorithms { weight_gradient: ConvAlgorithm::Direct, ..a }
    }

    /// These algorithms with the transforms kept (see [`Transforms::Kept`]).
    pub fn kept(self) -> Self {
        ConvAlgorithms { transforms: Transforms::Kept, ..self }
    }

    /// The passes that run by Winograd and read transformed weights (not the weight gradient).
    fn winograd_passes(self) -> impl Iterator<Item = Pass> {
        [(self.forward, Pass::Forward), (self.input_gradient, Pass::InputGradient)]
            .into_iter()
            .filter_map(|(a, pass)| (a == ConvAlgorithm::Winograd).then_some(pass))
    }
}

/// Convolution weights packed once for the forward and the backward-to-input passes, each in
/// the form its algorithm reads (Winograd's passes share the kernels as they are, and
/// transform them at each call: see [`WinogradWeights`]).
///
/// Invariant: `bias.len() == cout`; `winograd` is `Some` when a pass is Winograd.
#[derive(Clone, Debug)]
pub struct PackedConv {
    pub geometry: ConvGeometry,
    forward: Forward,
    input_gradient: InputGradient,
    weight_gradient: ConvAlgorithm,
    winograd: Option<WinogradWeights>,
    bias: Vec<f32>,
}

#[derive(Clone, Debug)]
enum Forward {
    /// `W` as a `cout x cin·kh·kw` matrix in [`PackedA`] layout.
    Direct(PackedA),
    /// Winograd, over `winograd` ([`Pass::Forward`]).
    Winograd,
    /// Few output channels: sliding windows over the image, `W` tap-major
    /// (`kernels::few_outputs`).
    FewOutputs(few_outputs::TapMajor),
}

/// The weights of the backward-to-input pass, in the form its route reads.
#[derive(Clone, Debug)]
enum InputGradient {
    /// `W'` (see the module docs) as a `cin x cout·kh·kw` matrix: `dX = conv(dY, W')`.
    Flipped(PackedA),
    /// `Wᵀ` (`cin·kh·kw x cout`): `dX = col2im(Wᵀ · dY)`.
    Col2im(PackedA),
    /// `dX = conv(dY, W')` by Winograd, over `winograd` ([`Pass::InputGradient`]).
    Winograd,
}

impl PackedConv {
    /// Packs `weight` (`[cout, cin, kh, kw]`, row-major) for the faster algorithms
    /// ([`ConvAlgorithms::for_geometry`]) and keeps `bias` (`[cout]`).
    pub fn new(weight: &[f32], bias: &[f32], g: ConvGeometry) -> Self {
        PackedConv::with_algorithms(weight, bias, g, ConvAlgorithms::for_geometry(g))
    }

    /// [`PackedConv::new`] with the algorithms chosen by the caller (benchmarks and tests
    /// compare them). Panics if one is Winograd and `g` is not 3x3 stride 1.
    pub fn with_algorithms(weight: &[f32], bias: &[f32], g: ConvGeometry, algorithms: ConvAlgorithms) -> Self {
        assert_eq!(weight.len(), g.cout * g.patch_len(), "conv weight shape");
        assert_eq!(bias.len(), g.cout, "conv bias shape");
        assert!(g.pad_h < g.kh && g.pad_w < g.kw, "padding must be smaller than the kernel");
        assert!(g.stride > 0, "stride must be at least 1");
        let ConvAlgorithms { forward, input_gradient, weight_gradient, .. } = algorithms;
        if [forward, input_gradient, weight_gradient].contains(&ConvAlgorithm::Winograd) {
            assert!((g.kh, g.kw, g.stride) == (3, 3, 1), "Winograd F(4x4, 3x3) needs a 3x3 stride-1 layer");
        }
        let w = MatRef::row_major(weight, g.cout, g.patch_len());
        let forward = match algorithms.forward {
            ConvAlgorithm::Direct if few_outputs::takes(g) => {
                Forward::FewOutputs(few_outputs::TapMajor::new(weight, g.cout, g.cin, g.kh, g.kw))
            }
            ConvAlgorithm::Direct => Forward::Direct(PackedA::new(w)),
            ConvAlgorithm::Winograd => Forward::Winograd,
        };
        let input_gradient = match algorithms.input_gradient {
            ConvAlgorithm::Winograd => InputGradient::Winograd,
            ConvAlgorithm::Direct if g.backward_by_col2im() => InputGradient::Col2im(PackedA::new(w.t())),
            ConvAlgorithm::Direct => {
                let flipped = flipped(weight, g);
                InputGradient::Flipped(PackedA::new(MatRef::row_major(&flipped, g.cin, g.cout * g.kh * g.kw)))
            }
        };
        let winograd = algorithms.winograd_passes().next().map(|_| {
            let mut u = WinogradWeights::new(weight, g.cout, g.cin);
            if algorithms.transforms == Transforms::Kept {
                algorithms.winograd_passes().for_each(|pass| u.keep_transformed(pass));
            }
            u
        });
        PackedConv { geometry: g, forward, input_gradient, weight_gradient, winograd, bias: bias.to_vec() }
    }

    /// Bytes of weights held (packed, or kept for Winograd, and the bias).
    pub fn bytes(&self) -> usize {
        let forward = match &self.forward {
            Forward::Direct(a) => a.bytes(),
            Forward::FewOutputs(t) => t.bytes(),
            Forward::Winograd => 0,
        };
        let input_gradient = match &self.input_gradient {
            InputGradient::Flipped(a) | InputGradient::Col2im(a) => a.bytes(),
            InputGradient::Winograd => 0,
        };
        let winograd = self.winograd.as_ref().map_or(0, WinogradWeights::bytes);
        forward + input_gradient + winograd + 4 * self.bias.len()
    }

    /// [`PackedConv::bytes`] of a layer of geometry `g` packed for `a`, before packing it: for
    /// memory estimates made ahead of loading any weights.
    pub fn bytes_for(g: ConvGeometry, a: ConvAlgorithms) -> usize {
        let forward = match a.forward {
            ConvAlgorithm::Direct if few_outputs::takes(g) => 4 * g.cout * g.patch_len(),
            ConvAlgorithm::Direct => PackedA::bytes_for(g.cout, g.patch_len()),
            ConvAlgorithm::Winograd => 0,
        };
        let input_gradient = match a.input_gradient {
            ConvAlgorithm::Winograd => 0,
            ConvAlgorithm::Direct if g.backward_by_col2im() => PackedA::bytes_for(g.patch_len(), g.cout),
            ConvAlgorithm::Direct => PackedA::bytes_for(g.cin, g.cout * g.kh * g.kw),
        };
        let kernels = if a.winograd_passes().next().is_some() { WinogradWeights::bytes_for(g.cout, g.cin) } else { 0 };
        let kept = match a.transforms {
            Transforms::Kept => {
                a.winograd_passes().map(|pass| WinogradWeights::transformed_bytes_for(g.cout, g.cin, pass)).sum()
            }
            Transforms::PerCall => 0,
        };
        forward + input_gradient + kernels + kept + 4 * g.cout
    }

    /// Bytes of the buffer Winograd's passes of a layer of geometry `g` transform its weights
    /// into at each call (0 for a layer with no Winograd pass, or whose transforms are kept).
    /// One buffer serves every layer, so a model needs the largest of these, once.
    pub fn transformed_bytes_for(g: ConvGeometry, a: ConvAlgorithms) -> usize {
        match a.transforms {
            Transforms::PerCall => {
                a.winograd_passes().map(|pass| WinogradWeights::transformed_bytes_for(g.cout, g.cin, pass)).max()
            }
            Transforms::Kept => None,
        }
        .unwrap_or(0)
    }

    /// The algorithms this layer's passes run.
    pub fn algorithms(&self) -> ConvAlgorithms {
        let by = |winograd: bool| if winograd { ConvAlgorithm::Winograd } else { ConvAlgorithm::Direct };
        ConvAlgorithms {
            forward: by(matches!(self.forward, Forward::Winograd)),
            input_gradient: by(matches!(self.input_gradient, InputGradient::Winograd)),
            weight_gradient: self.weight_gradient,
            transforms: match &self.winograd {
                Some(u) if u.kept_any() => Transforms::Kept,
                _ => Transforms::PerCall,
            },
        }
    }
}

/// `W'[ci, co, ky, kx] = W[co, ci, kh-1-ky, kw-1-kx]`: in/out swapped, rotated 180°.
fn flipped(weight: &[f32], g: ConvGeometry) -> Vec<f32> {
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
    flipped
}

/// `y [n, cout, ho, wo] = conv(x [n, cin, h, w], W) + b`.
pub fn conv_forward(p: &PackedConv, x: &[f32], n: usize, h: usize, w: usize, y: &mut [f32]) {
    // SAFETY: `forward` writes only computed values into y.
    forward(p, x, n, h, w, InputView::default(), unsafe { super::as_write_only(y) }, false, None);
}

/// What a layer convolves, as a view of its input x `[n, cin, h, w]`: x, or x upsampled 2x by
/// nearest neighbour when `upsample` (`upsample::nearest2x`, the resize half of the network's
/// resize-convolutions), then mirrored by `reflect` pixels on every side when `reflect > 0`
/// (`pad::reflection_pad2d`, in place of the layer's own zero padding). The Winograd route
/// reads both where it reads its windows (`winograd::View`), with no copy of x; the other
/// routes convolve the image written out ([`InputView::materialise`]). Either way the bits are
/// those of upsampling and padding first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InputView {
    pub upsample: bool,
    pub reflect: usize,
}

impl InputView {
    /// True when the layer convolves x itself.
    pub fn is_identity(self) -> bool {
        self == InputView::default()
    }

    /// The size of x upsampled (or not), before the border.
    pub fn upsampled(self, h: usize, w: usize) -> (usize, usize) {
        let s = if self.upsample { 2 } else { 1 };
        (s * h, s * w)
    }

    /// The size of the image the layer convolves, for an `h x w` input.
    pub fn size(self, h: usize, w: usize) -> (usize, usize) {
        let (h, w) = self.upsampled(h, w);
        (h + 2 * self.reflect, w + 2 * self.reflect)
    }

    /// The image the layer convolves, `[planes, size(h, w)]`, written out (x itself, borrowed,
    /// when the view is the identity).
    pub fn materialise(self, x: &[f32], planes: usize, h: usize, w: usize) -> Cow<'_, [f32]> {
        let mut image = Cow::Borrowed(x);
        if self.upsample {
            image = Cow::Owned(super::upsample::nearest2x(&image, planes, h, w));
        }
        if self.reflect > 0 {
            let (h, w) = self.upsampled(h, w);
            image = Cow::Owned(pad::reflection_pad2d(&image, planes, h, w, self.reflect));
        }
        image
    }

    /// The adjoint of [`InputView::materialise`]: `dx [planes, h, w]` from the gradient of the
    /// image, `[planes, size(h, w)]`; each border pixel's added back to the pixel it mirrors,
    /// then each 2x2 block summed.
    pub fn backward(self, dimage: Vec<f32>, planes: usize, h: usize, w: usize) -> Vec<f32> {
        let mut d = dimage;
        if self.reflect > 0 {
            let (h, w) = self.upsampled(h, w);
            d = pad::reflection_pad2d_backward(&d, planes, h, w, self.reflect);
        }
        if self.upsample {
            d = super::upsample::nearest2x_backward(&d, planes, h, w);
        }
        d
    }
}

/// [`conv_forward`], or with the ReLU ([`conv_relu_forward`]) and its mask
/// ([`conv_relu_mask_forward`]) when asked for, into a new buffer that is only written, never
/// zeroed first: what the tape's convolutions run, of x as `view` shows it (a view with a
/// mirrored border needs a layer with no padding of its own).
#[allow(clippy::too_many_arguments)]
pub fn conv_forward_new(
    p: &PackedConv,
    x: &[f32],
    n: usize,
    h: usize,
    w: usize,
    view: InputView,
    relu: bool,
    mask: Option<&mut [u8]>,
) -> Vec<f32> {
    let g = p.geometry;
    let (hp, wp) = view.size(h, w);
    let (ho, wo) = g.output_size(hp, wp).expect("kernel larger than the image");
    let len = n * g.cout * ho * wo;
    let mut y = Vec::with_capacity(len);
    forward(p, x, n, h, w, view, &mut y.spare_capacity_mut()[..len], relu, mask);
    // SAFETY: every route of `forward` writes every value of its output: the GEMM (never with
    // `upper`), Winograd (each tile's pixels, clipped at the edges) and the sliding windows
    // (each pixel); the reference tests run each route into outputs filled with NaN.
    unsafe { y.set_len(len) };
    y
}

/// `y = max(conv(x, W) + b, 0)`: the ReLU done in the GEMM's write-back (see [`Epilogue::relu`]).
pub fn conv_relu_forward(p: &PackedConv, x: &[f32], n: usize, h: usize, w: usize, y: &mut [f32]) {
    // SAFETY: `forward` writes only computed values into y.
    forward(p, x, n, h, w, InputView::default(), unsafe { super::as_write_only(y) }, true, None);
}

/// [`conv_relu_forward`], writing also the ReLU's mask `mask = (y > 0)` (one byte per value,
/// what its backward reads) in the same write-back, not by a second pass over `y`.
pub fn conv_relu_mask_forward(p: &PackedConv, x: &[f32], n: usize, h: usize, w: usize, y: &mut [f32], mask: &mut [u8]) {
    // SAFETY: `forward` writes only computed values into y.
    forward(p, x, n, h, w, InputView::default(), unsafe { super::as_write_only(y) }, true, Some(mask));
}

/// One GEMM per image (each parallel over blocks of its output), or the Winograd or
/// sliding-window routes; y is only written, every value of it. Of x as `view` shows it (see
/// [`InputView`]).
#[allow(clippy::too_many_arguments)]
fn forward(
    p: &PackedConv,
    x: &[f32],
    n: usize,
    h: usize,
    w: usize,
    view: InputView,
    y: &mut [MaybeUninit<f32>],
    relu: bool,
    mask: Option<&mut [u8]>,
) {
    let g = p.geometry;
    assert!(view.reflect == 0 || (g.pad_h == 0 && g.pad_w == 0), "a mirrored border replaces the layer's own padding");
    if !view.is_identity() && !matches!(p.forward, Forward::Winograd) {
        let (hp, wp) = view.size(h, w);
        let image = view.materialise(x, n * g.cin, h, w);
        return forward(p, &image, n, hp, wp, InputView::default(), y, relu, mask);
    }
    let (hp, wp) = view.size(h, w);
    let (ho, wo) = g.output_size(hp, wp).expect("kernel larger than the image");
    assert_eq!(x.len(), n * g.cin * h * w, "conv input is [n, cin, h, w]");
    assert_eq!(y.len(), n * g.cout * ho * wo, "conv output is [n, cout, ho, wo]");
    assert!(mask.as_ref().is_none_or(|m| relu && m.len() == y.len()), "a mask needs the ReLU, one byte per output");
    let forward = match &p.forward {
        Forward::Direct(forward) => forward,
        Forward::Winograd => {
            let u = p.winograd.as_ref().expect("Winograd weights kept");
            let epilogue = winograd::Epilogue { bias: Some(&p.bias), relu, mask, accumulate: false };
            let border = match view.reflect {
                0 => winograd::Border::Zeros(g.pad_h, g.pad_w),
                r => winograd::Border::Reflect(r, r),
            };
            let view = winograd::View { upsample: view.upsample, border };
            return winograd::conv3x3_uninit(u, Pass::Forward, view, x, (n, h, w), y, epilogue);
        }
        Forward::FewOutputs(taps) => {
            let image = g.cout * ho * wo;
            let mut masks = mask.map(|m| m.chunks_exact_mut(image));
            for (x, y) in x.chunks_exact(g.cin * h * w).zip(y.chunks_exact_mut(image)) {
                let (planes, hp, wp) = planes(x, g, h, w);
                let mask = masks.as_mut().and_then(Iterator::next);
                few_outputs::forward(taps, &p.bias, &planes, (hp, wp), y, relu, mask);
            }
            return;
        }
    };
    let epilogue = Epilogue { bias: Some(&p.bias), relu, ..Epilogue::default() };
    let image = g.cout * ho * wo;
    let mut masks = mask.map(|m| m.chunks_exact_mut(image));
    for (x, y) in x.chunks_exact(g.cin * h * w).zip(y.chunks_exact_mut(image)) {
        let b = Im2col::new(x, g, h, w);
        gemm_uninit(AOperand::Packed(forward.view()), &b, y, epilogue, masks.as_mut().and_then(Iterator::next));
    }
}

/// The im2col matrix `[cin·kh·kw, ho·wo]` of `x [cin, h, w]`, written out (the GEMMs never
/// do: they read it in place, see [`Im2col`]). Row k is a plane of the padded (and, for
/// s > 1, phase-split) image shifted by `offset(k)`, so each output row of it is one copy of
/// `wo` consecutive floats.
pub fn im2col(x: &[f32], g: ConvGeometry, h: usize, w: usize) -> Vec<f32> {
    let b = Im2col::new(x, g, h, w);
    let mut offsets = vec![0; g.patch_len()];
    b.row_offsets(0, &mut offsets);
    let mut col = vec![0.0; g.patch_len() * b.pixels];
    col.par_chunks_mut(b.pixels).zip(offsets.par_iter()).for_each(|(row, &offset)| {
        for (oy, out) in row.chunks_exact_mut(b.wo).enumerate() {
            out.copy_from_slice(&b.x[offset + oy * b.plane_w..][..b.wo]);
        }
    });
    col
}

/// `x [cin, h, w]` as the planes the patches are read from: inside the zero border of `g`
/// (borrowed when there is none) and, for stride s > 1, split into its s² stride phases,
/// laid out `[cin, s, s, plane_h, plane_w]`. Returns the planes and their height and width.
fn planes(x: &[f32], g: ConvGeometry, h: usize, w: usize) -> (Cow<'_, [f32]>, usize, usize) {
    let (hp, wp, s) = (h + 2 * g.pad_h, w + 2 * g.pad_w, g.stride);
    if s == 1 {
        if g.pad_h == 0 && g.pad_w == 0 {
            return (Cow::Borrowed(x), hp, wp);
        }
        return (Cow::Owned(zero_pad(x, g.cin, (h, w), (g.pad_h, g.pad_w))), hp, wp);
    }
    // Phase (py, px), pixel (i, j) is padded pixel (s·i + py, s·j + px), which is x's pixel
    // (s·i + py - pad_h, s·j + px - pad_w) or, outside x, zero. Every phase gets the size of
    // the largest, (ceil(hp / s), ceil(wp / s)); the extra row and column of the others are
    // zeros no patch reads.
    let (ph, pw) = (hp.div_ceil(s), wp.div_ceil(s));
    let mut out = super::zeroed(g.cin * s * s * ph * pw);
    out.par_chunks_mut(ph * pw).enumerate().for_each(|(plane, dst)| {
        let (ci, py, px) = (plane / (s * s), plane / s % s, plane % s);
        let src = &x[ci * h * w..][..h * w];
        // The columns j of x: pad_w <= s·j + px < pad_w + w.
        let j_lo = g.pad_w.saturating_sub(px).div_ceil(s).min(pw);
        let j_hi = (g.pad_w + w).saturating_sub(px).div_ceil(s).clamp(j_lo, pw);
        if j_lo == j_hi {
            return;
        }
        for (i, row) in dst.chunks_exact_mut(pw).enumerate() {
            let Some(iy) = (s * i + py).checked_sub(g.pad_h).filter(|&iy| iy < h) else { continue };
            let src = &src[iy * w + s * j_lo + px - g.pad_w..];
            for (v, &x) in row[j_lo..j_hi].iter_mut().zip(src.iter().step_by(s)) {
                *v = x;
            }
        }
    });
    (Cow::Owned(out), ph, pw)
}

/// `x [c, h, w]` inside a border of `pad_h` rows and `pad_w` columns of zeros.
fn zero_pad(x: &[f32], c: usize, (h, w): (usize, usize), (pad_h, pad_w): (usize, usize)) -> Vec<f32> {
    let (hp, wp) = (h + 2 * pad_h, w + 2 * pad_w);
    let mut out = super::zeroed(c * hp * wp);
    out.par_chunks_mut(hp * wp).zip(x.par_chunks(h * w)).for_each(|(dst, src)| {
        for (d, s) in dst.chunks_exact_mut(wp).skip(pad_h).zip(src.chunks_exact(w)) {
            d[pad_w..pad_w + w].copy_from_slice(s);
        }
    });
    out
}

/// `dx += ∂L/∂x`: [`conv_backward_input`] added into the gradient `dx` already holds for the
/// input (from the other ops that read it), `dx[i] + (this op's)[i]` exactly as computing it
/// apart and adding would. The Winograd route adds in its output transform, so no second
/// input-sized buffer is live at once (for VGG's conv1_2 at 1024², 256 MiB at the backward
/// pass's peak); the direct routes compute apart and add.
pub fn conv_backward_input_add(p: &PackedConv, dy: &[f32], n: usize, h: usize, w: usize, dx: &mut [f32]) {
    if let InputGradient::Winograd = p.input_gradient {
        winograd_input_gradient_add(p, dy, n, h, w, dx);
    } else {
        elementwise::add_assign(dx, &conv_backward_input_new(p, dy, n, h, w));
    }
}

/// The Winograd route of the backward pass to the input, `dx += conv(dy, W')`.
fn winograd_input_gradient_add(p: &PackedConv, dy: &[f32], n: usize, h: usize, w: usize, dx: &mut [f32]) {
    let (t, u) = (p.geometry.transposed(), p.winograd.as_ref().expect("Winograd weights kept"));
    let (ho, wo) = p.geometry.output_size(h, w).expect("forward ran on this size");
    let epilogue = winograd::Epilogue { accumulate: true, ..winograd::Epilogue::default() };
    // conv3x3 checks dy's and dx's lengths against (n, ho, wo) and the channels.
    let border = winograd::Border::Zeros(t.pad_h, t.pad_w);
    winograd::conv3x3(u, Pass::InputGradient, border.into(), dy, (n, ho, wo), dx, epilogue);
}

/// Floats of `dcol` per band of output rows in the col2im route (1 MiB): the GEMM writes a
/// band and col2im reads it back while it is still in cache, and memory stays bounded at any
/// image size (a 9x9 layer with 3 input channels has 243 rows of dcol: 64 MB for one 256x256
/// image, whose gradient is 0.8 MB).
const DCOL_BAND_FLOATS: usize = 1 << 18;

/// [`conv_backward_input`] into a new buffer, what the tape's backward pass runs: the Winograd
/// and flipped-kernel routes write dx whole, so it is zeroed only for col2im, which adds into it.
pub fn conv_backward_input_new(p: &PackedConv, dy: &[f32], n: usize, h: usize, w: usize) -> Vec<f32> {
    let len = n * p.geometry.cin * h * w;
    let mut dx = Vec::with_capacity(len);
    input_gradient(p, dy, n, h, w, &mut dx.spare_capacity_mut()[..len]);
    // SAFETY: every route writes every value of dx (`input_gradient`).
    unsafe { dx.set_len(len) };
    dx
}

/// `dx [n, cin, h, w] = ∂L/∂x` from `dy [n, cout, ho, wo]`, for `h x w` inputs.
pub fn conv_backward_input(p: &PackedConv, dy: &[f32], n: usize, h: usize, w: usize, dx: &mut [f32]) {
    // SAFETY: `input_gradient` writes only computed values (and col2im's zeros) into dx.
    input_gradient(p, dy, n, h, w, unsafe { super::as_write_only(dx) });
}

/// `dx = ∂L/∂x` by the layer's route, dx only written: Winograd and the flipped kernel write each
/// value once; col2im's dx is zeroed (on every thread) before its bands are added into it.
fn input_gradient(p: &PackedConv, dy: &[f32], n: usize, h: usize, w: usize, dx: &mut [MaybeUninit<f32>]) {
    let g = p.geometry;
    let (ho, wo) = g.output_size(h, w).expect("forward ran on this size");
    assert_eq!(dy.len(), n * g.cout * ho * wo, "conv output gradient is [n, cout, ho, wo]");
    assert_eq!(dx.len(), n * g.cin * h * w, "conv input gradient is [n, cin, h, w]");
    let images = dy.chunks_exact(g.cout * ho * wo).zip(dx.chunks_exact_mut(g.cin * h * w));
    match &p.input_gradient {
        InputGradient::Winograd => {
            let (t, u) = (g.transposed(), p.winograd.as_ref().expect("Winograd weights kept"));
            let epilogue = winograd::Epilogue::default();
            let border = winograd::Border::Zeros(t.pad_h, t.pad_w);
            winograd::conv3x3_uninit(u, Pass::InputGradient, border.into(), dy, (n, ho, wo), dx, epilogue);
        }
        InputGradient::Flipped(a) => {
            for (dy, dx) in images {
                let b = Im2col::new(dy, g.transposed(), ho, wo);
                gemm_uninit(AOperand::Packed(a.view()), &b, dx, Epilogue::default(), None);
            }
        }
        InputGradient::Col2im(wt) => {
            // Bands of output rows, in order: each band's dcol is added into dx before the next
            // band's is made, so overlapping patches sum in a fixed order.
            let band = (DCOL_BAND_FLOATS / (g.patch_len() * wo).max(1)).clamp(1, ho);
            let mut dcol = vec![0.0; g.patch_len() * band * wo];
            for (dy, dx) in images {
                dx.par_chunks_mut(w.max(1)).for_each(|row| row.iter_mut().for_each(|v| _ = v.write(0.0)));
                // SAFETY: every value was just written.
                let dx = unsafe { &mut *(dx as *mut [MaybeUninit<f32>] as *mut [f32]) };
                let dy = MatRef::row_major(dy, g.cout, ho * wo);
                for oy in (0..ho).step_by(band) {
                    let rows = band.min(ho - oy);
                    let dcol = &mut dcol[..g.patch_len() * rows * wo];
                    gemm(AOperand::Packed(wt.view()), &dy.columns(oy * wo, rows * wo), dcol, Epilogue::default());
                    col2im(dcol, g, (h, w), oy..oy + rows, dx);
                }
            }
        }
    }
}

/// `dx [cin, h, w] +=` the patch rows of `dcol` (`[cin·kh·kw, rows·wo]`, output rows `oy`)
/// put back where im2col took them from.
///
/// One task per row of dx (per channel and input row `iy`) gathers what the band sends it:
/// for each kernel row ky whose output row `oy = (iy + pad_h - ky) / s` is in the band, the
/// `kw` shifted dcol rows, added in (ky, kx) order. So rows never race, every element is summed
/// in a fixed order whatever the thread count, and a layer with 3 input channels still has
/// enough tasks for every thread.
fn col2im(dcol: &[f32], g: ConvGeometry, (h, w): (usize, usize), oy: std::ops::Range<usize>, dx: &mut [f32]) {
    let (_, wo) = g.output_size(h, w).expect("forward ran on this size");
    let (s, pixels) = (g.stride, oy.len() * wo);
    dx.par_chunks_mut(w).enumerate().for_each(|(r, out)| {
        let (ci, iy) = (r / h, r % h);
        for ky in 0..g.kh {
            let Some(t) = (iy + g.pad_h).checked_sub(ky).filter(|t| t % s == 0) else { continue };
            let Some(band_row) = (t / s).checked_sub(oy.start).filter(|&b| b < oy.len()) else { continue };
            for kx in 0..g.kw {
                // ix = s·ox + kx - pad_w must lie in 0..w.
                let ox_lo = g.pad_w.saturating_sub(kx).div_ceil(s).min(wo);
                let ox_hi = (w + g.pad_w).saturating_sub(kx).div_ceil(s).clamp(ox_lo, wo);
                if ox_lo == ox_hi {
                    continue;
                }
                let row = (ci * g.kh + ky) * g.kw + kx;
                let src = &dcol[row * pixels + band_row * wo..][ox_lo..ox_hi];
                let start = s * ox_lo + kx - g.pad_w;
                let dst = &mut out[start..start + s * (src.len() - 1) + 1];
                if s == 1 {
                    dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
                } else {
                    dst.iter_mut().step_by(s).zip(src).for_each(|(d, s)| *d += s);
                }
            }
        }
    });
}

/// `dw [cout, cin, kh, kw] = Σ_images dY · col(X)ᵀ`, the weight gradient, from the inputs
/// `x [n, cin, h, w]` and `dy [n, cout, ho, wo]`.
///
/// By `p`'s weight-gradient algorithm: Winograd ([`winograd::weight_gradient`]) or direct.
/// Direct, stride-1 layers with few outputs slide dY's rows over x's ([`sliding_gradient`]);
/// the others take a GEMM of `cout x P` by `P x cin·kh·kw` per image, parallel over blocks of
/// dW, with the P output pixels as its K: never split across threads, summed in KC blocks in
/// order, and the images added in order (each GEMM accumulates into dW). `col(X)ᵀ` is packed
/// panel by panel from the padded image ([`Im2colT`]), never materialised. Every route gives
/// the same result for any thread count. Runs only for trainable weights (never for VGG).
pub fn conv_backward_weight(p: &PackedConv, x: &[f32], n: usize, h: usize, w: usize, dy: &[f32], dw: &mut [f32]) {
    let g = p.geometry;
    match p.weight_gradient {
        ConvAlgorithm::Winograd => {
            winograd::weight_gradient(x, (n, h, w), (g.pad_h, g.pad_w), dy, (g.cin, g.cout), dw);
        }
        ConvAlgorithm::Direct if sliding_gradient::takes(g) => {
            sliding_gradient::weight_gradient(g, x, (n, h, w), dy, dw)
        }
        ConvAlgorithm::Direct => gemm_weight_gradient(g, x, n, h, w, dy, dw),
    }
}

/// [`conv_backward_weight`] by a GEMM per image, for any geometry.
fn gemm_weight_gradient(g: ConvGeometry, x: &[f32], n: usize, h: usize, w: usize, dy: &[f32], dw: &mut [f32]) {
    let (ho, wo) = g.output_size(h, w).expect("forward ran on this size");
    let pixels = ho * wo;
    assert_eq!(x.len(), n * g.cin * h * w, "conv input is [n, cin, h, w]");
    assert_eq!(dy.len(), n * g.cout * pixels, "conv output gradient is [n, cout, ho, wo]");
    assert_eq!(dw.len(), g.cout * g.patch_len(), "conv weight gradient is [cout, cin, kh, kw]");
    if n == 0 {
        dw.fill(0.0);
    }
    for (i, (x, dy)) in x.chunks_exact(g.cin * h * w).zip(dy.chunks_exact(g.cout * pixels)).enumerate() {
        let col = Im2col::new(x, g, h, w);
        let epilogue = Epilogue { accumulate: i > 0, ..Epilogue::default() };
        gemm(AOperand::View(MatRef::row_major(dy, g.cout, pixels)), &col.t(), dw, epilogue);
    }
}

/// `db [cout] = Σ_images Σ_pixels dY`, the bias gradient, from `dy [n, cout, pixels]`
/// (`cout = db.len()`): one channel per task, each summed in f64 in a fixed order.
pub fn conv_backward_bias(dy: &[f32], n: usize, pixels: usize, db: &mut [f32]) {
    let cout = db.len();
    assert_eq!(dy.len(), n * cout * pixels, "conv output gradient is [n, cout, pixels]");
    db.par_iter_mut().enumerate().for_each(|(co, b)| {
        let sum: f64 = (0..n).flat_map(|i| &dy[(i * cout + co) * pixels..][..pixels]).map(|&v| v as f64).sum();
        *b = sum as f32;
    });
}

/// The im2col matrix of an image, as a B operand the GEMM reads without ever materialising it.
///
/// Row `k = (ci·kh + ky)·kw + kx`, column `n = oy·wo + ox` holds the padded image's
/// `x[ci, s·oy + ky, s·ox + kx]`, which is pixel `(oy + ky/s, ox + kx/s)` of the plane
/// `(ci, ky mod s, kx mod s)` of `planes`. So row k is the planes shifted by
/// `offset(k) = ((plane·plane_h) + ky/s)·plane_w + kx/s`, and `B[k, n] = x[offset(k) +
/// oy·plane_w + ox]`. (`offset(k) = ci·channel_len + taps[ky·kw + kx]`, where a channel's
/// planes are `channel_len` floats and `taps` holds the rest, so the packing loops need no
/// division per row.) A micro-panel of NR pixels inside one output row is then NR consecutive
/// floats of a plane in every row k, and the micro-kernel reads it in place ("implicit
/// GEMM"); only panels that wrap to the next output row are packed.
pub struct Im2col<'a> {
    x: Cow<'a, [f32]>,
    g: ConvGeometry,
    plane_w: usize,
    channel_len: usize,
    taps: Vec<usize>,
    wo: usize,
    pixels: usize,
}

impl<'a> Im2col<'a> {
    /// `col(x)` of the unpadded `x [cin, h, w]` (padded and phase-split here, one copy).
    pub fn new(x: &'a [f32], g: ConvGeometry, h: usize, w: usize) -> Self {
        assert_eq!(x.len(), g.cin * h * w, "im2col input is [cin, h, w]");
        let (ho, wo) = g.output_size(h, w).expect("kernel larger than the image");
        let (x, plane_h, plane_w) = planes(x, g, h, w);
        let s = g.stride;
        let taps = (0..g.kh)
            .flat_map(|ky| (0..g.kw).map(move |kx| (ky, kx)))
            .map(|(ky, kx)| (((ky % s) * s + kx % s) * plane_h + ky / s) * plane_w + kx / s)
            .collect();
        Im2col { x, g, plane_w, channel_len: s * s * plane_h * plane_w, taps, wo, pixels: ho * wo }
    }

    /// `col(x)ᵀ`, as the B operand of the weight gradient.
    pub fn t(&self) -> Im2colT<'_> {
        Im2colT(self)
    }

    /// `offset(k)` for rows `k0..k0 + offsets.len()`.
    fn row_offsets(&self, k0: usize, offsets: &mut [usize]) {
        let (mut ci, mut tap) = (k0 / self.taps.len(), k0 % self.taps.len());
        for o in offsets {
            *o = ci * self.channel_len + self.taps[tap];
            tap += 1;
            if tap == self.taps.len() {
                (ci, tap) = (ci + 1, 0);
            }
        }
    }

    /// Where output pixels `j..j + len` lie in a plane, as runs inside one output row:
    /// `(index of the first in j.., oy·plane_w + ox of the first, length)`, into `runs`.
    /// Returns the number of runs.
    fn pixel_runs(&self, j: usize, len: usize, runs: &mut [(usize, usize, usize)]) -> usize {
        let mut n_runs = 0;
        let mut i = 0;
        while i < len {
            let (oy, ox) = ((j + i) / self.wo, (j + i) % self.wo);
            let run = (self.wo - ox).min(len - i);
            runs[n_runs] = (i, oy * self.plane_w + ox, run);
            n_runs += 1;
            i += run;
        }
        n_runs
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
        let mut offsets = None;
        for (p, panel) in out.chunks_exact_mut(kc * NR).take(nc.div_ceil(NR)).enumerate() {
            let j0 = n0 + p * NR;
            if self.panel_in_place(j0).is_some() {
                continue;
            }
            let offsets = offsets.get_or_insert_with(|| {
                let mut o = [0; KC];
                self.row_offsets(k0, &mut o[..kc]);
                o
            });
            let width = NR.min(n0 + nc - j0);
            let mut runs = [(0, 0, 0); NR];
            let n_runs = self.pixel_runs(j0, width, &mut runs);
            let runs = &runs[..n_runs];
            for (row, &offset) in panel.chunks_exact_mut(NR).zip(&offsets[..kc]) {
                for &(j, start, len) in runs {
                    copy_run(&mut row[j..j + len], &self.x[offset + start..][..len]);
                }
                row[width..].fill(0.0);
            }
        }
    }

    fn rows_in_place(&self, k0: usize, kc: usize, offsets: &mut [usize]) -> Option<&[f32]> {
        self.row_offsets(k0, &mut offsets[..kc]);
        Some(&self.x)
    }

    fn panel_in_place(&self, j: usize) -> Option<usize> {
        let (oy, ox) = (j / self.wo, j % self.wo);
        (ox + NR <= self.wo).then_some(oy * self.plane_w + ox)
    }
}

/// `col(x)ᵀ` (`P x cin·kh·kw`), the B operand of `dW = dY · col(X)ᵀ`: its rows are output
/// pixels, its columns patch positions. A column of it is a row of `col(x)`, runs of
/// consecutive floats of a plane; a panel is packed eight columns at a time, eight floats of
/// each read and transposed into eight panel rows ([`transpose8`]).
pub struct Im2colT<'a>(&'a Im2col<'a>);

impl PackB for Im2colT<'_> {
    fn rows(&self) -> usize {
        self.0.pixels
    }

    fn cols(&self) -> usize {
        self.0.g.patch_len()
    }

    fn pack(&self, k0: usize, kc: usize, n0: usize, nc: usize, out: &mut [f32]) {
        let col = self.0;
        let mut runs = [(0, 0, 0); KC];
        let n_runs = col.pixel_runs(k0, kc, &mut runs);
        let runs = &runs[..n_runs];
        let mut offsets = [0; NR];
        for (p, panel) in out.chunks_exact_mut(kc * NR).take(nc.div_ceil(NR)).enumerate() {
            let j0 = n0 + p * NR;
            let width = NR.min(n0 + nc - j0);
            col.row_offsets(j0, &mut offsets[..width]);
            for &(r, start, len) in runs {
                // Panel rows r.., columns j..j + 8 at a time, from eight runs of `len` floats.
                for j in (0..width).step_by(8) {
                    let cols = 8.min(width - j);
                    let src: [&[f32]; 8] =
                        std::array::from_fn(|c| &col.x[offsets[j + c.min(cols - 1)] + start..][..len]);
                    let rows = &mut panel[r * NR..][..len * NR];
                    let mut t = 0;
                    if cols == 8 {
                        while t + 8 <= len {
                            let tile = transpose8(std::array::from_fn(|c| load8(&src[c][t..])));
                            for (row, tile_row) in rows[t * NR..].chunks_exact_mut(NR).zip(&tile) {
                                row[j..j + 8].copy_from_slice(tile_row);
                            }
                            t += 8;
                        }
                    }
                    for (t, row) in rows.chunks_exact_mut(NR).enumerate().skip(t) {
                        for (c, v) in row[j..j + cols].iter_mut().enumerate() {
                            *v = src[c][t];
                        }
                    }
                }
            }
            if width < NR {
                for row in panel.chunks_exact_mut(NR) {
                    row[width..].fill(0.0);
                }
            }
        }
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
