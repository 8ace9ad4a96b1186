//! Every differentiable op: check shapes, run a kernel, record the op if any input is tracked.
//!
//! Ops are methods on [`Tape`]. When every input is a constant nothing is recorded and the
//! result is a constant too, so one code path serves both inference and training.

use std::sync::Arc;

use crate::autograd::op::{Normalized, Op};
use crate::kernels::conv::{self, ConvAlgorithm, ConvAlgorithms, ConvGeometry, InputView, PackedConv};
use crate::kernels::norm::{self, NormGeometry, NormParams, Statistics};
use crate::kernels::{self, elementwise, gram, pad, pool, reduce, upsample};
use crate::{BatchStats, Error, NodeId, RunningStats, Shape, Tape, Tensor, Var};

/// A convolution layer (zero padding, any stride): weights `[cout, cin, kh, kw]`, bias
/// `[cout]`, packed once for the forward and backward GEMMs.
///
/// The layer holds its weights once, in the form its passes read ([`PackedConv`]: packed for
/// the direct passes, as they are for Winograd, which transforms them at each call), and
/// nothing else of them: the tensors it was built from are not kept (for VGG19 they would be
/// a second copy, up to 80 MB).
/// Frozen layers (constant weight and bias, as in VGG) record only a shared `Arc` of the
/// packed weights: their backward needs nothing of the input. When the weight or bias is a
/// tracked `Var`, the layer keeps its tape node, and `backward` returns its gradient; for a
/// tracked weight the op also keeps its input (`dW = dY · col(x)ᵀ` needs x and dY, not W; the
/// bias's gradient needs dY alone).
///
/// ```
/// use tensor::{Conv2d, Tape, Tensor};
/// let mut tape = Tape::new();
/// // A trainable 3x3 stride-2 layer 2 -> 4 without padding (a network pads beforehand).
/// let w = tape.leaf(Tensor::uniform([4, 2, 3, 3], -0.1, 0.1, 1));
/// let b = tape.leaf(Tensor::zeros([4]));
/// let layer = Conv2d::with_stride(w.clone(), b.clone(), 0, 2).unwrap();
/// let x = tape.leaf(Tensor::uniform([2, 2, 9, 9], -1.0, 1.0, 2)); // a batch of two
/// let y = tape.conv2d(&x, &layer).unwrap();
/// assert_eq!(y.shape().dims(), &[2, 4, 4, 4]);
/// let loss = tape.mean_square(&y).unwrap();
/// let grads = tape.backward(&loss).unwrap();
/// assert_eq!(grads.get(&w).unwrap().shape().dims(), &[4, 2, 3, 3]); // summed over the batch
/// assert_eq!(grads.get(&b).unwrap().shape().dims(), &[4]);
/// ```
#[derive(Clone)]
pub struct Conv2d {
    packed: Arc<PackedConv>,
    /// The weight's node when it is tracked.
    weight: Option<NodeId>,
    /// The bias's node when it is tracked.
    bias: Option<NodeId>,
    /// How the layer reads its input: upsampled ([`Conv2d::upsampled`]), within a mirrored
    /// border ([`Conv2d::reflected`]), or as it is.
    view: InputView,
}

impl Conv2d {
    /// A stride-1 layer with `padding` rows and columns of zeros on every side.
    pub fn new(weight: Var, bias: Var, padding: usize) -> Result<Self, Error> {
        Conv2d::with_stride(weight, bias, padding, 1)
    }

    /// A layer that moves its kernel `stride` pixels at a time (both ways), so an `h x w`
    /// input gives `(h + 2·padding - kh) / stride + 1` rows (and columns likewise).
    pub fn with_stride(weight: Var, bias: Var, padding: usize, stride: usize) -> Result<Self, Error> {
        Conv2d::build(weight, bias, padding, stride, None)
    }

