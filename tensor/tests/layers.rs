//! The feed-forward network's layers as ops: PyTorch's semantics on small worked examples, the
//! errors they return, what they save for backward, and how the two batch-norm modes and
//! instance norm relate. (Their gradients are in `gradcheck.rs`, their kernels against the
//! scalar twins in `kernels_vs_reference.rs`.)

use tensor::kernels::pad::Window;
use tensor::{Conv2d, Error, Rng, RunningStats, Tape, Tensor, Var};

fn bits(t: &Tensor) -> Vec<u32> {
    t.data().iter().map(|v| v.to_bits()).collect()
}

fn random(seed: u64, dims: &[usize]) -> Tensor {
    Tensor::new(dims, Rng::new(seed).vec(dims.iter().product())).unwrap()
}

#[test]
fn reflection_pad_is_pytorchs() {
    // The example of torch.nn.ReflectionPad2d's documentation: ReflectionPad2d(2) on
    // torch.arange(9, dtype=torch.float).reshape(1, 1, 3, 3).
    let x = Var::constant(Tensor::new([1, 1, 3, 3], (0..9).map(|v| v as f32).collect()).unwrap());
    let y = Tape::new().reflection_pad2d(&x, 2).unwrap();
    #[rustfmt::skip]
    let expected = [
        8., 7., 6., 7., 8., 7., 6.,
        5., 4., 3., 4., 5., 4., 3.,
        2., 1., 0., 1., 2., 1., 0.,
        5., 4., 3., 4., 5., 4., 3.,
        8., 7., 6., 7., 8., 7., 6.,
        5., 4., 3., 4., 5., 4., 3.,
        2., 1., 0., 1., 2., 1., 0.,
    ];
    assert_eq!(y.shape().dims(), &[1, 1, 7, 7]);
    assert_eq!(y.value().data(), &expected);
}

#[test]
fn reflection_pad_backward_counts_every_copy() {
    // A ones gradient gives each pixel the number of times it was copied, the product of its
    // row's and its column's counts. Pad 1 on a 3x4 plane: the middle row is copied three times
    // (itself, and mirrored from above and from below), the two inner columns twice.
    let mut tape = Tape::new();
    let x = tape.leaf(Tensor::zeros([1, 1, 3, 4]));
    let y = tape.reflection_pad2d(&x, 1).unwrap();
    let ones = Tensor::new(y.shape(), vec![1.0; y.shape().numel()]).unwrap();
    let grads = tape.backward_with(&y, ones).unwrap();
    #[rustfmt::skip]
    let expected = [
        1., 2., 2., 1.,
        3., 6., 6., 3.,
        1., 2., 2., 1.,
    ];
    assert_eq!(grads.get(&x).unwrap().data(), &expected);
}

