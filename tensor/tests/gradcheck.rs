//! Every op's backward against central finite differences.
//!
//! [`check`] matches every [`OpKind`] with no wildcard arm and the test runs it for each kind in
//! `OpKind::ALL`, so an op added without a gradient check does not compile (see `OpKind`).
//!
//! For an op `y = f(x₁, …)` and the scalar `L = ⟨r, y⟩` with a fixed random `r`, the test runs
//! backward seeded with `r` ([`Tape::backward_with`], which gives `∇L`) and compares the
//! directional derivative `⟨∇L, v⟩` along random directions v with
//! `(L(x + h·v) - L(x - h·v)) / 2h`. L is summed in f64 from the f32 values of y, whose rounding
//! moves it by about 6e-8·Σ|r·y|; with h = 1e-2 that is far below the 2e-3 relative tolerance.
//! Central differences are exact for the piecewise-linear and quadratic ops here as long as no
//! kink is crossed, so inputs are kept away from ReLU's zero and max-pool ties.
//!
//! The normalisations are smooth but not quadratic: their central difference is off by
//! `(h²/6)·L'''`, and a step of `h·v` (|v| < 1) moves `x̂ = (x - μ)/σ` by about `h/σ`, so the error
//! is about `(h/σ)²` of the derivative. Their inputs are spread with σ ≈ 2 (uniform on ±3.5), which
//! gives ~3e-5 relative, well inside the tolerance.

// `&[x.clone()]` reads better than `std::slice::from_ref(&x)` in these one-input calls.
#![allow(clippy::cloned_ref_to_slice_refs)]

mod common;

use common::vec_away_from_zero;
use tensor::kernels::conv::{ConvAlgorithm, ConvAlgorithms};
use tensor::kernels::elementwise::Bounds;
use tensor::kernels::pad::Window;
use tensor::{Conv2d, Error, OpKind, Rng, RunningStats, Shape, Tape, Tensor, Var};

const H: f32 = 1e-2;

/// `L = ⟨r, y⟩`, in f64.
fn project(y: &Tensor, r: &Tensor) -> f64 {
    y.data().iter().zip(r.data()).map(|(&y, &r)| y as f64 * r as f64).sum()
}

/// Checks the gradient of `build`'s output with respect to every input, and that `build`
/// recorded an op of `kind`.
fn gradcheck(kind: OpKind, name: &str, inputs: &[Tensor], build: &dyn Fn(&mut Tape, &[Var]) -> Var) {
    let mut rng = Rng::new(name.bytes().map(u64::from).sum());
    let mut tape = Tape::new();
    let leaves: Vec<Var> = inputs.iter().map(|t| tape.leaf(t.clone())).collect();
    let y = build(&mut tape, &leaves);
    assert!(tape.kinds().any(|k| k == kind), "{name}: recorded no {kind:?} op");
    let r = Tensor::new(y.shape(), rng.vec(y.shape().numel())).unwrap();
    let grads = tape.backward_with(&y, r.clone()).unwrap();

    let eval = |shift: &[Vec<f32>], sign: f32| -> f64 {
        let mut t = Tape::new();
        let xs: Vec<Var> = inputs
            .iter()
            .zip(shift)
            .map(|(x, v)| {
                let d = x.data().iter().zip(v).map(|(a, b)| a + sign * H * b).collect();
                Var::constant(Tensor::new(x.shape(), d).unwrap())
            })
            .collect();
        let y = build(&mut t, &xs);
        assert!(t.is_empty(), "{name}: constants must leave the tape empty");
        project(y.value(), &r)
    };

    for trial in 0..3 {
        let dirs: Vec<Vec<f32>> = inputs.iter().map(|x| rng.vec(x.shape().numel())).collect();
        let mut analytic = 0.0f64;
        let mut scale = 0.0f64;
        for ((leaf, v), x) in leaves.iter().zip(&dirs).zip(inputs) {
            let g = grads.get(leaf).unwrap_or_else(|| panic!("{name}: no gradient for an input"));
            assert_eq!(g.shape(), x.shape(), "{name}: gradient shape");
            for (gi, vi) in g.data().iter().zip(v) {
                analytic += *gi as f64 * *vi as f64;
                scale += (*gi as f64 * *vi as f64).abs();
            }
        }
        let numeric = (eval(&dirs, 1.0) - eval(&dirs, -1.0)) / (2.0 * H as f64);
        let tol = 2e-3 * analytic.abs().max(numeric.abs()).max(1e-2 * scale) + 1e-6;
        assert!(
            (analytic - numeric).abs() <= tol,
            "{name} (direction {trial}): autograd {analytic} vs finite difference {numeric}"
        );
    }
}

