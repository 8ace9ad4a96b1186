//! Every differentiable op: check shapes, run a kernel, record the op if any input is tracked.
//!
//! Ops are methods on [`Tape`]. When every input is a constant nothing is recorded and the
//! result is a constant too, so one code path serves both inference and training.

use std::sync::Arc;

use crate::autograd::op::Op;
use crate::kernels::conv::{self, ConvGeometry, PackedConv};
use crate::kernels::{elementwise, gram, pool, reduce};
use crate::{Error, NodeId, Shape, Tape, Tensor, Var};

/// A convolution layer (zero padding, any stride): weights `[cout, cin, kh, kw]`, bias
/// `[cout]`, packed once for the forward and backward GEMMs.
///
/// The layer holds the packed weights and nothing else of them: the unpacked tensors it was
/// built from are not kept (for VGG19 they would be a second copy, up to 80 MB, that no pass
/// reads).
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
}

impl Conv2d {
    /// A stride-1 layer with `padding` rows and columns of zeros on every side.
    pub fn new(weight: Var, bias: Var, padding: usize) -> Result<Self, Error> {
        Conv2d::with_stride(weight, bias, padding, 1)
    }

    /// A layer that moves its kernel `stride` pixels at a time (both ways), so an `h x w`
    /// input gives `(h + 2·padding - kh) / stride + 1` rows (and columns likewise).
    pub fn with_stride(weight: Var, bias: Var, padding: usize, stride: usize) -> Result<Self, Error> {
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
        let packed = Arc::new(PackedConv::new(weight.value().data(), bias.value().data(), g));
        Ok(Conv2d { packed, weight: weight.node(), bias: bias.node() })
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
        let g = layer.geometry();
        let (n, cin, h, w) = expect_nchw(op, x)?;
        if cin != g.cin {
            return Err(Error::ShapeMismatch { op, expected: format!("{} input channels", g.cin), got: x.shape() });
        }
        let Some((ho, wo)) = g.output_size(h, w) else {
            return Err(Error::BadGeometry {
                op,
                reason: format!("a {}x{} kernel does not fit a {h}x{w} image", g.kh, g.kw),
            });
        };
        let out_shape = Shape::new(&[n, g.cout, ho, wo]);
        let mut y = vec![0.0; out_shape.numel()];
        let forward = if relu { conv::conv_relu_forward } else { conv::conv_forward };
        forward(&layer.packed, x.value().data(), n, h, w, &mut y);
        let tracked = x.is_tracked() || !layer.is_frozen();
        let relu_mask = (relu && tracked).then(|| elementwise::positive_mask(&y));
        Ok(self.output(Tensor::from_parts(out_shape, y), tracked, || Op::Conv2d {
            x: x.node(),
            conv: Arc::clone(&layer.packed),
            input_shape: x.shape(),
            weight: layer.weight,
            bias: layer.bias,
            input: layer.weight.is_some().then(|| x.value().clone()),
            relu_mask,
        }))
    }

    /// `y = max(x, 0)`.
    pub fn relu(&mut self, x: &Var) -> Var {
        let len = x.shape().numel();
        let (mut y, mut mask) = (vec![0.0; len], vec![0u8; len]);
        elementwise::relu(x.value().data(), &mut y, &mut mask);
        let value = Tensor::from_parts(x.shape(), y);
        match x.node() {
            Some(node) => self.record(value, Op::Relu { x: node, mask }),
            None => Var::constant(value),
        }
    }

    /// 2x2 max-pool, stride 2, odd sizes floored.
    pub fn max_pool2(&mut self, x: &Var) -> Result<Var, Error> {
        let (n, c, h, w) = expect_nchw("max_pool2", x)?;
        let out_shape = Shape::new(&[n, c, h / 2, w / 2]);
        let (mut y, mut argmax) = (vec![0.0; out_shape.numel()], vec![0u8; out_shape.numel()]);
        pool::max_pool2(x.value().data(), n * c, h, w, &mut y, &mut argmax);
        let value = Tensor::from_parts(out_shape, y);
        Ok(match x.node() {
            Some(node) => self.record(value, Op::MaxPool2 { x: node, argmax, input_shape: x.shape() }),
            None => Var::constant(value),
        })
    }

    /// The Gram matrix `F Fᵀ / n` of features `[1, c, h, w]` (n = h·w) or of a `[c, n]` matrix.
    pub fn gram(&mut self, x: &Var) -> Result<Var, Error> {
        let (c, n) = match *x.shape().dims() {
            [1, c, h, w] => (c, h * w),
            [c, n] => (c, n),
            _ => {
                return Err(Error::ShapeMismatch {
                    op: "gram",
                    expected: "[1, c, h, w] or [c, n]".into(),
                    got: x.shape(),
                })
            }
        };
        let mut g = vec![0.0; c * c];
        gram::gram(x.value().data(), c, n, &mut g);
        let tracked = x.is_tracked();
        Ok(self.output(Tensor::from_parts(Shape::new(&[c, c]), g), tracked, || Op::Gram {
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
        let mut diff = vec![0.0; target.shape().numel()];
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
        let mut y = vec![0.0; out_shape.numel()];
        elementwise::neighbour_diff(x.value().data(), n * c, h, w, along_rows, &mut y);
        let tracked = x.is_tracked();
        Ok(self.output(Tensor::from_parts(out_shape, y), tracked, || Op::NeighbourDiff {
            x: x.node().expect("tracked"),
            input_shape: x.shape(),
            along_rows,
        }))
    }
}