/// A layer that reads its input upsampled (`Conv2d::upsampled`) and/or within a mirrored border
/// (`Conv2d::reflected`) gives the bits of upsampling and padding first and then convolving:
/// its output and the gradients of its input, weight and bias, on the routes the network's
/// layers take (Winograd for 3x3 stride 1 with 16 channels or more, direct for stride 2 and
/// 9x9, few outputs for 9x9 to RGB), on two images, with a border as deep as an image allows,
/// and an upsampled layer with zero padding of its own. Bad borders are typed errors.
#[test]
fn convolution_reading_a_view_is_upsampling_and_padding_first() {
    // (cin, cout, kernel, stride, h, w)
    let layers = [(16, 16, 3, 1, 9, 13), (32, 16, 3, 1, 2, 7), (16, 24, 3, 1, 20, 18), (5, 7, 3, 2, 10, 9)];
    let more = [(3, 8, 9, 1, 5, 11), (16, 3, 9, 1, 12, 6)];
    for (i, &(cin, cout, k, stride, h, w)) in layers.iter().chain(&more).enumerate() {
        let seed = 10 * i as u64;
        let (x, weight, bias) =
            (random(seed, &[2, cin, h, w]), random(seed + 1, &[cout, cin, k, k]), random(seed + 2, &[cout]));
        // (upsample, reflect): a zero-padded layer only where its kernel is 3x3.
        let views = [(false, true), (true, true), (true, false)];
        for (upsample, reflect) in views.into_iter().filter(|&(_, reflect)| reflect || k == 3) {
            let run = |fused: bool| {
                let mut tape = Tape::new();
                let (xv, wv, bv) = (tape.leaf(x.clone()), tape.leaf(weight.clone()), tape.leaf(bias.clone()));
                let padding = if reflect { 0 } else { k / 2 };
                let conv = Conv2d::with_stride(wv.clone(), bv.clone(), padding, stride).unwrap();
                let y = if fused {
                    let conv = if upsample { conv.upsampled() } else { conv };
                    let conv = if reflect { conv.reflected(k / 2).unwrap() } else { conv };
                    tape.conv2d(&xv, &conv).unwrap()
                } else {
                    let up = if upsample { tape.upsample_nearest2x(&xv).unwrap() } else { xv.clone() };
                    let padded = if reflect { tape.reflection_pad2d(&up, k / 2).unwrap() } else { up };
                    tape.conv2d(&padded, &conv).unwrap()
                };
                let dy = random(seed + 3, y.shape().dims());
                let grads = tape.backward_with(&y, dy).unwrap();
                let of = |v: &Var| bits(grads.get(v).unwrap());
                (y.shape(), bits(y.value()), of(&xv), of(&wv), of(&bv))
            };
            let what = format!("{cin}->{cout} {k}x{k}/{stride} on 2x{h}x{w}, upsample {upsample}, reflect {reflect}");
            assert!(run(true) == run(false), "{what}");
        }
    }

    let mut tape = Tape::new();
    let conv = |pad| Conv2d::new(Var::constant(Tensor::zeros([4, 2, 3, 3])), Var::constant(Tensor::zeros([4])), pad);
    assert!(matches!(conv(1).unwrap().reflected(1), Err(Error::BadGeometry { .. })), "padded twice");
    assert!(matches!(conv(1).unwrap().upsampled().reflected(1), Err(Error::BadGeometry { .. })), "padded twice");
    let reflected = conv(0).unwrap().reflected(1).unwrap();
    let x = |h, w| Var::constant(Tensor::zeros([1, 2, h, w]));
    assert!(tape.conv2d(&x(2, 2), &reflected).is_ok());
    assert!(matches!(tape.conv2d(&x(1, 5), &reflected), Err(Error::BadGeometry { .. })), "border = h");
    assert!(matches!(tape.conv2d(&x(5, 1), &reflected), Err(Error::BadGeometry { .. })), "border = w");
    // Upsampled first, a 1x1 image is 2x2: deep enough for a border of 1, not of 2.
    let up = conv(0).unwrap().upsampled().reflected(1).unwrap();
    assert_eq!(tape.conv2d(&x(1, 1), &up).unwrap().shape().dims(), &[1, 4, 2, 2]);
    let conv5 = Conv2d::new(Var::constant(Tensor::zeros([4, 2, 5, 5])), Var::constant(Tensor::zeros([4])), 0);
    let up2 = conv5.unwrap().upsampled().reflected(2).unwrap();
    assert!(matches!(tape.conv2d(&x(1, 3), &up2), Err(Error::BadGeometry { .. })), "border = 2h");
    assert_eq!(tape.conv2d(&x(2, 3), &up2).unwrap().shape().dims(), &[1, 4, 4, 6]);
}

#[test]
fn crop_keeps_its_window_and_backward_puts_the_gradient_back_in_place() {
    // Two 3x4 planes 0..24; the 2x2 window at row 1, column 2 of each.
    let mut tape = Tape::new();
    let x = tape.leaf(Tensor::new([1, 2, 3, 4], (0..24).map(|v| v as f32).collect()).unwrap());
    let y = tape.crop2d(&x, Window { top: 1, left: 2, h: 2, w: 2 }).unwrap();
    assert_eq!(y.shape().dims(), &[1, 2, 2, 2]);
    assert_eq!(y.value().data(), &[6., 7., 10., 11., 18., 19., 22., 23.]);
    let grads =
        tape.backward_with(&y, Tensor::new([1, 2, 2, 2], vec![1., 2., 3., 4., 5., 6., 7., 8.]).unwrap()).unwrap();
    #[rustfmt::skip]
    let expected = [
        0., 0., 0., 0.,  0., 0., 1., 2.,  0., 0., 3., 4.,
        0., 0., 0., 0.,  0., 0., 5., 6.,  0., 0., 7., 8.,
    ];
    assert_eq!(grads.get(&x).unwrap().data(), &expected);
}