fn random(rng: &mut Rng, dims: &[usize]) -> Tensor {
    Tensor::new(Shape::new(dims), rng.vec(dims.iter().product())).unwrap()
}

/// Distinct values at least 0.05 apart, shuffled: no max-pool window has a near-tie.
fn distinct(rng: &mut Rng, dims: &[usize]) -> Tensor {
    let n: usize = dims.iter().product();
    let mut v: Vec<f32> = (0..n).map(|i| i as f32 * 0.05 - n as f32 * 0.025).collect();
    for i in (1..n).rev() {
        v.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
    Tensor::new(Shape::new(dims), v).unwrap()
}

/// The gradient checks of one kind of op. No wildcard arm: a new kind does not compile until it
/// has its check here.
fn check(kind: OpKind) {
    match kind {
        OpKind::Leaf => leaf(),
        // The fused ReLU form is held to conv2d then relu by `conv2d_relu_is_conv2d_then_relu`.
        OpKind::Conv2d => conv2d(),
        OpKind::Relu => relu(),
        OpKind::MaxPool2 => max_pool2(),
        OpKind::Gram => gram(),
        OpKind::Add => add(),
        OpKind::Scale => scale(),
        OpKind::MeanSquaredError => mse_and_mean_square(),
        OpKind::NeighbourDiff => neighbour_diff(),
        OpKind::ReflectionPad2d => reflection_pad2d(),
        OpKind::Crop2d => crop2d(),
        OpKind::UpsampleNearest2x => upsample_nearest2x(),
        OpKind::LeakyRelu => leaky_relu(),
        OpKind::InstanceNorm => instance_norm(),
        OpKind::BatchNorm => batch_norm(),
        OpKind::SoftClamp => soft_clamp(),
    }
}

#[test]
fn every_op_kind_passes_its_gradient_check() {
    for &kind in OpKind::ALL {
        check(kind);
    }
}

/// A leaf's gradient is the seed itself.
fn leaf() {
    let x = random(&mut Rng::new(9), &[3, 4]);
    gradcheck(OpKind::Leaf, "leaf", &[x], &|_, v| v[0].clone());
}

fn conv2d() {
    let mut rng = Rng::new(1);
    let (w, b) = (random(&mut rng, &[5, 3, 3, 3]), random(&mut rng, &[5]));
    let x = random(&mut rng, &[2, 3, 6, 7]);
    gradcheck(OpKind::Conv2d, "conv2d input (frozen weights)", &[x.clone()], &|t, v| {
        let layer = Conv2d::frozen(w.clone(), b.clone(), 1).unwrap();
        t.conv2d(&v[0], &layer).unwrap()
    });
    gradcheck(OpKind::Conv2d, "conv2d input and weight (constant bias)", &[x.clone(), w.clone()], &|t, v| {
        let layer = Conv2d::new(v[1].clone(), Var::constant(b.clone()), 1).unwrap();
        t.conv2d(&v[0], &layer).unwrap()
    });
    gradcheck(OpKind::Conv2d, "conv2d input, weight and bias", &[x, w, b], &|t, v| {
        let layer = Conv2d::new(v[1].clone(), v[2].clone(), 1).unwrap();
        t.conv2d(&v[0], &layer).unwrap()
    });
    let (w5, b5) = (random(&mut rng, &[2, 3, 5, 5]), random(&mut rng, &[2]));
    gradcheck(OpKind::Conv2d, "conv2d 5x5 padding 2", &[random(&mut rng, &[1, 3, 5, 4]), w5, b5], &|t, v| {
        let layer = Conv2d::new(v[1].clone(), v[2].clone(), 2).unwrap();
        t.conv2d(&v[0], &layer).unwrap()
    });
    // The feed-forward network's layers (Johnson et al. 2016), on a batch of two: a stride-2
    // 3x3 (odd sizes, so the last input row and column are read by no patch), a 9x9 with
    // padding 0 on a pre-padded input, and a 9x9 with stride 2.
    let (ws, bs) = (random(&mut rng, &[4, 3, 3, 3]), random(&mut rng, &[4]));
    gradcheck(OpKind::Conv2d, "conv2d stride 2", &[random(&mut rng, &[2, 3, 8, 7]), ws, bs], &|t, v| {
        let layer = Conv2d::with_stride(v[1].clone(), v[2].clone(), 1, 2).unwrap();
        t.conv2d(&v[0], &layer).unwrap()
    });
    let (w9, b9) = (random(&mut rng, &[3, 2, 9, 9]), random(&mut rng, &[3]));
    let x9 = random(&mut rng, &[2, 2, 11, 10]);
    gradcheck(OpKind::Conv2d, "conv2d 9x9 padding 0", &[x9.clone(), w9.clone(), b9.clone()], &|t, v| {
        let layer = Conv2d::new(v[1].clone(), v[2].clone(), 0).unwrap();
        t.conv2d(&v[0], &layer).unwrap()
    });
    gradcheck(OpKind::Conv2d, "conv2d 9x9 stride 2 padding 4", &[x9.clone(), w9.clone(), b9.clone()], &|t, v| {
        let layer = Conv2d::with_stride(v[1].clone(), v[2].clone(), 4, 2).unwrap();
        t.conv2d(&v[0], &layer).unwrap()
    });
    // A first layer: the image is a constant, only the weight and bias are trained.
    gradcheck(OpKind::Conv2d, "conv2d weight and bias of a constant input", &[w9, b9], &|t, v| {
        let layer = Conv2d::with_stride(v[0].clone(), v[1].clone(), 1, 2).unwrap();
        t.conv2d(&Var::constant(x9.clone()), &layer).unwrap()
    });
}

/// The fused op is checked against the two it replaces, bit for bit, rather than by finite
/// differences: a convolution's outputs cannot all be kept away from ReLU's kink.
#[test]
fn conv2d_relu_is_conv2d_then_relu() {
    let mut rng = Rng::new(11);
    // K = 7·9·9 = 567 spans three K blocks, so the ReLU must wait for the last one.
    let (w, b) = (random(&mut rng, &[5, 7, 9, 9]), random(&mut rng, &[5]));
    let x = random(&mut rng, &[2, 7, 10, 9]);
    let r = random(&mut rng, &[2, 5, 6, 5]);
    for tracked_weights in [false, true] {
        let run = |fused: bool| {
            let mut tape = Tape::new();
            let xv = tape.leaf(x.clone());
            let (wv, bv) = if tracked_weights {
                (tape.leaf(w.clone()), tape.leaf(b.clone()))
            } else {
                (Var::constant(w.clone()), Var::constant(b.clone()))
            };
            let layer = Conv2d::new(wv.clone(), bv.clone(), 2).unwrap();
            assert_eq!(layer.is_frozen(), !tracked_weights);
            let y = if fused {
                tape.conv2d_relu(&xv, &layer).unwrap()
            } else {
                let c = tape.conv2d(&xv, &layer).unwrap();
                tape.relu(c)
            };
            let saved = tape.saved_bytes();
            let grads = tape.backward_with(&y, r.clone()).unwrap();
            let bits = |t: Option<&Tensor>| t.map(|t| t.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>());
            (bits(Some(y.value())), [&xv, &wv, &bv].map(|v| bits(grads.get(v))), saved)
        };
        let (fused, separate) = (run(true), run(false));
        assert!(fused.0.as_ref().unwrap().contains(&0), "some outputs are clamped");
        assert_eq!(fused.0, separate.0, "values (tracked weights: {tracked_weights})");
        assert_eq!(fused.1, separate.1, "gradients (tracked weights: {tracked_weights})");
        assert_eq!(fused.2, separate.2, "saved bytes (tracked weights: {tracked_weights})");
    }
}

fn relu() {
    let mut rng = Rng::new(2);
    let x = Tensor::new([2, 3, 4, 5], vec_away_from_zero(&mut rng, 120, 0.05)).unwrap();
    gradcheck(OpKind::Relu, "relu", &[x], &|t, v| t.relu(v[0].clone()));
}

fn max_pool2() {
    let mut rng = Rng::new(3);
    gradcheck(OpKind::MaxPool2, "max_pool2 (odd sizes)", &[distinct(&mut rng, &[1, 3, 7, 9])], &|t, v| {
        t.max_pool2(&v[0]).unwrap()
    });
}

fn gram() {
    let mut rng = Rng::new(4);
    gradcheck(OpKind::Gram, "gram [1,c,h,w]", &[random(&mut rng, &[1, 7, 5, 6])], &|t, v| t.gram(&v[0]).unwrap());
    gradcheck(OpKind::Gram, "gram [3,c,h,w]", &[random(&mut rng, &[3, 5, 4, 3])], &|t, v| t.gram(&v[0]).unwrap());
    gradcheck(OpKind::Gram, "gram [c,n]", &[random(&mut rng, &[9, 13])], &|t, v| t.gram(&v[0]).unwrap());
}

/// Two tensors of one shape; the same pair for every elementwise check.
fn pair() -> (Tensor, Tensor) {
    let mut rng = Rng::new(5);
    (random(&mut rng, &[3, 4, 5]), random(&mut rng, &[3, 4, 5]))
}

fn add() {
    let (a, b) = pair();
    gradcheck(OpKind::Add, "add", &[a, b], &|t, v| t.add(&v[0], &v[1]).unwrap());
    // The residual connection of the feed-forward network's blocks, on a batch of images.
    let mut rng = Rng::new(10);
    let (x, c) = (random(&mut rng, &[2, 3, 4, 5]), random(&mut rng, &[2, 3, 4, 5]));
    gradcheck(OpKind::Add, "add [n,c,h,w], both tracked", &[x.clone(), c.clone()], &|t, v| {
        t.add(&v[0], &v[1]).unwrap()
    });
    gradcheck(OpKind::Add, "add [n,c,h,w], one constant", &[x.clone()], &|t, v| {
        t.add(&Var::constant(c.clone()), &v[0]).unwrap()
    });
    // y = x + f(x), f as in the network's residual blocks: reflection pad, 3x3 convolution
    // without padding, instance norm. x reaches y along two paths, and its gradient is their sum.
    let (w, b) = (random(&mut rng, &[3, 3, 3, 3]), random(&mut rng, &[3]));
    let (gamma, beta) = affine(&mut rng, 3);
    gradcheck(OpKind::Add, "residual x + f(x)", &[spread(&mut rng, &[2, 3, 4, 5])], &|t, v| {
        let conv = Conv2d::frozen(w.clone(), b.clone(), 0).unwrap();
        let h = t.reflection_pad2d(&v[0], 1).unwrap();
        let h = t.conv2d(&h, &conv).unwrap();
        let h = t.instance_norm(h.clone(), &Var::constant(gamma.clone()), &Var::constant(beta.clone()), 1e-5).unwrap();
        t.add(&v[0], &h).unwrap()
    });
}

fn scale() {
    gradcheck(OpKind::Scale, "scale", &[pair().0], &|t, v| t.scale(&v[0], -2.5));
}

/// `mse` and `mean_square` both record a `MeanSquaredError`.
fn mse_and_mean_square() {
    let (a, b) = pair();
    gradcheck(OpKind::MeanSquaredError, "mse", &[a.clone()], &|t, v| t.mse(&v[0], &b).unwrap());
    gradcheck(OpKind::MeanSquaredError, "mean_square", &[a], &|t, v| t.mean_square(&v[0]).unwrap());
}

/// An image-shaped input for the image ops.
fn image() -> Tensor {
    random(&mut Rng::new(6), &[2, 3, 5, 4])
}

fn neighbour_diff() {
    let x = image();
    let kind = OpKind::NeighbourDiff;
    gradcheck(kind, "neighbour_diff rows", &[x.clone()], &|t, v| t.neighbour_diff(&v[0], true).unwrap());
    gradcheck(kind, "neighbour_diff columns", &[x], &|t, v| t.neighbour_diff(&v[0], false).unwrap());
}

#[test]
fn a_value_used_twice_sums_its_gradients() {
    // d/dx mean((x + x)²) = 8x / 4 = 2x for four elements, every step exact in f32.
    let mut tape = Tape::new();
    let x = tape.leaf(Tensor::new([4], vec![1.0, -2.0, 0.5, 3.0]).unwrap());
    let s = tape.add(&x, &x).unwrap();
    let loss = tape.mean_square(&s).unwrap();
    let g = tape.backward(&loss).unwrap();
    assert_eq!(g.get(&x).unwrap().data(), &[2.0, -4.0, 1.0, 6.0]);
}

#[test]
fn mean_square_is_mse_against_zero() {
    // Same value, gradient and saved bytes, bit for bit: mean_square saves x (shared) where mse
    // saves its own x - 0.
    let mut rng = Rng::new(8);
    let x = random(&mut rng, &[2, 3, 9, 7]);
    let run = |direct: bool| {
        let mut tape = Tape::new();
        let xv = tape.leaf(x.clone());
        let loss = if direct { tape.mean_square(&xv) } else { tape.mse(&xv, &Tensor::zeros(x.shape())) }.unwrap();
        let saved = tape.saved_bytes();
        let grads = tape.backward(&loss).unwrap();
        let bits = |t: &Tensor| t.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        (bits(loss.value()), bits(grads.get(&xv).unwrap()), saved)
    };
    let (direct, via_mse) = (run(true), run(false));
    assert_eq!(direct, via_mse);
    assert_eq!(direct.2, x.bytes());
}

#[test]
fn frozen_conv_records_only_shared_weights() {
    // A frozen layer keeps nothing of its input: the tape's saved bytes are the ReLU mask only.
    let mut rng = Rng::new(7);
    let layer = Conv2d::frozen(random(&mut rng, &[4, 3, 3, 3]), random(&mut rng, &[4]), 1).unwrap();
    assert!(layer.is_frozen());
    let mut tape = Tape::new();
    let x = tape.leaf(random(&mut rng, &[1, 3, 8, 8]));
    let y = tape.conv2d(&x, &layer).unwrap();
    assert_eq!(tape.saved_bytes(), 0);
    let _ = tape.relu(y.clone());
    assert_eq!(tape.saved_bytes(), 4 * 8 * 8);
    let pooled = tape.max_pool2(&y).unwrap();
    assert_eq!(tape.saved_bytes(), 4 * 8 * 8 + pooled.shape().numel());
}

#[test]
fn conv_keeps_its_input_only_for_a_tracked_weight() {
    // The bias's gradient is a sum of dY: a layer whose weight is constant saves nothing.
    let mut rng = Rng::new(10);
    let (w, b, x) = (random(&mut rng, &[4, 3, 3, 3]), random(&mut rng, &[4]), random(&mut rng, &[2, 3, 8, 8]));
    let saved = |weight: bool| {
        let mut tape = Tape::new();
        let wv = if weight { tape.leaf(w.clone()) } else { Var::constant(w.clone()) };
        let layer = Conv2d::with_stride(wv, tape.leaf(b.clone()), 1, 2).unwrap();
        assert!(!layer.is_frozen());
        tape.conv2d(&Var::constant(x.clone()), &layer).unwrap();
        tape.saved_bytes()
    };
    assert_eq!(saved(false), 0);
    assert_eq!(saved(true), x.bytes());
}

#[test]
fn conv_rejects_a_zero_stride() {
    let mut rng = Rng::new(12);
    let (w, b) = (random(&mut rng, &[4, 3, 3, 3]), random(&mut rng, &[4]));
    let layer = Conv2d::with_stride(Var::constant(w), Var::constant(b), 1, 0);
    assert!(matches!(layer, Err(Error::BadGeometry { .. })));
}

#[test]
fn winograd_is_refused_for_a_kernel_other_than_3x3() {
    let mut rng = Rng::new(13);
    let (w, b) = (random(&mut rng, &[4, 3, 5, 5]), random(&mut rng, &[4]));
    let winograd = ConvAlgorithms::both(ConvAlgorithm::Winograd);
    let layer = Conv2d::frozen_with(w.clone(), b.clone(), 2, winograd);
    assert!(matches!(layer, Err(Error::BadGeometry { .. })));
    // The same layer by the direct route is fine.
    assert!(Conv2d::frozen_with(w, b, 2, ConvAlgorithms::both(ConvAlgorithm::Direct)).is_ok());
}

#[test]
fn backward_needs_a_scalar_loss_or_a_seed_of_the_output_shape() {
    let record = || {
        let mut tape = Tape::new();
        let x = tape.leaf(Tensor::new([2], vec![1.0, 2.0]).unwrap());
        let y = tape.scale(&x, 3.0);
        (tape, x, y)
    };
    let (tape, _, y) = record();
    assert!(matches!(tape.backward(&y), Err(Error::NonScalarLoss(_))));
    let (tape, _, y) = record();
    assert!(matches!(tape.backward_with(&y, Tensor::zeros([3])), Err(Error::ShapeMismatch { .. })));
    let (tape, x, y) = record();
    let grads = tape.backward_with(&y, Tensor::new([2], vec![1.0, -2.0]).unwrap()).unwrap();
    assert_eq!(grads.get(&x).unwrap().data(), &[3.0, -6.0]);
}

/// Values uniform on ±3.5 (σ ≈ 2): wide enough that a finite-difference step hardly moves a
/// normalisation's statistics (see the module docs).
fn spread(rng: &mut Rng, dims: &[usize]) -> Tensor {
    let t = random(rng, dims);
    Tensor::new(t.shape(), t.data().iter().map(|v| 3.5 * v).collect()).unwrap()
}

fn reflection_pad2d() {
    let mut rng = Rng::new(12);
    let kind = OpKind::ReflectionPad2d;
    gradcheck(kind, "reflection_pad2d 1", &[random(&mut rng, &[2, 3, 4, 5])], &|t, v| {
        t.reflection_pad2d(&v[0], 1).unwrap()
    });
    // pad = 3 on a 4x5 plane: the mirrored bands overlap, so some pixels get three copies per axis.
    gradcheck(kind, "reflection_pad2d 3", &[random(&mut rng, &[1, 2, 4, 5])], &|t, v| {
        t.reflection_pad2d(&v[0], 3).unwrap()
    });
}

fn crop2d() {
    let mut rng = Rng::new(23);
    // A window off-centre, so a swapped row and column would be caught.
    let win = Window { top: 1, left: 2, h: 3, w: 2 };
    gradcheck(OpKind::Crop2d, "crop2d", &[random(&mut rng, &[2, 3, 5, 6])], &|t, v| t.crop2d(&v[0], win).unwrap());
}

fn upsample_nearest2x() {
    let x = random(&mut Rng::new(13), &[2, 3, 3, 5]);
    gradcheck(OpKind::UpsampleNearest2x, "upsample_nearest2x", &[x], &|t, v| t.upsample_nearest2x(&v[0]).unwrap());
}

fn leaky_relu() {
    let mut rng = Rng::new(14);
    let x = Tensor::new([2, 3, 4, 5], vec_away_from_zero(&mut rng, 120, 0.05)).unwrap();
    gradcheck(OpKind::LeakyRelu, "leaky_relu 0.2", &[x.clone()], &|t, v| t.leaky_relu(v[0].clone(), 0.2));
    gradcheck(OpKind::LeakyRelu, "leaky_relu -1.5", &[x], &|t, v| t.leaky_relu(v[0].clone(), -1.5));
}

/// Smooth, not quadratic: the central difference is off by `(h²/6)` times the third
/// derivative, about `(h/half)²` of the derivative, far inside the tolerance with half-widths
/// from 0.5; the inputs reach past every bound, where the slope is small.
fn soft_clamp() {
    let bounds = [Bounds { lo: -1.5, hi: 2.0 }, Bounds { lo: -0.5, hi: 0.5 }, Bounds { lo: 0.0, hi: 3.0 }];
    let x = Tensor::new([2, 3, 4, 5], Rng::new(18).vec(120).iter().map(|v| 3.0 * v).collect()).unwrap();
    gradcheck(OpKind::SoftClamp, "soft_clamp", &[x], &|t, v| t.soft_clamp(v[0].clone(), &bounds).unwrap());
}

/// γ and β for `c` channels, γ away from zero.
fn affine(rng: &mut Rng, c: usize) -> (Tensor, Tensor) {
    (Tensor::new([c], vec_away_from_zero(rng, c, 0.5)).unwrap(), random(rng, &[c]))
}

/// Every combination of tracked inputs that changes what the op saves: x with or without γ, and
/// γ and β without x (when x̂ is kept for dγ only, or nothing at all for dβ).
fn instance_norm() {
    let mut rng = Rng::new(15);
    let x = spread(&mut rng, &[2, 3, 4, 5]);
    let (gamma, beta) = affine(&mut rng, 3);
    let kind = OpKind::InstanceNorm;
    let c = Var::constant;
    gradcheck(kind, "instance_norm x, gamma, beta", &[x.clone(), gamma.clone(), beta.clone()], &|t, v| {
        t.instance_norm(v[0].clone(), &v[1], &v[2], 1e-5).unwrap()
    });
    gradcheck(kind, "instance_norm x (constant affine)", &[x.clone()], &|t, v| {
        t.instance_norm(v[0].clone(), &c(gamma.clone()), &c(beta.clone()), 1e-5).unwrap()
    });
    gradcheck(kind, "instance_norm gamma, beta (constant x)", &[gamma.clone(), beta.clone()], &|t, v| {
        t.instance_norm(c(x.clone()), &v[0], &v[1], 1e-5).unwrap()
    });
    gradcheck(kind, "instance_norm beta", &[beta.clone()], &|t, v| {
        t.instance_norm(c(x.clone()), &c(gamma.clone()), &v[0], 1e-5).unwrap()
    });
    // A 1x1 plane: x̂ = 0 whatever x, so y = β and dx = 0.
    let x1 = spread(&mut rng, &[2, 3, 1, 1]);
    gradcheck(kind, "instance_norm 1x1 planes", &[x1, gamma, beta], &|t, v| {
        t.instance_norm(v[0].clone(), &v[1], &v[2], 1e-5).unwrap()
    });
}

/// Training mode through the batch statistics, and inference mode with constant running ones.
fn batch_norm() {
    let mut rng = Rng::new(16);
    let x = spread(&mut rng, &[3, 2, 3, 4]);
    let (gamma, beta) = affine(&mut rng, 2);
    let kind = OpKind::BatchNorm;
    let c = Var::constant;
    let train = |t: &mut Tape, x: &Var, g: &Var, b: &Var| t.batch_norm_train(x.clone(), g, b, 1e-5).unwrap().0;
    gradcheck(kind, "batch_norm_train x, gamma, beta", &[x.clone(), gamma.clone(), beta.clone()], &|t, v| {
        train(t, &v[0], &v[1], &v[2])
    });
    gradcheck(kind, "batch_norm_train x (constant affine)", &[x.clone()], &|t, v| {
        train(t, &v[0], &c(gamma.clone()), &c(beta.clone()))
    });
    gradcheck(kind, "batch_norm_train gamma, beta", &[gamma.clone(), beta.clone()], &|t, v| {
        train(t, &c(x.clone()), &v[0], &v[1])
    });
    // A batch of one image, three values per channel. (With two, x̂ = ±1 whatever x, and dx is 0
    // but for ε: nothing to check.)
    gradcheck(kind, "batch_norm_train [1, 2, 1, 3]", &[spread(&mut rng, &[1, 2, 1, 3])], &|t, v| {
        train(t, &v[0], &c(gamma.clone()), &c(beta.clone()))
    });
    let running = RunningStats::from_parts(vec![0.3, -0.7], vec![0.5, 2.0]).unwrap();
    gradcheck(kind, "batch_norm_eval x, gamma, beta", &[x.clone(), gamma.clone(), beta], &|t, v| {
        t.batch_norm_eval(v[0].clone(), &v[1], &v[2], &running, 1e-5).unwrap()
    });
    gradcheck(kind, "batch_norm_eval x", &[x], &|t, v| {
        t.batch_norm_eval(v[0].clone(), &c(gamma.clone()), &c(Tensor::zeros([2])), &running, 1e-5).unwrap()
    });
}