    /// A frozen stride-1 layer whose passes run `algorithms` rather than the fastest
    /// ([`ConvAlgorithms::for_geometry`]); Winograd needs a 3x3 kernel.
    pub fn frozen_with(
        weight: Tensor,
        bias: Tensor,
        padding: usize,
        algorithms: ConvAlgorithms,
    ) -> Result<Self, Error> {
        Conv2d::build(Var::constant(weight), Var::constant(bias), padding, 1, Some(algorithms))
    }

    fn build(
        weight: Var,
        bias: Var,
        padding: usize,
        stride: usize,
        algorithms: Option<ConvAlgorithms>,
    ) -> Result<Self, Error> {
        let op = "conv2d";
        let Some(&[cout, cin, kh, kw]) = Some(weight.shape().dims()).filter(|d| d.len() == 4) else {
            return Err(Error::ShapeMismatch {
                op,
                expected: "weight [cout, cin, kh, kw]".into(),
                got: weight.shape(),
            });
        };
        if bias.shape().dims() != [cout] {
            return Err(Error::ShapeMismatch { op, expected: format!("bias [{cout}]"), got: bias.shape() });
        }
        if kh == 0 || kw == 0 || padding >= kh || padding >= kw {
            return Err(Error::BadGeometry {
                op,
                reason: format!("padding {padding} must be smaller than the {kh}x{kw} kernel"),
            });
        }
        if stride == 0 {
            return Err(Error::BadGeometry { op, reason: "stride must be at least 1".into() });
        }
        let g = ConvGeometry { cin, cout, kh, kw, pad_h: padding, pad_w: padding, stride };
        let algorithms = algorithms.unwrap_or(ConvAlgorithms::for_geometry(g));
        let winograd = [algorithms.forward, algorithms.input_gradient].contains(&ConvAlgorithm::Winograd);
        if winograd && (kh, kw, stride) != (3, 3, 1) {
            return Err(Error::BadGeometry {
                op,
                reason: format!("Winograd needs a 3x3 kernel at stride 1, not {kh}x{kw} at stride {stride}"),
            });
        }
        let packed = Arc::new(PackedConv::with_algorithms(weight.value().data(), bias.value().data(), g, algorithms));
        Ok(Conv2d { packed, weight: weight.node(), bias: bias.node(), view: InputView::default() })
    }

    /// The layer reading its input mirrored by `pad` pixels on every side (PyTorch's
    /// `padding_mode="reflect"`; Johnson et al. pad every layer of their network this way), in
    /// place of padding of its own: [`Tape::reflection_pad2d`] then this convolution, bit for
    /// bit, as one op. Its Winograd route reads the mirrored border where it reads its windows,
    /// so no padded copy of the input is made or kept (the network's 3x3 stride-1 layers:
    /// `apply`'s peak memory 11-12% lower, `benches/README.md`, "Reflection padding read in
    /// place"); the other routes convolve a padded copy, and the backward pass pads again
    /// what it needs.
    pub fn reflected(self, pad: usize) -> Result<Self, Error> {
        let g = self.geometry();
        if g.pad_h != 0 || g.pad_w != 0 {
            return Err(Error::BadGeometry {
                op: "conv2d",
                reason: format!("a mirrored border replaces the layer's padding, which is {}x{}", g.pad_h, g.pad_w),
            });
        }
        Ok(Conv2d { view: InputView { reflect: pad, ..self.view }, ..self })
    }

    /// The layer convolving its input upsampled 2x by nearest neighbour (before any mirrored
    /// border): [`Tape::upsample_nearest2x`] then this convolution, bit for bit, as one op, a
    /// resize-convolution (Odena et al. 2016). As with [`Conv2d::reflected`], the Winograd
    /// route reads the upsampled pixels in place, so the input four times x's size is never
    /// written out nor kept for the backward pass, which keeps x; the other routes convolve
    /// an upsampled copy.
    pub fn upsampled(self) -> Self {
        Conv2d { view: InputView { upsample: true, ..self.view }, ..self }
    }

