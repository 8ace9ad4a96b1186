//! The backward rule of every op, in one exhaustive `match`: adding an `Op` variant does not
//! compile until its rule is written here.

use crate::autograd::op::{Normalized, Op};
use crate::autograd::tape::NodeId;
use crate::kernels::norm::{self, NormGrads};
use crate::kernels::{self, conv, elementwise, gram, pad, pool, upsample};
use crate::{Shape, Tensor};

/// Given `g = ∂L/∂y` for the op's output, the gradients of its tracked inputs. `held` holds
/// the gradients already summed for every node; an op may take its input's and return it
/// with its own added (a convolution does, see below), which the tape then stores back.
pub(crate) fn backward(op: Op, g: Tensor, held: &mut [Option<Tensor>]) -> Vec<(NodeId, Tensor)> {
    let mut out = Vec::with_capacity(2);
    match op {
        Op::Leaf => {}
        Op::Conv2d { x, conv, input_shape, view, weight, bias, input, relu_mask } => {
            let g = match relu_mask {
                Some(mask) => relu_backward(g, &mask),
                None => g,
            };
            let (n, c, h, w) = input_shape.nchw().expect("conv input is NCHW");
            // The size the layer convolved: x's, or x's upsampled and within its border.
            let (hp, wp) = view.size(h, w);
            let geo = conv.geometry;
            let (ho, wo) = geo.output_size(hp, wp).expect("forward ran on this size");
            if let Some(x) = x {
                let dx = if !view.is_identity() {
                    // The gradient of the image the layer read, taken back through the view
                    // (each border pixel's added to the pixel it mirrors, each 2x2 block
                    // summed), as the separate pad and upsample ops' backward would; the tape
                    // adds it to what x holds.
                    let dimage = conv::conv_backward_input_new(&conv, g.data(), n, hp, wp);
                    view.backward(dimage, n * c, h, w)
                } else {
                    // Added into the gradient already held for x, if any (a Gram's, for a style
                    // layer feeding the next convolution), rather than into a second buffer of
                    // the input's size: the backward pass's peak at its first block holds one
                    // fewer.
                    match held[x.0].take() {
                        Some(held) => {
                            let mut dx = held.into_vec();
                            conv::conv_backward_input_add(&conv, g.data(), n, h, w, &mut dx);
                            dx
                        }
                        None => conv::conv_backward_input_new(&conv, g.data(), n, h, w),
                    }
                };
                out.push((x, Tensor::from_parts(input_shape, dx)));
            }
            if let Some(wn) = weight {
                let input = input.expect("conv saves its input when its weight is tracked");
                let input = view.materialise(input.data(), n * c, h, w);
                let mut dw = vec![0.0; geo.cout * geo.patch_len()];
                conv::conv_backward_weight(&conv, &input, n, hp, wp, g.data(), &mut dw);
                out.push((wn, Tensor::from_parts([geo.cout, geo.cin, geo.kh, geo.kw].into(), dw)));
            }
            if let Some(bn) = bias {
                let mut db = vec![0.0; geo.cout];
                conv::conv_backward_bias(g.data(), n, ho * wo, &mut db);
                out.push((bn, Tensor::from_parts([geo.cout].into(), db)));
            }
        }
        Op::Relu { x, mask } => out.push((x, relu_backward(g, &mask))),
        Op::MaxPool2 { x, argmax, input_shape } => {
            let (n, c, h, w) = input_shape.nchw().expect("pool input is NCHW");
            let mut dx = kernels::zeroed(input_shape.numel());
            pool::max_pool2_backward(g.data(), &argmax, n * c, h, w, &mut dx);
            out.push((x, Tensor::from_parts(input_shape, dx)));
        }
        Op::Gram { x, features } => {
            let c = *g.shape().dims().last().expect("a Gram matrix is square");
            let batch = g.shape().numel() / (c * c);
            let n = features.shape().numel() / (batch * c);
            // The gradient is made over the features (their only holder by now, once the
            // forward pass's values are dropped; otherwise over a copy): F is needed for
            // nothing else, and at the first style layer it is the largest tensor alive.
            let shape = features.shape();
            let mut df = features.into_vec();
            for (df, g) in df.chunks_exact_mut(c * n).zip(g.data().chunks_exact(c * c)) {
                gram::gram_backward(df, g, c, n);
            }
            out.push((x, Tensor::from_parts(shape, df)));
        }
        Op::Add { a, b } => {
            if let Some(a) = a {
                out.push((a, g.clone()));
            }
            if let Some(b) = b {
                out.push((b, g));
            }
        }
        Op::Scale { x, factor } => out.push((x, g.map(|v| v * factor))),
        Op::MeanSquaredError { x, diff } => {
            // d/dx mean((x - t)²) = 2 (x - t) / numel
            let k = 2.0 * g.item().expect("mse is a scalar") / diff.shape().numel() as f32;
            out.push((x, diff.map(|d| k * d)));
        }
        Op::NeighbourDiff { x, input_shape, along_rows } => {
            let (n, c, h, w) = input_shape.nchw().expect("neighbour_diff input is NCHW");
            let mut dx = kernels::zeroed(input_shape.numel());
            elementwise::neighbour_diff_backward(g.data(), n * c, h, w, along_rows, &mut dx);
            out.push((x, Tensor::from_parts(input_shape, dx)));
        }
        Op::ReflectionPad2d { x, input_shape, pad } => {
            let (n, c, h, w) = input_shape.nchw().expect("reflection_pad2d input is NCHW");
            let dx = pad::reflection_pad2d_backward(g.data(), n * c, h, w, pad);
            out.push((x, Tensor::from_parts(input_shape, dx)));
        }
        Op::Crop2d { x, input_shape, win } => {
            let (n, c, h, w) = input_shape.nchw().expect("crop2d input is NCHW");
            let dx = pad::crop2d_backward(g.data(), n * c, h, w, win);
            out.push((x, Tensor::from_parts(input_shape, dx)));
        }
        Op::UpsampleNearest2x { x, input_shape } => {
            let (n, c, h, w) = input_shape.nchw().expect("upsample input is NCHW");
            let dx = upsample::nearest2x_backward(g.data(), n * c, h, w);
            out.push((x, Tensor::from_parts(input_shape, dx)));
        }
        Op::LeakyRelu { x, mask, slope } => {
            out.push((x, in_place(g, |dx| elementwise::leaky_relu_backward(dx, &mask, slope))))
        }
        Op::InstanceNorm(saved) | Op::BatchNorm(saved) => normalization_backward(saved, &g, &mut out),
        Op::SoftClamp { x, slope } => out.push((x, in_place(g, |dx| elementwise::soft_clamp_backward(dx, &slope)))),
    }
    out
}

