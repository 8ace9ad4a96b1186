//! The backward rule of every op, in one exhaustive `match`: adding an `Op` variant does not
//! compile until its rule is written here.

use crate::autograd::{op::Op, tape::NodeId};
use crate::kernels::{conv, elementwise, gram, pool};
use crate::Tensor;

/// Given `g = ∂L/∂y` for the op's output, the gradients of its tracked inputs.
pub(crate) fn backward(op: Op, g: Tensor) -> Vec<(NodeId, Tensor)> {
    let mut out = Vec::with_capacity(2);
    match op {
        Op::Leaf => {}
        Op::Conv2d { x, conv, input_shape, weight, bias, input, relu_mask } => {
            let g = match relu_mask {
                Some(mask) => relu_backward(&g, &mask),
                None => g,
            };
            let (n, _, h, w) = input_shape.nchw().expect("conv input is NCHW");
            let geo = conv.geometry;
            let (ho, wo) = geo.output_size(h, w).expect("forward ran on this size");
            if let Some(x) = x {
                let mut dx = vec![0.0; input_shape.numel()];
                conv::conv_backward_input(&conv, g.data(), n, h, w, &mut dx);
                out.push((x, Tensor::from_parts(input_shape, dx)));
            }
            if let Some(wn) = weight {
                let input = input.expect("conv saves its input when its weight is tracked");
                let mut dw = vec![0.0; geo.cout * geo.patch_len()];
                conv::conv_backward_weight(geo, input.data(), n, h, w, g.data(), &mut dw);
                out.push((wn, Tensor::from_parts([geo.cout, geo.cin, geo.kh, geo.kw].into(), dw)));
            }
            if let Some(bn) = bias {
                let mut db = vec![0.0; geo.cout];
                conv::conv_backward_bias(g.data(), n, ho * wo, &mut db);
                out.push((bn, Tensor::from_parts([geo.cout].into(), db)));
            }
        }
        Op::Relu { x, mask } => out.push((x, relu_backward(&g, &mask))),
        Op::MaxPool2 { x, argmax, input_shape } => {
            let (n, c, h, w) = input_shape.nchw().expect("pool input is NCHW");
            let mut dx = vec![0.0; input_shape.numel()];
            pool::max_pool2_backward(g.data(), &argmax, n * c, h, w, &mut dx);
            out.push((x, Tensor::from_parts(input_shape, dx)));
        }
        Op::Gram { x, features } => {
            let c = g.shape().dims()[0];
            let n = features.shape().numel() / c;
            let mut df = vec![0.0; features.shape().numel()];
            gram::gram_backward(features.data(), g.data(), c, n, &mut df);
            out.push((x, Tensor::from_parts(features.shape(), df)));
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
            let mut dx = vec![0.0; input_shape.numel()];
            elementwise::neighbour_diff_backward(g.data(), n * c, h, w, along_rows, &mut dx);
            out.push((x, Tensor::from_parts(input_shape, dx)));
        }
    }
    out
}

/// `dx = dy ⊙ mask`.
fn relu_backward(dy: &Tensor, mask: &[u8]) -> Tensor {
    let mut dx = vec![0.0; mask.len()];
    elementwise::relu_backward(dy.data(), mask, &mut dx);
    Tensor::from_parts(dy.shape(), dx)
}