    /// A layer whose weights never receive gradients.
    pub fn frozen(weight: Tensor, bias: Tensor, padding: usize) -> Result<Self, Error> {
        Conv2d::new(Var::constant(weight), Var::constant(bias), padding)
    }

    /// True when neither the weight nor the bias is tracked (so no gradient flows to them and
    /// the op saves nothing of its input).
    pub fn is_frozen(&self) -> bool {
        self.weight.is_none() && self.bias.is_none()
    }

    pub fn geometry(&self) -> ConvGeometry {
        self.packed.geometry
    }
}

fn expect_nchw(op: &'static str, v: &Var) -> Result<(usize, usize, usize, usize), Error> {
    v.shape().nchw().ok_or_else(|| Error::ShapeMismatch { op, expected: "[n, c, h, w]".into(), got: v.shape() })
}

/// A border of `pad` mirrored pixels needs `pad < h` and `pad < w`, as PyTorch's
/// `ReflectionPad2d` does: one reflection then reaches every pixel of it.
fn mirrorable(op: &'static str, pad: usize, h: usize, w: usize) -> Result<(), Error> {
    if pad >= h || pad >= w {
        return Err(Error::BadGeometry {
            op,
            reason: format!("padding {pad} must be smaller than the {h}x{w} image it mirrors"),
        });
    }
    Ok(())
}

fn same_shape(op: &'static str, a: &Var, b: &Var) -> Result<(), Error> {
    if a.shape() != b.shape() {
        return Err(Error::ShapeMismatch {
            op,
            expected: format!("{} (the first operand)", a.shape()),
            got: b.shape(),
        });
    }
    Ok(())
}

impl Tape {
    /// Records `op` when `tracked`, else returns a constant.
    fn output(&mut self, value: Tensor, tracked: bool, op: impl FnOnce() -> Op) -> Var {
        if tracked {
            self.record(value, op())
        } else {
            Var::constant(value)
        }
    }

    /// `y = conv(x, W) + b` for `x [n, cin, h, w]`.
    pub fn conv2d(&mut self, x: &Var, layer: &Conv2d) -> Result<Var, Error> {
        self.conv2d_then(x, layer, false)
    }

    /// `y = max(conv(x, W) + b, 0)`: [`Tape::conv2d`] then [`Tape::relu`] in one pass over y,
    /// with bit-identical results. VGG uses it wherever the convolution's own output is not
    /// asked for.
    pub fn conv2d_relu(&mut self, x: &Var, layer: &Conv2d) -> Result<Var, Error> {
        self.conv2d_then(x, layer, true)
    }

    fn conv2d_then(&mut self, x: &Var, layer: &Conv2d, relu: bool) -> Result<Var, Error> {
        let op = if relu { "conv2d_relu" } else { "conv2d" };
        let (g, view) = (layer.geometry(), layer.view);
        let (n, cin, h, w) = expect_nchw(op, x)?;
        if cin != g.cin {
            return Err(Error::ShapeMismatch { op, expected: format!("{} input channels", g.cin), got: x.shape() });
        }
        let (hu, wu) = view.upsampled(h, w);
        if view.reflect > 0 {
            mirrorable(op, view.reflect, hu, wu)?;
        }
        let (hp, wp) = view.size(h, w);
        let Some((ho, wo)) = g.output_size(hp, wp) else {
            return Err(Error::BadGeometry {
                op,
                reason: format!("a {}x{} kernel does not fit a {hu}x{wu} image", g.kh, g.kw),
            });
        };
        let out_shape = Shape::new(&[n, g.cout, ho, wo]);
        let tracked = x.is_tracked() || !layer.is_frozen();
        // The ReLU's mask, for the backward pass, comes out of the same write-back as y.
        let mut relu_mask = (relu && tracked).then(|| kernels::zeroed::<u8>(out_shape.numel()));
        let mask = relu_mask.as_deref_mut();
        let y = conv::conv_forward_new(&layer.packed, x.value().data(), n, h, w, view, relu, mask);
        Ok(self.output(Tensor::from_parts(out_shape, y), tracked, || Op::Conv2d {
            x: x.node(),
            conv: Arc::clone(&layer.packed),
            input_shape: x.shape(),
            view,
            weight: layer.weight,
            bias: layer.bias,
            input: layer.weight.is_some().then(|| x.value().clone()),
            relu_mask,
        }))
    }