/// dx, dγ and dβ of a normalisation, each only for a tracked input.
fn normalization_backward(saved: Normalized, dy: &Tensor, out: &mut Vec<(NodeId, Tensor)>) {
    let geo = saved.geometry;
    let mut dx = saved.x.map(|_| kernels::zeroed(geo.len()));
    let mut dgamma = saved.gamma.map(|_| vec![0.0; geo.c]);
    let mut dbeta = saved.beta.map(|_| vec![0.0; geo.c]);
    let grads = NormGrads { dx: dx.as_deref_mut(), dgamma: dgamma.as_deref_mut(), dbeta: dbeta.as_deref_mut() };
    let dx_scale = saved.dx_scale.as_deref().unwrap_or_default();
    norm::normalize_backward(dy.data(), saved.xhat.as_deref(), geo, dx_scale, grads);
    let channels = Shape::new(&[geo.c]);
    for (node, grad, shape) in
        [(saved.x, dx, dy.shape()), (saved.gamma, dgamma, channels), (saved.beta, dbeta, channels)]
    {
        if let (Some(node), Some(grad)) = (node, grad) {
            out.push((node, Tensor::from_parts(shape, grad)));
        }
    }
}

/// `dx = dy ⊙ mask`, in `dy`'s buffer.
fn relu_backward(dy: Tensor, mask: &[u8]) -> Tensor {
    in_place(dy, |dx| elementwise::relu_backward(dx, mask))
}

/// `f` applied to `dy`'s buffer, made the input's gradient (a copy only if something else still
/// holds `dy`).
fn in_place(dy: Tensor, f: impl FnOnce(&mut [f32])) -> Tensor {
    let shape = dy.shape();
    let mut dx = dy.into_vec();
    f(&mut dx);
    Tensor::from_parts(shape, dx)
}