#[test]
fn upsample_repeats_each_pixel_into_a_block() {
    // torch.nn.Upsample(scale_factor=2, mode='nearest') on [[1, 2], [3, 4]] (its documentation's
    // example), for two images at once.
    let x = Var::constant(Tensor::new([2, 1, 2, 2], vec![1., 2., 3., 4., 5., 6., 7., 8.]).unwrap());
    let y = Tape::new().upsample_nearest2x(&x).unwrap();
    assert_eq!(y.shape().dims(), &[2, 1, 4, 4]);
    #[rustfmt::skip]
    let first = [
        1., 1., 2., 2.,
        1., 1., 2., 2.,
        3., 3., 4., 4.,
        3., 3., 4., 4.,
    ];
    assert_eq!(&y.value().data()[..16], &first);
    assert_eq!(y.value().data()[16..], first.map(|v| v + 4.0));
}

#[test]
fn instance_norm_uses_the_biased_variance() {
    // One plane 1, 2, 3, 4: mean 2.5, biased variance 1.25, so x̂ = (x - 2.5)/√(1.25 + ε) =
    // ±1.3416, ±0.4472 (torch.nn.functional.instance_norm prints the same); then γ = 2, β = 0.5.
    let x = Var::constant(Tensor::new([1, 1, 2, 2], vec![1., 2., 3., 4.]).unwrap());
    let (gamma, beta) =
        (Var::constant(Tensor::new([1], vec![2.0]).unwrap()), Var::constant(Tensor::new([1], vec![0.5]).unwrap()));
    let y = Tape::new().instance_norm(x.clone(), &gamma, &beta, 1e-5).unwrap();
    for (&got, v) in y.value().data().iter().zip([1.0f64, 2., 3., 4.]) {
        let expected = 2.0 * (v - 2.5) / (1.25f64 + 1e-5).sqrt() + 0.5;
        assert!((got as f64 - expected).abs() <= 4.0 * f32::EPSILON as f64 * expected.abs(), "{got} vs {expected}");
    }
}

#[test]
fn batch_norm_of_one_image_is_instance_norm() {
    // With n = 1 a channel's batch is its one plane: the same statistics, the same values and
    // gradients, bit for bit.
    let (x, gamma, beta, dy) = (random(1, &[1, 5, 6, 7]), random(2, &[5]), random(3, &[5]), random(4, &[1, 5, 6, 7]));
    let run = |batch: bool| {
        let mut tape = Tape::new();
        let (xv, gv, bv) = (tape.leaf(x.clone()), tape.leaf(gamma.clone()), tape.leaf(beta.clone()));
        let y = if batch {
            tape.batch_norm_train(xv.clone(), &gv, &bv, 1e-5).unwrap().0
        } else {
            tape.instance_norm(xv.clone(), &gv, &bv, 1e-5).unwrap()
        };
        let saved = tape.saved_bytes();
        let grads = tape.backward_with(&y, dy.clone()).unwrap();
        (bits(y.value()), [&xv, &gv, &bv].map(|v| bits(grads.get(v).unwrap())), saved)
    };
    assert_eq!(run(true), run(false));
}

#[test]
fn batch_norm_eval_with_the_batch_statistics_is_the_training_forward() {
    // Inference normalises with whatever running statistics it is given; given the batch's own
    // (mean, biased variance) it computes exactly what training did.
    let (x, gamma, beta) = (random(5, &[3, 4, 5, 6]), random(6, &[4]), random(7, &[4]));
    let (gamma, beta) = (Var::constant(gamma), Var::constant(beta));
    let mut tape = Tape::new();
    let (train, stats) = tape.batch_norm_train(Var::constant(x.clone()), &gamma, &beta, 1e-5).unwrap();
    assert_eq!(stats.count, 3 * 5 * 6);
    let running = RunningStats::from_parts(stats.mean.clone(), stats.var.clone()).unwrap();
    let eval = tape.batch_norm_eval(Var::constant(x), &gamma, &beta, &running, 1e-5).unwrap();
    assert_eq!(bits(train.value()), bits(eval.value()));
    assert!(tape.is_empty(), "constants record nothing");

    // And the running estimates move only when the layer updates them.
    let mut layer_stats = RunningStats::new(4);
    layer_stats.update(&stats, RunningStats::DEFAULT_MOMENTUM).unwrap();
    assert_ne!(layer_stats, RunningStats::new(4));
}