    /// `y = max(x, 0)`. Takes x by value: when nothing else holds its data (a norm's output,
    /// say), y is written over it, and no buffer is allocated or zeroed for y.
    pub fn relu(&mut self, x: Var) -> Var {
        self.rectified(x, None)
    }

    /// 2x2 max-pool, stride 2, odd sizes floored.
    pub fn max_pool2(&mut self, x: &Var) -> Result<Var, Error> {
        let (n, c, h, w) = expect_nchw("max_pool2", x)?;
        let out_shape = Shape::new(&[n, c, h / 2, w / 2]);
        let (mut y, mut argmax) = (kernels::zeroed(out_shape.numel()), kernels::zeroed::<u8>(out_shape.numel()));
        pool::max_pool2(x.value().data(), n * c, h, w, &mut y, &mut argmax);
        let value = Tensor::from_parts(out_shape, y);
        Ok(match x.node() {
            Some(node) => self.record(value, Op::MaxPool2 { x: node, argmax, input_shape: x.shape() }),
            None => Var::constant(value),
        })
    }

    /// The Gram matrices `F Fᵀ / n`: `[b, c, c]`, one per item of features `[b, c, h, w]`
    /// (n = h·w), or `[c, c]` of a `[c, n]` matrix.
    pub fn gram(&mut self, x: &Var) -> Result<Var, Error> {
        let (batch, c, n, out_shape) = match *x.shape().dims() {
            [b, c, h, w] => (b, c, h * w, Shape::new(&[b, c, c])),
            [c, n] => (1, c, n, Shape::new(&[c, c])),
            _ => {
                return Err(Error::ShapeMismatch {
                    op: "gram",
                    expected: "[n, c, h, w] or [c, n]".into(),
                    got: x.shape(),
                })
            }
        };
        let mut g = vec![0.0; batch * c * c];
        for (g, f) in g.chunks_exact_mut(c * c).zip(x.value().data().chunks_exact(c * n)) {
            gram::gram(f, c, n, g);
        }
        let tracked = x.is_tracked();
        Ok(self.output(Tensor::from_parts(out_shape, g), tracked, || Op::Gram {
            x: x.node().expect("tracked"),
            features: x.value().clone(),
        }))
    }

    pub fn add(&mut self, a: &Var, b: &Var) -> Result<Var, Error> {
        same_shape("add", a, b)?;
        let y = a.value().zip_map(b.value(), |a, b| a + b);
        let tracked = a.is_tracked() || b.is_tracked();
        Ok(self.output(y, tracked, || Op::Add { a: a.node(), b: b.node() }))
    }

    /// `factor · x`.
    pub fn scale(&mut self, x: &Var, factor: f32) -> Var {
        let y = x.value().map(|v| v * factor);
        let tracked = x.is_tracked();
        self.output(y, tracked, || Op::Scale { x: x.node().expect("tracked"), factor })
    }

    /// `mean((x - target)²)` against a constant target: the content and style losses.
    pub fn mse(&mut self, x: &Var, target: &Tensor) -> Result<Var, Error> {
        if x.shape() != target.shape() {
            return Err(Error::ShapeMismatch {
                op: "mse",
                expected: format!("the target's shape {}", target.shape()),
                got: x.shape(),
            });
        }
        let mut diff = kernels::zeroed(target.shape().numel());
        let ss = reduce::sum_sq_diff(x.value().data(), target.data(), &mut diff);
        let y = Tensor::scalar((ss / diff.len().max(1) as f64) as f32);
        Ok(match x.node() {
            Some(node) => self.record(y, Op::MeanSquaredError { x: node, diff: Tensor::from_parts(x.shape(), diff) }),
            None => Var::constant(y),
        })
    }

