//! The backward rule of every op, in one exhaustive `match`: adding an `Op` variant does not
//! compile until its rule is written here.

use crate::autograd::{op::Op, tape::NodeId};
use crate::kernels::gemm::{gemm, AOperand, Epilogue, MatRef};
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
            let (n, cin, h, w) = input_shape.nchw().expect("conv input is NCHW");
            let geo = conv.geometry;
            let dy_len = g.shape().numel() / n;
            if let Some(x) = x {
                let mut dx = vec![0.0; input_shape.numel()];
                for (dx, dy) in dx.chunks_exact_mut(cin * h * w).zip(g.data().chunks_exact(dy_len)) {
                    conv::conv_backward_input(&conv, dy, h, w, dx);
                }
                out.push((x, Tensor::from_parts(input_shape, dx)));
            }
            if weight.is_some() || bias.is_some() {
                let input = input.expect("conv saves its input when its weights are tracked");
                let mut dw = vec![0.0; geo.cout * geo.patch_len()];
                let mut db = vec![0.0; geo.cout];
                let (mut dw_i, mut db_i) = (dw.clone(), db.clone());
                for (x, dy) in input.data().chunks_exact(cin * h * w).zip(g.data().chunks_exact(dy_len)) {
                    conv::conv_backward_weight(geo, x, h, w, dy, &mut dw_i, &mut db_i);
                    elementwise::add_assign(&mut dw, &dw_i);
                    elementwise::add_assign(&mut db, &db_i);
                }
                if let Some(wn) = weight {
                    let shape = [geo.cout, geo.cin, geo.kh, geo.kw];
                    out.push((wn, Tensor::from_parts(shape.into(), dw)));
                }
                if let Some(bn) = bias {
                    out.push((bn, Tensor::from_parts([geo.cout].into(), db)));
                }
            }
        }
        Op::Relu { x, mask } => out.push((x, relu_backward(&g, &mask))),
        Op::MaxPool2 { x, argmax, input_shape } => {
            let (n, c, h, w) = input_shape.nchw().expect("pool input is NCHW");
            let mut dx = vec![0.0; input_shape.numel()];
            pool::max_pool2_backward(g.data(), &argmax, n * c, h, w, &mut dx);
            out.push((x, Tensor::from_parts(input_shape, dx)));
        }
        Op::AvgPool2 { x, input_shape } => {
            let (n, c, h, w) = input_shape.nchw().expect("pool input is NCHW");
            let mut dx = vec![0.0; input_shape.numel()];
            pool::avg_pool2_backward(g.data(), n * c, h, w, &mut dx);
            out.push((x, Tensor::from_parts(input_shape, dx)));
        }
        Op::Gram { x, features } => {
            let c = g.shape().dims()[0];
            let n = features.shape().numel() / c;
            let mut df = vec![0.0; features.shape().numel()];
            gram::gram_backward(features.data(), g.data(), c, n, &mut df);
            out.push((x, Tensor::from_parts(features.shape(), df)));
        }
        Op::MatMul { a, b, a_value, b_value } => {
            let (m, n) = (g.shape().dims()[0], g.shape().dims()[1]);
            let dc = MatRef::row_major(g.data(), m, n);
            if let Some(a) = a {
                // dA = dC Bᵀ
                let bv = b_value.expect("matmul saves B when A is tracked");
                let k = bv.shape().dims()[0];
                let mut da = vec![0.0; m * k];
                gemm(AOperand::View(dc), &MatRef::row_major(bv.data(), k, n).t(), &mut da, Epilogue::default());
                out.push((a, Tensor::from_parts([m, k].into(), da)));
            }
            if let Some(b) = b {
                // dB = Aᵀ dC
                let av = a_value.expect("matmul saves A when B is tracked");
                let k = av.shape().dims()[1];
                let mut db = vec![0.0; k * n];
                gemm(AOperand::View(MatRef::row_major(av.data(), m, k).t()), &dc, &mut db, Epilogue::default());
                out.push((b, Tensor::from_parts([k, n].into(), db)));
            }
        }
        Op::Add { a, b } => {
            if let Some(a) = a {
                out.push((a, g.clone()));
            }
            if let Some(b) = b {
                out.push((b, g));
            }
        }
        Op::Sub { a, b } => {
            if let Some(b) = b {
                out.push((b, g.map(|v| -v)));
            }
            if let Some(a) = a {
                out.push((a, g));
            }
        }
        Op::Mul { a, b, a_value, b_value } => {
            if let Some(a) = a {
                out.push((a, g.zip_map(&b_value.expect("mul saves B when A is tracked"), |g, b| g * b)));
            }
            if let Some(b) = b {
                out.push((b, g.zip_map(&a_value.expect("mul saves A when B is tracked"), |g, a| g * a)));
            }
        }
        Op::Scale { x, factor } => out.push((x, g.map(|v| v * factor))),
        Op::Square { x, input } => out.push((x, g.zip_map(&input, |g, x| 2.0 * x * g))),
        Op::Sum { x, input_shape } => {
            let gv = g.item().expect("sum is a scalar");
            out.push((x, Tensor::from_parts(input_shape, vec![gv; input_shape.numel()])));
        }
        Op::Mean { x, input_shape } => {
            let gv = g.item().expect("mean is a scalar") / input_shape.numel() as f32;
            out.push((x, Tensor::from_parts(input_shape, vec![gv; input_shape.numel()])));
        }
        Op::MeanSquaredError { x, diff } => {
            // d/dx mean((x - t)²) = 2 (x - t) / numel
            let k = 2.0 * g.item().expect("mse is a scalar") / diff.shape().numel() as f32;
            out.push((x, diff.map(|d| k * d)));
        }
        Op::Reshape { x, input_shape } => {
            out.push((x, g.reshape(input_shape).expect("same number of elements")));
        }
        Op::NeighbourDiff { x, input_shape, along_rows } => {
            let (n, c, h, w) = input_shape.nchw().expect("neighbour_diff input is NCHW");
            let mut dx = vec![0.0; input_shape.numel()];
            elementwise::neighbour_diff_backward(g.data(), n * c, h, w, along_rows, &mut dx);
            out.push((x, Tensor::from_parts(input_shape, dx)));
        }
        Op::SelectChannels { x, perm, input_shape } => {
            let (n, c_in, h, w) = input_shape.nchw().expect("select_channels input is NCHW");
            let plane = h * w;
            let mut dx = vec![0.0; input_shape.numel()];
            let gd = g.data();
            for b in 0..n {
                for (c_out, &c_src) in perm.iter().enumerate() {
                    let src = &gd[(b * perm.len() + c_out) * plane..][..plane];
                    let dst = &mut dx[(b * c_in + c_src) * plane..][..plane];
                    elementwise::add_assign(dst, src);
                }
            }
            out.push((x, Tensor::from_parts(input_shape, dx)));
        }
        Op::AddChannelOffsets { x } => out.push((x, g)),
    }
    out
}

/// `dx = dy ⊙ mask`.
fn relu_backward(dy: &Tensor, mask: &[u8]) -> Tensor {
    let mut dx = vec![0.0; mask.len()];
    elementwise::relu_backward(dy.data(), mask, &mut dx);
    Tensor::from_parts(dy.shape(), dx)
}