#[test]
fn bad_shapes_and_sizes_are_typed_errors() {
    let mut tape = Tape::new();
    let x = Var::constant(Tensor::zeros([2, 3, 4, 5]));
    let c3 = Var::constant(Tensor::zeros([3]));
    let bad_geometry = |r: Result<Var, Error>| matches!(r, Err(Error::BadGeometry { .. }));
    let bad_shape = |r: Result<Var, Error>| matches!(r, Err(Error::ShapeMismatch { .. }));

    assert!(tape.reflection_pad2d(&x, 3).is_ok());
    assert!(bad_geometry(tape.reflection_pad2d(&x, 4)), "pad = h");
    assert!(bad_geometry(tape.reflection_pad2d(&Var::constant(Tensor::zeros([1, 1, 9, 2])), 2)), "pad = w");
    assert!(bad_shape(tape.reflection_pad2d(&Var::constant(Tensor::zeros([3, 4, 5])), 1)), "not NCHW");
    let image = Var::constant(Tensor::zeros([1, 1, 4, 5]));
    assert!(tape.crop2d(&image, Window { top: 1, left: 1, h: 3, w: 4 }).is_ok());
    assert!(bad_geometry(tape.crop2d(&image, Window { top: 2, left: 0, h: 3, w: 1 })), "past the bottom");
    assert!(bad_geometry(tape.crop2d(&image, Window { top: 0, left: 2, h: 1, w: 4 })), "past the right");
    assert!(bad_shape(tape.upsample_nearest2x(&Var::constant(Tensor::zeros([4, 5])))));

    assert!(bad_shape(tape.instance_norm(x.clone(), &Var::constant(Tensor::zeros([4])), &c3, 1e-5)), "gamma [4]");
    assert!(bad_shape(tape.instance_norm(x.clone(), &c3, &Var::constant(Tensor::zeros([1, 3])), 1e-5)), "beta [1, 3]");
    assert!(bad_geometry(tape.instance_norm(Var::constant(Tensor::zeros([2, 3, 0, 5])), &c3, &c3, 1e-5)));

    let one_value = Var::constant(Tensor::zeros([1, 3, 1, 1]));
    assert!(matches!(tape.batch_norm_train(one_value.clone(), &c3, &c3, 1e-5), Err(Error::BadGeometry { .. })));
    assert!(bad_shape(tape.batch_norm_eval(x.clone(), &c3, &c3, &RunningStats::new(2), 1e-5)));
    assert!(tape.is_empty());
}

#[test]
fn each_op_saves_only_what_its_tracked_inputs_need() {
    let (n, c, h, w) = (2, 3, 4, 5);
    let len = n * c * h * w;
    let (x, gamma, beta) = (random(8, &[n, c, h, w]), random(9, &[c]), random(10, &[c]));
    let running = RunningStats::new(c);
    // (x, γ, β) tracked -> bytes saved: x̂ is 4·len, γ/σ is 4 per group.
    let cases: [(&str, [bool; 3], usize, usize); 8] = [
        ("instance", [true, false, false], 4 * len, 4 * n * c),
        ("instance", [false, true, false], 4 * len, 0),
        ("instance", [false, false, true], 0, 0),
        ("instance", [true, true, true], 4 * len, 4 * n * c),
        ("train", [true, false, false], 4 * len, 4 * c),
        ("train", [false, false, true], 0, 0),
        ("eval", [true, false, false], 0, 4 * c),
        ("eval", [false, true, true], 4 * len, 0),
    ];
    for (op, tracked, xhat, dx_scale) in cases {
        let mut tape = Tape::new();
        let mut var = |t: &Tensor, on: bool| if on { tape.leaf(t.clone()) } else { Var::constant(t.clone()) };
        let (xv, gv, bv) = (var(&x, tracked[0]), var(&gamma, tracked[1]), var(&beta, tracked[2]));
        let _y = match op {
            "instance" => tape.instance_norm(xv.clone(), &gv, &bv, 1e-5).unwrap(),
            "train" => tape.batch_norm_train(xv.clone(), &gv, &bv, 1e-5).unwrap().0,
            _ => tape.batch_norm_eval(xv.clone(), &gv, &bv, &running, 1e-5).unwrap(),
        };
        assert_eq!(tape.saved_bytes(), xhat + dx_scale, "{op} with tracked (x, γ, β) = {tracked:?}");
    }

    let mut tape = Tape::new();
    let xv = tape.leaf(x);
    let padded = tape.reflection_pad2d(&xv, 2).unwrap();
    let up = tape.upsample_nearest2x(&padded).unwrap();
    assert_eq!(tape.saved_bytes(), 0, "padding and upsampling keep only shapes");
    let _ = tape.leaky_relu(up.clone(), 0.2);
    assert_eq!(tape.saved_bytes(), up.shape().numel(), "a one-byte mask");
}