    /// `mean(x²)`: [`Tape::mse`] against zero, without an image-sized zero target or a
    /// `x - 0` copy. Backward's `x - target` is x itself, saved as a shared clone.
    pub fn mean_square(&mut self, x: &Var) -> Result<Var, Error> {
        let ss = reduce::sum_map(x.value().data(), |v| v as f64 * v as f64);
        let y = Tensor::scalar((ss / x.shape().numel().max(1) as f64) as f32);
        Ok(match x.node() {
            Some(node) => self.record(y, Op::MeanSquaredError { x: node, diff: x.value().clone() }),
            None => Var::constant(y),
        })
    }

    /// Differences of vertical (`along_rows`) or horizontal neighbours of `[n, c, h, w]`:
    /// the terms of the total-variation loss.
    pub fn neighbour_diff(&mut self, x: &Var, along_rows: bool) -> Result<Var, Error> {
        let (n, c, h, w) = expect_nchw("neighbour_diff", x)?;
        let out_shape = if along_rows {
            Shape::new(&[n, c, h.saturating_sub(1), w])
        } else {
            Shape::new(&[n, c, h, w.saturating_sub(1)])
        };
        let mut y = kernels::zeroed(out_shape.numel());
        elementwise::neighbour_diff(x.value().data(), n * c, h, w, along_rows, &mut y);
        let tracked = x.is_tracked();
        Ok(self.output(Tensor::from_parts(out_shape, y), tracked, || Op::NeighbourDiff {
            x: x.node().expect("tracked"),
            input_shape: x.shape(),
            along_rows,
        }))
    }
}

/// Checks that a normalisation's `gamma` and `beta` hold one value per channel.
fn channel_params(op: &'static str, c: usize, gamma: &Var, beta: &Var) -> Result<(), Error> {
    for (name, v) in [("gamma", gamma), ("beta", beta)] {
        if v.shape().dims() != [c] {
            return Err(Error::ShapeMismatch {
                op,
                expected: format!("{name} [{c}], one per channel"),
                got: v.shape(),
            });
        }
    }
    Ok(())
}

/// The layers of the feed-forward style network (Johnson et al., "Perceptual Losses for Real-Time
/// Style Transfer and Super-Resolution", 2016): padding, normalisation, upsampling, and the
/// leaky ReLU of its Conv-BatchNorm-LeakyReLU variant. All take `[n, c, h, w]` for any n >= 1.
impl Tape {
    /// PyTorch's `ReflectionPad2d(pad)`: `[n, c, h, w] -> [n, c, h + 2·pad, w + 2·pad]`, each
    /// plane mirrored about its edges without repeating them (see `kernels::pad`). Needs
    /// `pad < h` and `pad < w`, as PyTorch does.
    pub fn reflection_pad2d(&mut self, x: &Var, pad: usize) -> Result<Var, Error> {
        let op = "reflection_pad2d";
        let (n, c, h, w) = expect_nchw(op, x)?;
        mirrorable(op, pad, h, w)?;
        let out_shape = Shape::new(&[n, c, h + 2 * pad, w + 2 * pad]);
        let y = pad::reflection_pad2d(x.value().data(), n * c, h, w, pad);
        let tracked = x.is_tracked();
        Ok(self.output(Tensor::from_parts(out_shape, y), tracked, || Op::ReflectionPad2d {
            x: x.node().expect("tracked"),
            input_shape: x.shape(),
            pad,
        }))
    }

    /// `[n, c, h, w] -> [n, c, win.h, win.w]`: the window `win` of every plane (PyTorch's
    /// `y[:, :, top:top + h, left:left + w]`). Training cuts the mirrored border back off the
    /// network's output with it, so the loss sees only what `apply` keeps.
    pub fn crop2d(&mut self, x: &Var, win: pad::Window) -> Result<Var, Error> {
        let op = "crop2d";
        let (n, c, h, w) = expect_nchw(op, x)?;
        if win.top + win.h > h || win.left + win.w > w {
            return Err(Error::BadGeometry {
                op,
                reason: format!(
                    "the {}x{} window at row {}, column {} does not fit in the {h}x{w} image",
                    win.h, win.w, win.top, win.left
                ),
            });
        }
        let out_shape = Shape::new(&[n, c, win.h, win.w]);
        let mut y = kernels::zeroed(out_shape.numel());
        pad::crop2d(x.value().data(), n * c, h, w, win, &mut y);
        let tracked = x.is_tracked();
        Ok(self.output(Tensor::from_parts(out_shape, y), tracked, || Op::Crop2d {
            x: x.node().expect("tracked"),
            input_shape: x.shape(),
            win,
        }))
    }

    /// Nearest-neighbour 2x upsampling, `[n, c, h, w] -> [n, c, 2h, 2w]`: the resize of a
    /// resize-convolution (Odena et al., "Deconvolution and Checkerboard Artifacts", 2016).
    pub fn upsample_nearest2x(&mut self, x: &Var) -> Result<Var, Error> {
        let (n, c, h, w) = expect_nchw("upsample_nearest2x", x)?;
        let out_shape = Shape::new(&[n, c, 2 * h, 2 * w]);
        let y = upsample::nearest2x(x.value().data(), n * c, h, w);
        let tracked = x.is_tracked();
        Ok(self.output(Tensor::from_parts(out_shape, y), tracked, || Op::UpsampleNearest2x {
            x: x.node().expect("tracked"),
            input_shape: x.shape(),
        }))
    }

    /// `y = x` where `x > 0`, else `slope·x` (PyTorch's `LeakyReLU(negative_slope)`, default
    /// 0.01; DCGAN-style networks use 0.2). Saves a one-byte mask, and reuses x's buffer, as
    /// [`Tape::relu`] does.
    pub fn leaky_relu(&mut self, x: Var, slope: f32) -> Var {
        self.rectified(x, Some(slope))
    }

    /// A smooth clamp of each channel of `x [n, c, h, w]` into `bounds[c]`:
    /// `y = mid + half·tanh((x - mid)/half)` (see `kernels::elementwise::soft_clamp` for why).
    /// Saves the slope `1 - tanh²` when x is tracked; reuses x's buffer when nothing else holds
    /// it, as [`Tape::relu`] does.
    pub fn soft_clamp(&mut self, x: Var, bounds: &[elementwise::Bounds]) -> Result<Var, Error> {
        let op = "soft_clamp";
        let (_, c, h, w) = expect_nchw(op, &x)?;
        if bounds.len() != c {
            return Err(Error::BadGeometry { op, reason: format!("{} bounds for {c} channels", bounds.len()) });
        }
        if let Some(b) = bounds.iter().find(|b| !(b.lo < b.hi && b.lo.is_finite() && b.hi.is_finite())) {
            return Err(Error::BadGeometry {
                op,
                reason: format!("the bounds {}..{} are not a finite range", b.lo, b.hi),
            });
        }
        let (value, node) = x.into_parts();
        let shape = value.shape();
        let mut y = value.try_into_vec().unwrap_or_else(|x| x.data().to_vec());
        let mut slope = node.map(|_| kernels::zeroed(shape.numel()));
        if !y.is_empty() {
            elementwise::soft_clamp(&mut y, h * w, bounds, slope.as_deref_mut());
        }
        let value = Tensor::from_parts(shape, y);
        Ok(match (node, slope) {
            (Some(x), Some(slope)) => self.record(value, Op::SoftClamp { x, slope }),
            _ => Var::constant(value),
        })
    }