/// The ReLUs write over their input when nothing else holds it, and only then: a value that is
/// also kept elsewhere (a layer's output kept for a loss) stays as it was. Either way y, the
/// mask, and the gradient are the same; an untracked ReLU saves no mask.
#[test]
fn relus_reuse_only_an_unshared_input() {
    let x = Tensor::new([1, 1, 2, 3], vec![-1.0, 2.0, -3.0, 4.0, 0.0, f32::NAN]).unwrap();
    for slope in [None, Some(0.5)] {
        let run = |share: bool| {
            let mut tape = Tape::new();
            let leaf = tape.leaf(x.clone());
            let h = tape.scale(&leaf, 1.0);
            let kept = share.then(|| h.value().clone());
            let before = h.value().data().as_ptr();
            let y = match slope {
                None => tape.relu(h),
                Some(s) => tape.leaky_relu(h, s),
            };
            let reused = y.value().data().as_ptr() == before;
            let saved = tape.saved_bytes();
            let grads = tape.backward_with(&y, Tensor::new([1, 1, 2, 3], vec![1.0; 6]).unwrap()).unwrap();
            if let Some(kept) = kept {
                assert_eq!(bits(&kept), bits(&x), "the other holder's value is unchanged");
            }
            (bits(y.value()), bits(grads.get(&leaf).unwrap()), saved, reused)
        };
        let (alone, shared) = (run(false), run(true));
        assert!(alone.3 && !shared.3, "{slope:?}: in place exactly when unshared");
        assert_eq!(alone.0, shared.0, "{slope:?}: y");
        assert_eq!(alone.1, shared.1, "{slope:?}: dx");
        assert_eq!((alone.2, shared.2), (6, 6), "{slope:?}: a one-byte mask");
        let expected: Vec<f32> = match slope {
            None => vec![0.0, 2.0, 0.0, 4.0, 0.0, 0.0],
            Some(s) => vec![-s, 2.0, -3.0 * s, 4.0, 0.0, f32::NAN],
        };
        assert_eq!(alone.0, bits(&Tensor::new([1, 1, 2, 3], expected).unwrap()), "{slope:?}: values");
    }
    let mut tape = Tape::new();
    let _ = tape.relu(Var::constant(x.clone()));
    let _ = tape.leaky_relu(Var::constant(x), 0.2);
    assert_eq!(tape.saved_bytes(), 0, "untracked: no mask");
}

/// The normalisations write over their input as the ReLUs do, and only when nothing else holds
/// it: the same y, x̂ and gradients either way.
#[test]
fn norms_reuse_only_an_unshared_input() {
    let x = random(11, &[2, 3, 4, 5]);
    let (gamma, beta) = (random(12, &[3]), random(13, &[3]));
    for op in ["instance", "train", "eval"] {
        let run = |share: bool| {
            let mut tape = Tape::new();
            let leaf = tape.leaf(x.clone());
            let (g, b) = (tape.leaf(gamma.clone()), tape.leaf(beta.clone()));
            let h = tape.scale(&leaf, 1.0);
            let kept = share.then(|| h.value().clone());
            let before = h.value().data().as_ptr();
            let running = RunningStats::new(3);
            let y = match op {
                "instance" => tape.instance_norm(h, &g, &b, 1e-5).unwrap(),
                "train" => tape.batch_norm_train(h, &g, &b, 1e-5).unwrap().0,
                _ => tape.batch_norm_eval(h, &g, &b, &running, 1e-5).unwrap(),
            };
            let reused = y.value().data().as_ptr() == before;
            let saved = tape.saved_bytes();
            let grads = tape.backward_with(&y, random(14, &[2, 3, 4, 5])).unwrap();
            if let Some(kept) = kept {
                assert_eq!(bits(&kept), bits(&x), "{op}: the other holder's value is unchanged");
            }
            let grads = [&leaf, &g, &b].map(|v| bits(grads.get(v).unwrap()));
            (bits(y.value()), grads, saved, reused)
        };
        let (alone, shared) = (run(false), run(true));
        assert!(alone.3 && !shared.3, "{op}: in place exactly when unshared");
        assert_eq!(alone.0, shared.0, "{op}: y");
        assert_eq!(alone.1, shared.1, "{op}: gradients");
        assert_eq!(alone.2, shared.2, "{op}: saved bytes");
    }
}