    /// ReLU (`slope` None) or leaky ReLU. In place when x's data has no other holder: no op
    /// saves its output for backward (the ReLUs' own backward needs only the mask), so there
    /// is nobody to see it change, and a holder that does exist (a layer's output also kept
    /// for a loss) keeps x as it was, because y then gets a buffer of its own. The mask is
    /// made only when a gradient will need it.
    fn rectified(&mut self, x: Var, slope: Option<f32>) -> Var {
        let (value, node) = x.into_parts();
        let shape = value.shape();
        let mut mask = node.map(|_| kernels::zeroed::<u8>(shape.numel()));
        let y = match value.try_into_vec() {
            Ok(mut y) => {
                match slope {
                    None => elementwise::relu_in_place(&mut y, mask.as_deref_mut()),
                    Some(slope) => elementwise::leaky_relu_in_place(&mut y, slope, mask.as_deref_mut()),
                }
                y
            }
            Err(x) => {
                let mut y = kernels::zeroed(shape.numel());
                match slope {
                    None => elementwise::relu(x.data(), &mut y, mask.as_deref_mut()),
                    Some(slope) => elementwise::leaky_relu(x.data(), slope, &mut y, mask.as_deref_mut()),
                }
                y
            }
        };
        let value = Tensor::from_parts(shape, y);
        match (node, mask, slope) {
            (Some(x), Some(mask), None) => self.record(value, Op::Relu { x, mask }),
            (Some(x), Some(mask), Some(slope)) => self.record(value, Op::LeakyRelu { x, mask, slope }),
            _ => Var::constant(value),
        }
    }

    /// Instance normalisation with a per-channel affine (Ulyanov et al., "Instance Normalization:
    /// The Missing Ingredient for Fast Stylization", 2016; PyTorch's
    /// `InstanceNorm2d(c, affine=True)`): each `(sample, channel)` plane of `x [n, c, h, w]` is
    /// normalised by its own mean and biased variance over the h·w pixels, then
    /// `y = gamma[c]·x̂ + beta[c]`. `gamma` and `beta` are `[c]`, tracked when trained, constants
    /// otherwise; `eps` is added to the variance (PyTorch's default is 1e-5).
    ///
    /// Saves x̂ and `γ/σ` per plane (see `Normalized`), each only when a gradient needs it.
    pub fn instance_norm(&mut self, x: Var, gamma: &Var, beta: &Var, eps: f32) -> Result<Var, Error> {
        let op = "instance_norm";
        let (n, c, h, w) = expect_nchw(op, &x)?;
        channel_params(op, c, gamma, beta)?;
        if h * w == 0 && n * c > 0 {
            return Err(Error::BadGeometry { op, reason: format!("a {h}x{w} plane has no mean to subtract") });
        }
        let g = NormGeometry { n, c, m: h * w, stats: Statistics::Instance };
        let (mut mean, mut var) = (vec![0.0; g.groups()], vec![0.0; g.groups()]);
        norm::moments(x.value().data(), g, &mut mean, &mut var);
        let inv_std = norm::inverse_std(&var, eps);
        Ok(self.normalization(x, gamma, beta, g, &mean, &inv_std))
    }

    /// Batch normalisation in training mode (Ioffe and Szegedy, "Batch Normalization", 2015;
    /// PyTorch's `BatchNorm2d` after `.train()`): each channel of `x [n, c, h, w]` is normalised
    /// by the mean and biased variance of its n·h·w values in this batch, then
    /// `y = gamma[c]·x̂ + beta[c]`; gradients flow through the batch statistics.
    ///
    /// Also returns those statistics: the op leaves the running estimates to the layer, which
    /// updates them with [`RunningStats::update`] (see `running_stats.rs` for why).
    pub fn batch_norm_train(&mut self, x: Var, gamma: &Var, beta: &Var, eps: f32) -> Result<(Var, BatchStats), Error> {
        let op = "batch_norm_train";
        let (n, c, h, w) = expect_nchw(op, &x)?;
        channel_params(op, c, gamma, beta)?;
        let count = n * h * w;
        if count < 2 && c > 0 {
            return Err(Error::BadGeometry {
                op,
                reason: format!("training needs 2 or more values per channel, {x} has {count}", x = x.shape()),
            });
        }
        let g = NormGeometry { n, c, m: h * w, stats: Statistics::Batch };
        let (mut mean, mut var) = (vec![0.0; c], vec![0.0; c]);
        norm::moments(x.value().data(), g, &mut mean, &mut var);
        let inv_std = norm::inverse_std(&var, eps);
        let y = self.normalization(x, gamma, beta, g, &mean, &inv_std);
        Ok((y, BatchStats { mean, var, count }))
    }

    /// Batch normalisation in inference mode (PyTorch's `BatchNorm2d` after `.eval()`): each
    /// channel normalised by the layer's running estimates, constants here, so
    /// `y = gamma[c]·(x - mean[c])/√(var[c] + eps) + beta[c]` is affine in x.
    pub fn batch_norm_eval(
        &mut self,
        x: Var,
        gamma: &Var,
        beta: &Var,
        running: &RunningStats,
        eps: f32,
    ) -> Result<Var, Error> {
        let op = "batch_norm_eval";
        let (n, c, h, w) = expect_nchw(op, &x)?;
        channel_params(op, c, gamma, beta)?;
        if running.channels() != c {
            return Err(Error::ShapeMismatch {
                op,
                expected: format!("[n, {}, h, w] (the running statistics' channels)", running.channels()),
                got: x.shape(),
            });
        }
        let g = NormGeometry { n, c, m: h * w, stats: Statistics::Running };
        let inv_std = norm::inverse_std(running.var(), eps);
        Ok(self.normalization(x, gamma, beta, g, running.mean(), &inv_std))
    }

    /// `y = γ·(x - mean)·inv_std + β` with the given statistics, recorded (as an instance or a
    /// batch norm, after `g.stats`) with what the tracked inputs' gradients need. Written over
    /// x when nothing else holds it, as [`Tape::relu`] is: backward needs x̂, never x or y.
    fn normalization(
        &mut self,
        x: Var,
        gamma: &Var,
        beta: &Var,
        g: NormGeometry,
        mean: &[f32],
        inv_std: &[f32],
    ) -> Var {
        let (x, x_node) = x.into_parts();
        let shape = x.shape();
        let keep_xhat = gamma.is_tracked() || (x_node.is_some() && g.stats.from_input());
        let mut xhat = keep_xhat.then(|| kernels::zeroed(g.len()));
        let (gamma_v, beta_v) = (gamma.value().data(), beta.value().data());
        let params = NormParams { mean, inv_std, gamma: gamma_v, beta: beta_v };
        let y = match x.try_into_vec() {
            Ok(mut y) => {
                norm::normalize_in_place(&mut y, g, params, xhat.as_deref_mut());
                y
            }
            Err(x) => {
                let mut y = kernels::zeroed(g.len());
                norm::normalize(x.data(), g, params, &mut y, xhat.as_deref_mut());
                y
            }
        };
        let dx_scale = x_node
            .is_some()
            .then(|| (0..g.groups()).map(|group| gamma_v[g.channel_of_group(group)] * inv_std[group]).collect());
        let tracked = x_node.is_some() || gamma.is_tracked() || beta.is_tracked();
        self.output(Tensor::from_parts(shape, y), tracked, || {
            let saved = Normalized { x: x_node, gamma: gamma.node(), beta: beta.node(), geometry: g, xhat, dx_scale };
            match g.stats {
                Statistics::Instance => Op::InstanceNorm(saved),
                Statistics::Batch | Statistics::Running => Op::BatchNorm(saved),
            }
        })
    }
}
