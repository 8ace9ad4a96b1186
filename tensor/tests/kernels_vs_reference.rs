//! Every fast kernel against its scalar twin in `kernels::reference`, on random shapes that
//! include ragged edges (sizes that are not multiples of MR, NR or the vector width, k = 0 and
//! k crossing the KC block), with outputs pre-filled with NaN where the kernel must only write.

mod common;

use common::{assert_within, dot_bound};
use proptest::prelude::*;
use tensor::kernels::conv::{self, ConvAlgorithm, ConvAlgorithms, ConvGeometry, InputView, PackedConv};
use tensor::kernels::gemm::{
    gemm,
    params::{KC, MR, NR},
    AOperand, Epilogue, MatRef, PackedA,
};
use tensor::kernels::norm::{self, NormGeometry, NormGrads, NormParams, Statistics};
use tensor::kernels::{elementwise, gram, pad, pool, reference, upsample, winograd};
use tensor::Rng;

fn abs(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| x.abs()).collect()
}

/// ReLU as the kernels define it (NaN to 0), to hold the fused ReLU to.
fn relu(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| if x > 0.0 { x } else { 0.0 }).collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// A matrix stored either row-major or as the transpose of a row-major matrix.
fn view(data: &[f32], rows: usize, cols: usize, transposed: bool) -> MatRef<'_> {
    if transposed {
        MatRef::row_major(data, cols, rows).t()
    } else {
        MatRef::row_major(data, rows, cols)
    }
}

#[allow(clippy::too_many_arguments)]
fn check_gemm(m: usize, n: usize, k: usize, ta: bool, tb: bool, bias: bool, accumulate: bool, packed: bool, seed: u64) {
    let mut rng = Rng::new(seed);
    let (a, b, bias_v, c0) = (rng.vec(m * k), rng.vec(k * n), rng.vec(m), rng.vec(m * n));
    let (av, bv) = (view(&a, m, k, ta), view(&b, k, n, tb));
    let bias = bias.then_some(bias_v.as_slice());
    // beta = 0 contract: C starts as NaN and must be overwritten.
    let mut fast = if accumulate { c0.clone() } else { vec![f32::NAN; m * n] };
    let pa = PackedA::new(av);
    let a_op = if packed { AOperand::Packed(pa.view()) } else { AOperand::View(av) };
    gemm(a_op, &bv, &mut fast, Epilogue { bias, accumulate, ..Epilogue::default() });
    // The fused ReLU clamps the finished sum, whatever the number of K blocks.
    let mut fused = if accumulate { c0.clone() } else { vec![f32::NAN; m * n] };
    gemm(a_op, &bv, &mut fused, Epilogue { bias, accumulate, relu: true, ..Epilogue::default() });
    assert_eq!(bits(&fused), bits(&relu(&fast)), "gemm {m}x{k}x{n}: fused ReLU != ReLU of the result");
    let mut exact = c0.clone();
    reference::gemm(&av, &bv, &mut exact, bias, accumulate);
    let (aa, ba) = (abs(&a), abs(&b));
    let mut abs_sum = abs(&c0);
    reference::gemm(
        &view(&aa, m, k, ta),
        &view(&ba, k, n, tb),
        &mut abs_sum,
        bias.map(|_| abs(&bias_v)).as_deref(),
        accumulate,
    );
    let bound: Vec<f32> = abs_sum.iter().map(|&s| dot_bound(k + 2, s)).collect();
    assert_within(&format!("gemm {m}x{k}x{n} ta={ta} tb={tb}"), &fast, &exact, &bound);
}

/// Every convolution kernel against its reference on a batch of `n` `h x w` images: im2col,
/// forward (and the fused ReLU), backward to the input, to the weights and to the bias, each
/// into an output pre-filled with NaN. The forward and backward-to-input passes run
/// `algorithm`; the direct ones are held to a dot product's error bound, the Winograd ones to
/// theirs (`winograd::ERROR_GROWTH`, over the magnitudes of the terms the algorithm adds).
fn check_conv(g: ConvGeometry, algorithm: ConvAlgorithm, n: usize, h: usize, w: usize, seed: u64) {
    let ConvGeometry { cin, cout, kh, kw, .. } = g;
    let (ho, wo) = g.output_size(h, w).expect("kernel fits");
    let what = |pass: &str| format!("conv {pass} ({algorithm:?}), {g:?} on {n}x{h}x{w}");
    let mut rng = Rng::new(seed);
    let (x, wt, b) = (rng.vec(n * cin * h * w), rng.vec(cout * g.patch_len()), rng.vec(cout));
    let packed = PackedConv::with_algorithms(&wt, &b, g, ConvAlgorithms::both(algorithm));
    assert_eq!(packed.algorithms(), ConvAlgorithms::both(algorithm));
    let chosen = PackedConv::new(&wt, &b, g);
    assert_eq!(chosen.bytes(), PackedConv::bytes_for(g, ConvAlgorithms::for_geometry(g)), "{}", what("bytes_for"));
    let winograd = algorithm == ConvAlgorithm::Winograd;

    let x0 = &x[..cin * h * w];
    assert_eq!(bits(&conv::im2col(x0, g, h, w)), bits(&reference::im2col(x0, g, h, w)), "{}", what("im2col"));
    let mut y = vec![f32::NAN; n * cout * ho * wo];
    conv::conv_forward(&packed, &x, n, h, w, &mut y);
    let exact = reference::conv2d(&x, &wt, &b, g, n, h, w);
    let bound: Vec<f32> = if winograd {
        let (twin, terms) = winograd_twin(&x, &wt, &b, g, (n, h, w));
        assert_within(&what("Winograd twin"), &twin, &exact, &f64_bounds(&exact, &terms, cin));
        terms.iter().map(|&s| dot_bound(cin + winograd::ERROR_GROWTH, s)).collect()
    } else {
        let abs_sum = reference::conv2d(&abs(&x), &abs(&wt), &abs(&b), g, n, h, w);
        abs_sum.iter().map(|&s| dot_bound(g.patch_len() + 1, s)).collect()
    };
    assert_within(&what("forward"), &y, &exact, &bound);
    let mut fused = vec![f32::NAN; y.len()];
    conv::conv_relu_forward(&packed, &x, n, h, w, &mut fused);
    assert_eq!(bits(&fused), bits(&relu(&y)), "{}: fused conv + ReLU != ReLU of the conv", what("forward"));

    // dX sums cout·kh·kw terms per input pixel, whichever route (flipped conv or col2im).
    let dy = rng.vec(n * cout * ho * wo);
    let mut dx = vec![f32::NAN; n * cin * h * w];
    conv::conv_backward_input(&packed, &dy, n, h, w, &mut dx);
    let exact = reference::conv2d_backward_input(&dy, &wt, g, n, h, w);
    let bound: Vec<f32> = if winograd {
        // dX = conv(dY, W'), W' flipped and in/out swapped, padding 2 - p.
        let t = ConvGeometry { cin: cout, cout: cin, pad_h: 2 - g.pad_h, pad_w: 2 - g.pad_w, ..g };
        let flipped: Vec<f32> = (0..wt.len())
            .map(|i| {
                let (ci, co, k) = (i / (cout * 9), i / 9 % cout, i % 9);
                wt[(co * cin + ci) * 9 + 8 - k]
            })
            .collect();
        let (twin, terms) = winograd_twin(&dy, &flipped, &vec![0.0; cin], t, (n, ho, wo));
        assert_within(&what("Winograd twin, backward"), &twin, &exact, &f64_bounds(&exact, &terms, cout));
        terms.iter().map(|&s| dot_bound(cout + winograd::ERROR_GROWTH, s)).collect()
    } else {
        let abs_sum = reference::conv2d_backward_input(&abs(&dy), &abs(&wt), g, n, h, w);
        abs_sum.iter().map(|&s| dot_bound(cout * kh * kw, s)).collect()
    };
    assert_within(&what("backward input"), &dx, &exact, &bound);

    // dW and db sum n·ho·wo terms each (dW in KC blocks per image, then image by image);
    // Winograd's dW sums n·tiles terms, each a product of transforms (its twin's magnitudes).
    let (mut dw, mut db) = (vec![f32::NAN; wt.len()], vec![f32::NAN; cout]);
    conv::conv_backward_weight(&packed, &x, n, h, w, &dy, &mut dw);
    conv::conv_backward_bias(&dy, n, ho * wo, &mut db);
    let (edw, edb) = reference::conv2d_backward_weight(&x, &dy, g, n, h, w);
    let (adw, adb) = reference::conv2d_backward_weight(&abs(&x), &abs(&dy), g, n, h, w);
    let bound = |a: &[f32]| a.iter().map(|&s| dot_bound(n * ho * wo + n, s)).collect::<Vec<_>>();
    let dw_bound: Vec<f32> = if winograd {
        let twin = reference::winograd_conv3x3_backward_weight(&x, &dy, g, (n, h, w), false);
        let terms = reference::winograd_conv3x3_backward_weight(&x, &dy, g, (n, h, w), true);
        let tiles = n * ho.div_ceil(4) * wo.div_ceil(4);
        assert_within(&what("Winograd twin, weight gradient"), &twin, &edw, &f64_bounds(&edw, &terms, tiles));
        terms.iter().map(|&s| dot_bound(tiles + winograd::ERROR_GROWTH, s)).collect()
    } else {
        bound(&adw)
    };
    assert_within(&what("backward weight"), &dw, &edw, &dw_bound);
    assert_within(&what("backward bias"), &db, &edb, &bound(&adb));
}

/// The Winograd twin's output and the magnitudes of the terms it adds (its error scale).
fn winograd_twin(
    x: &[f32],
    wt: &[f32],
    b: &[f32],
    g: ConvGeometry,
    nhw: (usize, usize, usize),
) -> (Vec<f32>, Vec<f32>) {
    (reference::winograd_conv3x3(x, wt, b, g, nhw, false), reference::winograd_conv3x3(x, wt, b, g, nhw, true))
}

/// The twin works in f64, so it agrees with the direct reference (also f64) to within f64
/// rounding of its terms' magnitudes, plus each side's final rounding to f32.
fn f64_bounds(exact: &[f32], terms: &[f32], cin: usize) -> Vec<f32> {
    exact.iter().zip(terms).map(|(&e, &t)| 2.0 * f32::EPSILON * e.abs() + f64_sum_bound(e, t, 64 * (cin + 4))).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn gemm_matches_reference(
        m in 0..=3 * MR + 1, n in 0..=2 * NR + 3, k in prop_oneof![0..=17usize, (KC - 2)..=(KC + 9)],
        ta: bool, tb: bool, bias: bool, accumulate: bool, packed: bool, seed: u64,
    ) {
        check_gemm(m, n, k, ta, tb, bias, accumulate, packed, seed);
    }

    #[test]
    fn conv_matches_reference(
        // Widths up to 2·NR + 11: output rows of whole micro-panels (read in place from the
        // image, at stride 2 too) and of panels that wrap to the next row (packed). Couts up to
        // 2·MR + 1 and kernels up to 9x9 (K = 405, across a KC block) give ragged blocks of A.
        n in 1..=3usize, cin in 1..=5usize, cout in 1..=2 * MR + 1, h in 1..=13usize, w in 1..=2 * NR + 11,
        (kh, kw) in prop_oneof![Just((3usize, 3usize)), Just((1, 1)), Just((9, 9)), Just((5, 3)), Just((2, 2))],
        pads: (usize, usize), stride in 1..=2usize, seed: u64,
    ) {
        // Padding below the kernel size, as PackedConv requires.
        let g = ConvGeometry { cin, cout, kh, kw, pad_h: pads.0 % kh, pad_w: pads.1 % kw, stride };
        prop_assume!(g.output_size(h, w).is_some());
        check_conv(g, ConvAlgorithm::Direct, n, h, w, seed);
    }

    #[test]
    fn winograd_conv_matches_reference(
        // Sizes with ragged tiles (h, w not multiples of 4), tile rows that wrap inside one
        // group of LANES tiles, and several batches; every padding the kernel allows.
        n in 1..=2usize, cin in 1..=9usize, cout in 1..=2 * MR + 1, h in 1..=14usize, w in 1..=2 * NR + 11,
        pads in (0..3usize, 0..3usize), seed: u64,
    ) {
        let g = ConvGeometry { cin, cout, kh: 3, kw: 3, pad_h: pads.0, pad_w: pads.1, stride: 1 };
        prop_assume!(g.output_size(h, w).is_some());
        check_conv(g, ConvAlgorithm::Winograd, n, h, w, seed);
    }

    #[test]
    fn pooling_matches_reference(c in 1..=4usize, h in 1..=9usize, w in 1..=9usize, levels in 1..=4u64, nans: bool, seed: u64) {
        // Few distinct levels make ties common: the first maximum must win, as in PyTorch.
        // Some NaNs (one level in five or so, when asked) must win over numbers and propagate.
        let mut rng = Rng::new(seed);
        let x: Vec<f32> = (0..c * h * w)
            .map(|_| match rng.next_u64() % (levels + 2) {
                r if r > levels => if nans { f32::NAN } else { 0.0 },
                r => r as f32,
            })
            .collect();
        let (ho, wo) = (h / 2, w / 2);
        let (mut y, mut am) = (vec![0.5; c * ho * wo], vec![9u8; c * ho * wo]);
        pool::max_pool2(&x, c, h, w, &mut y, &mut am);
        let (ey, eam) = reference::max_pool2(&x, c, h, w);
        prop_assert_eq!(bits(&y), bits(&ey));
        prop_assert_eq!(&am, &eam);
        let dy = rng.vec(c * ho * wo);
        let mut dx = vec![f32::NAN; c * h * w];
        pool::max_pool2_backward(&dy, &am, c, h, w, &mut dx);
        prop_assert_eq!(dx, reference::max_pool2_backward(&dy, &am, c, h, w));
    }

    #[test]
    // Up to 56 rows: G in up to three bands of 24 rows, the last ragged.
    fn gram_matches_reference(c in 1..=9 * MR + 2, n in 0..=300usize, seed: u64) {
        let mut rng = Rng::new(seed);
        let (f, dg) = (rng.vec(c * n), rng.vec(c * c));
        let mut g = vec![f32::NAN; c * c];
        gram::gram(&f, c, n, &mut g);
        let fa = abs(&f);
        let bound: Vec<f32> = reference::gram(&fa, c, n).iter().map(|&s| dot_bound(n + 1, s)).collect();
        assert_within("gram", &g, &reference::gram(&f, c, n), &bound);
        // Computed as one triangle and mirrored: exactly symmetric.
        for i in 0..c {
            for j in 0..c {
                prop_assert_eq!(g[i * c + j].to_bits(), g[j * c + i].to_bits());
            }
        }

        let mut df = f.clone();
        gram::gram_backward(&mut df, &dg, c, n);
        let bound: Vec<f32> = reference::gram_backward(&fa, &abs(&dg), c, n).iter().map(|&s| dot_bound(2 * c + 2, s)).collect();
        assert_within("gram backward", &df, &reference::gram_backward(&f, &dg, c, n), &bound);
    }

    #[test]
    fn relu_and_neighbour_diff_are_exact(planes in 1..=3usize, h in 1..=7usize, w in 1..=7usize, seed: u64) {
        let mut rng = Rng::new(seed);
        let x = rng.vec(planes * h * w);
        let (mut y, mut mask) = (vec![f32::NAN; x.len()], vec![7u8; x.len()]);
        elementwise::relu(&x, &mut y, Some(&mut mask));
        for i in 0..x.len() {
            prop_assert_eq!(y[i], x[i].max(0.0));
            prop_assert_eq!(mask[i], (x[i] > 0.0) as u8);
        }
        // In place, with and without the mask: the same bits.
        let (mut inplace, mut mask2) = (x.clone(), vec![7u8; x.len()]);
        elementwise::relu_in_place(&mut inplace, Some(&mut mask2));
        prop_assert_eq!(bits(&inplace), bits(&y));
        prop_assert_eq!(&mask2, &mask);
        let mut inplace = x.clone();
        elementwise::relu_in_place(&mut inplace, None);
        prop_assert_eq!(bits(&inplace), bits(&y));
        let mut dw = vec![f32::NAN; planes * h * (w - 1)];
        elementwise::neighbour_diff(&x, planes, h, w, false, &mut dw);
        let mut dh = vec![f32::NAN; planes * (h - 1) * w];
        elementwise::neighbour_diff(&x, planes, h, w, true, &mut dh);
        for p in 0..planes {
            for i in 0..h {
                for j in 0..w {
                    let at = |i: usize, j: usize| x[(p * h + i) * w + j];
                    if j + 1 < w {
                        prop_assert_eq!(dw[(p * h + i) * (w - 1) + j], at(i, j + 1) - at(i, j));
                    }
                    if i + 1 < h {
                        prop_assert_eq!(dh[(p * (h - 1) + i) * w + j], at(i + 1, j) - at(i, j));
                    }
                }
            }
        }
    }
}

#[test]
fn gemm_identity_kernels() {
    // A·I = A and I·B = B exactly (MM's test_a_kernel), across ragged sizes.
    for &(m, n) in &[(1, 1), (MR, NR), (MR + 1, NR - 1), (17, 33), (2 * MR + 5, 3 * NR + 7)] {
        let mut rng = Rng::new(m as u64 * 131 + n as u64);
        let a = rng.vec(m * n);
        let eye = |d: usize| (0..d * d).map(|i| if i % (d + 1) == 0 { 1.0 } else { 0.0 }).collect::<Vec<f32>>();
        let (in_, im) = (eye(n), eye(m));
        let mut c = vec![f32::NAN; m * n];
        gemm(AOperand::View(MatRef::row_major(&a, m, n)), &MatRef::row_major(&in_, n, n), &mut c, Epilogue::default());
        assert_eq!(c, a, "A·I = A for {m}x{n}");
        let mut c = vec![f32::NAN; m * n];
        gemm(AOperand::View(MatRef::row_major(&im, m, m)), &MatRef::row_major(&a, m, n), &mut c, Epilogue::default());
        assert_eq!(c, a, "I·B = B for {m}x{n}");
    }
}

#[test]
fn gemm_large_shapes_match_reference() {
    // Sizes that cross every cache block (MC, NC, KC) at least once.
    check_gemm(150, 1100, 600, false, false, true, false, true, 1);
    check_gemm(300, 70, 520, true, true, false, true, false, 2);
}

#[test]
fn gram_over_column_slices_matches_reference() {
    // Long enough to be cut into slices, with a ragged last one.
    let c = 5;
    let n = 2 * gram::SLICE_FLOATS / c + 37;
    let f = Rng::new(3).vec(c * n);
    let mut g = vec![f32::NAN; c * c];
    gram::gram(&f, c, n, &mut g);
    let bound: Vec<f32> = reference::gram(&abs(&f), c, n).iter().map(|&s| dot_bound(n + 1, s)).collect();
    assert_within("sliced gram", &g, &reference::gram(&f, c, n), &bound);
}

#[test]
fn conv_backward_input_col2im_route_matches_reference() {
    // VGG's conv1_1 shape (3 in, 64 out) takes the col2im route; odd sizes test its edges.
    check_conv(ConvGeometry::same3x3(3, 64), ConvAlgorithm::Direct, 1, 13, 18, 11);
}

#[test]
fn winograd_vgg_like_shapes_match_reference() {
    // Many tiles, so several batches run on several threads; and an input deep enough (300
    // channels) to cross a KC block of the 36 products.
    check_conv(ConvGeometry::same3x3(16, 24), ConvAlgorithm::Winograd, 1, 37, 45, 31);
    check_conv(ConvGeometry::same3x3(300, 7), ConvAlgorithm::Winograd, 1, 6, 9, 32);
    // The weight gradient's 36 products at a depth of two images' tiles, with channels on both
    // sides past one micro-panel (MR rows of ci, NR columns of co would be 6 and 16 or 32).
    check_conv(ConvGeometry::same3x3(40, 36), ConvAlgorithm::Winograd, 2, 21, 70, 33);
    // One row of 76 tiles, so that batches start and end inside it: each copies only its own
    // columns of the window rows, the last reaching the right border.
    let wide = ConvGeometry { pad_w: 2, ..ConvGeometry::same3x3(8, 8) };
    check_conv(wide, ConvAlgorithm::Winograd, 1, 4, 300, 34);
    // Which passes take the Winograd route by default: the forward and the input gradient
    // wherever there are 16 channels or more each way (VGG's layers but conv1_1, the
    // feed-forward network's residual blocks and upsampling layers); the weight gradient never
    // (it measured slower).
    let (direct, winograd) = (ConvAlgorithm::Direct, ConvAlgorithm::Winograd);
    let by = |cin, cout| {
        let a = ConvAlgorithms::for_geometry(ConvGeometry::same3x3(cin, cout));
        (a.forward, a.input_gradient, a.weight_gradient)
    };
    assert_eq!(by(3, 64), (direct, direct, direct));
    assert_eq!(by(8, 64), (direct, direct, direct));
    assert_eq!(by(64, 8), (direct, direct, direct));
    assert_eq!(by(32, 16), (winograd, winograd, direct));
    assert_eq!(by(64, 64), (winograd, winograd, direct));
}

/// Keeping Winograd's transformed weights (`Transforms::Kept`) changes memory and time only:
/// both passes give the same bits as transforming per call, on shapes with ragged micro-panels
/// and a KC block crossed each way, and `bytes_for` counts what each form holds.
#[test]
fn kept_winograd_transforms_give_the_same_bits_as_per_call() {
    for (cin, cout, n, h, w) in [(32, 40, 1, 9, 14), (300, 37, 2, 7, 5), (37, 300, 1, 6, 6)] {
        let g = ConvGeometry::same3x3(cin, cout);
        let mut rng = Rng::new((cin * cout) as u64);
        let (x, wt, b, dy) =
            (rng.vec(n * cin * h * w), rng.vec(cout * cin * 9), rng.vec(cout), rng.vec(n * cout * h * w));
        let per_call = ConvAlgorithms::both(ConvAlgorithm::Winograd);
        let run = |a: ConvAlgorithms| {
            let p = PackedConv::with_algorithms(&wt, &b, g, a);
            assert_eq!(p.algorithms(), a);
            assert_eq!(p.bytes(), PackedConv::bytes_for(g, a), "{a:?}");
            let (mut y, mut dx) = (vec![0.0; dy.len()], vec![0.0; x.len()]);
            conv::conv_relu_forward(&p, &x, n, h, w, &mut y);
            conv::conv_backward_input(&p, &dy, n, h, w, &mut dx);
            (bits(&y), bits(&dx))
        };
        assert_eq!(run(per_call), run(per_call.kept()), "{cin} -> {cout}");
        // Kept: both passes' transforms on top of the kernels, 36 floats per kernel (4x its
        // taps), each pass's rows padded to whole micro-panels; per call, the kernels only, and
        // the shared buffer sized for the larger pass.
        let kernels = 4 * cout * cin * 9;
        let padded = |rows: usize| rows.div_ceil(MR) * MR;
        let kept = PackedConv::bytes_for(g, per_call.kept()) - PackedConv::bytes_for(g, per_call);
        assert_eq!(kept, 4 * 36 * (padded(cout) * cin + padded(cin) * cout), "{cin} -> {cout}");
        assert_eq!(PackedConv::transformed_bytes_for(g, per_call.kept()), 0);
        assert!(PackedConv::transformed_bytes_for(g, per_call) >= 4 * kernels);
    }
}

/// The ReLU mask written in the convolution's write-back (`conv_relu_mask_forward`) is `y > 0`
/// of the very output the plain forward gives, by either algorithm: several K blocks (direct,
/// 40·9 > KC), ragged tiles and two images (Winograd), and a NaN input, whose pixels' mask is 0.
#[test]
fn fused_relu_mask_is_the_outputs_sign() {
    for (algorithm, n, h, w) in [(ConvAlgorithm::Direct, 1, 11, 13), (ConvAlgorithm::Winograd, 2, 9, 14)] {
        let g = ConvGeometry::same3x3(40, 36);
        let mut rng = Rng::new(7);
        let (mut x, wt, b) = (rng.vec(n * 40 * h * w), rng.vec(36 * 40 * 9), rng.vec(36));
        x[3 * w + 5] = f32::NAN;
        let p = PackedConv::with_algorithms(&wt, &b, g, ConvAlgorithms::both(algorithm));
        let len = n * 36 * h * w;
        let (mut plain, mut y, mut mask) = (vec![0.0; len], vec![0.0; len], vec![7u8; len]);
        conv::conv_relu_forward(&p, &x, n, h, w, &mut plain);
        conv::conv_relu_mask_forward(&p, &x, n, h, w, &mut y, &mut mask);
        assert_eq!(bits(&y), bits(&plain), "{algorithm:?}: the same output");
        let expected: Vec<u8> = y.iter().map(|&v| (v > 0.0) as u8).collect();
        assert_eq!(mask, expected, "{algorithm:?}: mask = (y > 0)");
        assert!(mask.contains(&0) && mask.contains(&1), "{algorithm:?}: both signs seen");
    }
}

/// The few-output-channel route (`kernels::few_outputs`, stride 1 and at most 4 outputs) on
/// rows wider than its register blocks (`cout x NV` vectors: 384 pixels for one output on
/// AVX-512, 96 on AVX2), whose last block overlaps the one before, and on narrower rows, which
/// take its scalar loop; with and without zero padding, its fused ReLU and the ReLU's mask.
#[test]
fn few_output_channels_match_reference() {
    for (cout, k, pad, h, w) in
        [(3, 9, 0, 12, 300), (1, 3, 1, 5, 411), (2, 5, 2, 6, 200), (4, 3, 0, 4, 130), (3, 9, 4, 9, 20)]
    {
        let g = ConvGeometry { cin: 5, cout, kh: k, kw: k, pad_h: pad, pad_w: pad, stride: 1 };
        assert!(tensor::kernels::few_outputs::takes(g));
        check_conv(g, ConvAlgorithm::Direct, 2, h, w, cout as u64);

        let (ho, wo) = g.output_size(h, w).unwrap();
        let mut rng = Rng::new(9);
        let (mut x, wt, b) = (rng.vec(2 * 5 * h * w), rng.vec(cout * g.patch_len()), rng.vec(cout));
        x[2 * w + 7] = f32::NAN;
        let p = PackedConv::new(&wt, &b, g);
        let len = 2 * cout * ho * wo;
        let (mut plain, mut y, mut mask) = (vec![0.0; len], vec![f32::NAN; len], vec![7u8; len]);
        conv::conv_relu_forward(&p, &x, 2, h, w, &mut plain);
        conv::conv_relu_mask_forward(&p, &x, 2, h, w, &mut y, &mut mask);
        assert_eq!(bits(&y), bits(&plain), "{g:?}: the same output");
        assert_eq!(mask, y.iter().map(|&v| (v > 0.0) as u8).collect::<Vec<_>>(), "{g:?}: mask = (y > 0)");
        assert!(mask.contains(&0) && mask.contains(&1), "{g:?}: both signs seen");
    }
}

/// The weight gradient by sliding rows (`kernels::sliding_gradient`, stride 1 and at most 32
/// outputs), against the reference through `check_conv`: every block of output channels it
/// picks (cout 16, 12, 9, 10 and 7 take blocks of 8, 4, 3, 2 and 1), blocks of 3 kernel columns
/// and of 1 (kw = 9 and 3, then 5 and 1), rows a multiple of the vector (LANES on either
/// layout: 48 pixels), rows whose last vector overlaps the one before, rows narrower than one
/// vector, zero padding written out first, bands of rows (up to 40 output rows) and two images.
#[test]
fn sliding_weight_gradient_matches_reference() {
    for (cin, cout, k, pad, h, w) in [
        (3, 16, 9, 0, 20, 56),
        (5, 12, 3, 1, 40, 48),
        (4, 9, 9, 4, 12, 30),
        (6, 10, 5, 0, 9, 11),
        (2, 7, 1, 0, 6, 70),
        (32, 32, 3, 0, 7, 21),
    ] {
        let g = ConvGeometry { cin, cout, kh: k, kw: k, pad_h: pad, pad_w: pad, stride: 1 };
        assert!(tensor::kernels::sliding_gradient::takes(g), "{g:?}");
        check_conv(g, ConvAlgorithm::Direct, 2, h, w, cout as u64);
    }
    let wide = ConvGeometry { cin: 4, cout: 33, kh: 3, kw: 3, pad_h: 0, pad_w: 0, stride: 1 };
    let strided = ConvGeometry { stride: 2, cout: 8, ..wide };
    assert!(!tensor::kernels::sliding_gradient::takes(wide) && !tensor::kernels::sliding_gradient::takes(strided));
}

/// `conv_forward_new` (an output never zeroed, only written, as the tape's convolutions run)
/// has the bits of `conv_forward` into a buffer filled with NaN, with and without the ReLU and
/// its mask, on every route: the GEMM with one K block and with several (K = 360 > KC, so later
/// blocks add onto what the first wrote), stride 2, Winograd and the sliding windows; and
/// `conv_backward_input_new` against `conv_backward_input` on the same layers.
#[test]
fn conv_into_a_new_buffer_matches_conv_into_a_held_one() {
    let few = ConvGeometry { cin: 5, cout: 3, kh: 9, kw: 9, pad_h: 4, pad_w: 4, stride: 1 };
    let strided = ConvGeometry { cin: 6, cout: 10, kh: 3, kw: 3, pad_h: 1, pad_w: 1, stride: 2 };
    for (g, algorithm) in [
        (ConvGeometry::same3x3(8, 20), ConvAlgorithm::Direct),
        (ConvGeometry::same3x3(40, 20), ConvAlgorithm::Direct),
        (strided, ConvAlgorithm::Direct),
        (ConvGeometry::same3x3(40, 36), ConvAlgorithm::Winograd),
        (few, ConvAlgorithm::Direct),
    ] {
        let (n, h, w) = (2, 13, 150);
        let (ho, wo) = g.output_size(h, w).unwrap();
        let len = n * g.cout * ho * wo;
        let mut rng = Rng::new(5);
        let (x, wt, b) = (rng.vec(n * g.cin * h * w), rng.vec(g.cout * g.patch_len()), rng.vec(g.cout));
        let p = PackedConv::with_algorithms(&wt, &b, g, ConvAlgorithms::both(algorithm));
        let mut held = vec![f32::NAN; len];
        conv::conv_forward(&p, &x, n, h, w, &mut held);
        assert_eq!(
            bits(&conv::conv_forward_new(&p, &x, n, h, w, InputView::default(), false, None)),
            bits(&held),
            "{g:?} {algorithm:?}"
        );
        let (mut held, mut held_mask, mut mask) = (vec![f32::NAN; len], vec![7u8; len], vec![9u8; len]);
        conv::conv_relu_mask_forward(&p, &x, n, h, w, &mut held, &mut held_mask);
        let new = conv::conv_forward_new(&p, &x, n, h, w, InputView::default(), true, Some(&mut mask));
        assert_eq!(bits(&new), bits(&held), "{g:?} {algorithm:?}, ReLU");
        assert_eq!(mask, held_mask, "{g:?} {algorithm:?}, mask");
        assert!(held_mask.contains(&0) && held_mask.contains(&1));

        // The input gradient likewise, by the layer's own route (Winograd's, the flipped
        // kernel's, or col2im's for stride 2).
        let dy = rng.vec(len);
        let mut held = vec![f32::NAN; x.len()];
        conv::conv_backward_input(&p, &dy, n, h, w, &mut held);
        assert_eq!(bits(&conv::conv_backward_input_new(&p, &dy, n, h, w)), bits(&held), "{g:?} {algorithm:?}, dx");
    }
}

/// Each output of the few-output-channel route has the same bits whether a vector block or the
/// scalar loop computed it: a 12-pixel-wide window of a wide image (scalar) against the wide
/// image (vectors), both unpadded.
#[test]
fn few_output_channels_vector_and_scalar_paths_agree() {
    let (cin, k, h, w, win) = (4, 9, 10, 520, 20);
    let g = ConvGeometry { cin, cout: 3, kh: k, kw: k, pad_h: 0, pad_w: 0, stride: 1 };
    let mut rng = Rng::new(3);
    let (x, wt, b) = (rng.vec(cin * h * w), rng.vec(3 * g.patch_len()), rng.vec(3));
    let p = PackedConv::new(&wt, &b, g);
    let (ho, wo) = g.output_size(h, w).unwrap();
    let mut wide = vec![0.0; 3 * ho * wo];
    conv::conv_forward(&p, &x, 1, h, w, &mut wide);
    for left in [0, 117, w - win] {
        let narrow_x: Vec<f32> = x.chunks_exact(w).flat_map(|row| &row[left..left + win]).copied().collect();
        let nwo = win - k + 1;
        let mut narrow = vec![0.0; 3 * ho * nwo];
        conv::conv_forward(&p, &narrow_x, 1, h, win, &mut narrow);
        for (c, (n_plane, w_plane)) in narrow.chunks_exact(ho * nwo).zip(wide.chunks_exact(ho * wo)).enumerate() {
            for (n_row, w_row) in n_plane.chunks_exact(nwo).zip(w_plane.chunks_exact(wo)) {
                assert_eq!(bits(n_row), bits(&w_row[left..left + nwo]), "channel {c}, columns from {left}");
            }
        }
    }
}

/// `conv_backward_input_add` adds the input gradient into the one held, with the bits of
/// computing it apart and adding (`held + apart`), by every route: Winograd (in its output
/// transform), the flipped kernel and col2im (apart, then added).
#[test]
fn backward_input_added_in_place_matches_apart_then_added() {
    let routes = [
        (ConvGeometry::same3x3(40, 36), ConvAlgorithm::Winograd),
        (ConvGeometry::same3x3(40, 36), ConvAlgorithm::Direct),
        (ConvGeometry { cin: 3, cout: 8, kh: 9, kw: 9, pad_h: 0, pad_w: 0, stride: 1 }, ConvAlgorithm::Direct),
    ];
    for (g, algorithm) in routes {
        let (n, h, w) = (2, 13, 11);
        let (ho, wo) = g.output_size(h, w).expect("kernel fits");
        let mut rng = Rng::new(11);
        let (wt, b) = (rng.vec(g.cout * g.patch_len()), rng.vec(g.cout));
        let (dy, held) = (rng.vec(n * g.cout * ho * wo), rng.vec(n * g.cin * h * w));
        let p = PackedConv::with_algorithms(&wt, &b, g, ConvAlgorithms::both(algorithm));
        let mut apart = vec![0.0; held.len()];
        conv::conv_backward_input(&p, &dy, n, h, w, &mut apart);
        let expected: Vec<f32> = held.iter().zip(&apart).map(|(h, a)| h + a).collect();
        let mut added = held.clone();
        conv::conv_backward_input_add(&p, &dy, n, h, w, &mut added);
        assert_eq!(bits(&added), bits(&expected), "{g:?} {algorithm:?}");
    }
}

#[test]
fn feed_forward_layer_shapes_match_reference() {
    // The shapes of Johnson et al.'s network, on small images but large enough to cross every
    // block: the 9x9 first layer (3 -> 32, padding 0 on a pre-padded input) takes the col2im
    // route over several bands of dcol; the 9x9 last layer (32 -> 3: M = 3, K = 2592 across
    // KC blocks) the flipped route; the stride-2 layers read whole panels in place from their
    // phases (wo >= NR).
    let ff = |cin, cout, k, pad, stride| ConvGeometry { cin, cout, kh: k, kw: k, pad_h: pad, pad_w: pad, stride };
    check_conv(ff(3, 32, 9, 0, 1), ConvAlgorithm::Direct, 2, 48, 2 * NR + 13, 21);
    check_conv(ff(32, 3, 9, 0, 1), ConvAlgorithm::Direct, 2, 14, NR + 13, 22);
    check_conv(ff(16, 24, 3, 1, 2), ConvAlgorithm::Direct, 2, 9, 2 * NR + 5, 23);
    check_conv(ff(24, 32, 3, 0, 2), ConvAlgorithm::Direct, 1, 10, 2 * NR + 2, 24);
}

/// The bound on an f64 sum of `count` terms rounded to f32, against another f64 sum of the same
/// terms in another order: each is within `count·ε₆₄·Σ|terms|` of the exact sum (Higham §4.2),
/// and rounding to f32 adds at most one f32 ulp, `ε·|exact|`.
fn f64_sum_bound(exact: f32, abs_sum: f32, count: usize) -> f32 {
    f32::EPSILON * exact.abs() + 2.0 * count as f32 * f64::EPSILON as f32 * abs_sum + f32::MIN_POSITIVE
}

/// `n` values with about one in `nan_every` a NaN (none when `nan_every` is 0).
fn with_nans(rng: &mut Rng, n: usize, nan_every: u64) -> Vec<f32> {
    (0..n)
        .map(|_| if nan_every > 0 && rng.next_u64().is_multiple_of(nan_every) { f32::NAN } else { rng.uniform() })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn reflection_pad_matches_reference(planes in 0..=3usize, h in 1..=9usize, w in 1..=19usize, pad_seed: usize, seed: u64) {
        // Any pad below both sides, including pads that make the mirrored bands overlap.
        let pad = pad_seed % h.min(w);
        let (ho, wo) = (h + 2 * pad, w + 2 * pad);
        let mut rng = Rng::new(seed);
        let (x, dy) = (rng.vec(planes * h * w), rng.vec(planes * ho * wo));
        let y = pad::reflection_pad2d(&x, planes, h, w, pad);
        prop_assert_eq!(bits(&y), bits(&reference::reflection_pad2d(&x, planes, h, w, pad)), "padding copies");
        let dx = pad::reflection_pad2d_backward(&dy, planes, h, w, pad);
        prop_assert_eq!(dx.len(), x.len());
        // At most 3 copies per axis, 9 terms per pixel.
        let bound: Vec<f32> = reference::reflection_pad2d_backward(&abs(&dy), planes, h, w, pad).iter().map(|&s| dot_bound(9, s)).collect();
        assert_within("reflection pad backward", &dx, &reference::reflection_pad2d_backward(&dy, planes, h, w, pad), &bound);
    }

    /// A 3x3 layer reading its input upsampled and/or within a mirrored border in place (the
    /// Winograd route's `winograd::View`, which `conv_forward_new` takes as an `InputView`) has
    /// the bits of the reference's upsampled and padded copy convolved as it is, with and
    /// without the ReLU and its mask: every band of rows and columns, small images where the
    /// border is most of them, a zero border (the layer's own padding) beside the mirrored
    /// one, several images, and the direct route below Winograd's channel counts.
    #[test]
    fn input_view_read_in_place_matches_writing_it_out(
        n in 1..=2usize, cin in 8..=24usize, cout in 8..=24usize, h in 2..=21usize, w in 2..=37usize,
        upsample: bool, reflect: bool, seed: u64,
    ) {
        let (view, pad) = (InputView { upsample, reflect: usize::from(reflect) }, usize::from(!reflect));
        let g = ConvGeometry { cin, cout, kh: 3, kw: 3, pad_h: pad, pad_w: pad, stride: 1 };
        let mut rng = Rng::new(seed);
        let (x, wt, b) = (rng.vec(n * cin * h * w), rng.vec(cout * g.patch_len()), rng.vec(cout));
        let p = PackedConv::new(&wt, &b, g);
        let (s, r) = (if upsample { 2 } else { 1 }, view.reflect);
        let up = if upsample { reference::upsample_nearest2x(&x, n * cin, h, w) } else { x.clone() };
        let image = if reflect { reference::reflection_pad2d(&up, n * cin, s * h, s * w, r) } else { up };
        let (hp, wp) = view.size(h, w);
        prop_assert_eq!((hp, wp), (s * h + 2 * r, s * w + 2 * r));
        prop_assert_eq!(bits(&view.materialise(&x, n * cin, h, w)), bits(&image), "the view written out");
        for relu in [false, true] {
            let len = n * cout * s * h * s * w;
            let (mut mask, mut want_mask) = (vec![7u8; len], vec![7u8; len]);
            let y = conv::conv_forward_new(&p, &x, n, h, w, view, relu, relu.then_some(&mut mask[..]));
            let identity = InputView::default();
            let want = conv::conv_forward_new(&p, &image, n, hp, wp, identity, relu, relu.then_some(&mut want_mask[..]));
            prop_assert_eq!(bits(&y), bits(&want), "relu {}", relu);
            prop_assert_eq!(&mask, &want_mask);
        }
    }

    #[test]
    fn upsample_matches_reference(planes in 0..=3usize, h in 0..=7usize, w in 0..=19usize, seed: u64) {
        let mut rng = Rng::new(seed);
        let (x, dy) = (rng.vec(planes * h * w), rng.vec(4 * planes * h * w));
        let y = upsample::nearest2x(&x, planes, h, w);
        prop_assert_eq!(bits(&y), bits(&reference::upsample_nearest2x(&x, planes, h, w)), "upsampling copies");
        let dx = upsample::nearest2x_backward(&dy, planes, h, w);
        prop_assert_eq!(dx.len(), x.len());
        let bound: Vec<f32> = reference::upsample_nearest2x_backward(&abs(&dy), planes, h, w).iter().map(|&s| dot_bound(4, s)).collect();
        assert_within("upsample backward", &dx, &reference::upsample_nearest2x_backward(&dy, planes, h, w), &bound);
    }

    #[test]
    fn leaky_relu_matches_reference(
        len in 0..=100_000usize, slope in prop_oneof![Just(0.01f32), Just(0.2), Just(0.0), Just(-1.5)], nans: bool, seed: u64,
    ) {
        // Lengths past the parallel chunk size; NaNs must give NaN, with the reference's bits.
        let mut rng = Rng::new(seed);
        let x = with_nans(&mut rng, len, if nans { 7 } else { 0 });
        let dy = rng.vec(len);
        let (mut y, mut mask) = (vec![f32::NAN; len], vec![7u8; len]);
        elementwise::leaky_relu(&x, slope, &mut y, Some(&mut mask));
        let (ey, emask) = reference::leaky_relu(&x, slope);
        prop_assert_eq!(bits(&y), bits(&ey));
        prop_assert_eq!(&mask, &emask);
        // In place (the mask from x, not from the y written over it: a negative slope turns
        // the sign), and without a mask.
        let (mut inplace, mut mask2) = (x.clone(), vec![7u8; len]);
        elementwise::leaky_relu_in_place(&mut inplace, slope, Some(&mut mask2));
        prop_assert_eq!(bits(&inplace), bits(&ey));
        prop_assert_eq!(&mask2, &emask);
        let mut inplace = x.clone();
        elementwise::leaky_relu_in_place(&mut inplace, slope, None);
        prop_assert_eq!(bits(&inplace), bits(&ey));
        let mut unmasked = vec![f32::NAN; len];
        elementwise::leaky_relu(&x, slope, &mut unmasked, None);
        prop_assert_eq!(bits(&unmasked), bits(&ey));
        let mut dx = dy.clone();
        elementwise::leaky_relu_backward(&mut dx, &mask, slope);
        prop_assert_eq!(bits(&dx), bits(&reference::leaky_relu_backward(&dy, &mask, slope)));
    }

    #[test]
    fn soft_clamp_matches_reference(
        n in 0..=3usize, c in 1..=3usize, plane in prop_oneof![1..=40usize, 20_000..=40_000usize], nans: bool, seed: u64,
    ) {
        // Planes that a parallel chunk starts inside of, chunks that span several planes (each
        // element must take its own channel's bounds), runs shorter than a vector and with a
        // ragged tail; NaNs must stay NaN.
        let mut rng = Rng::new(seed);
        let len = n * c * plane;
        let x: Vec<f32> = with_nans(&mut rng, len, if nans { 7 } else { 0 }).iter().map(|v| 300.0 * v).collect();
        let bounds: Vec<(f32, f32)> = (0..c)
            .map(|_| {
                let lo = -200.0 * rng.uniform().abs();
                (lo, lo + 1.0 + 255.0 * rng.uniform().abs())
            })
            .collect();
        let kernel_bounds: Vec<elementwise::Bounds> = bounds.iter().map(|&(lo, hi)| elementwise::Bounds { lo, hi }).collect();
        let (ey, eslope) = reference::soft_clamp(&x, plane, &bounds);
        let (mut y, mut slope) = (x.clone(), vec![f32::NAN; len]);
        elementwise::soft_clamp(&mut y, plane, &kernel_bounds, Some(&mut slope));
        // The kernel's vector tanh is within a few ulps of the reference's scalar one: a few
        // ulps of the range in y, and of 1 in the slope. NaN where the reference has NaN.
        let nans = |v: &[f32]| v.iter().map(|v| v.is_nan()).collect::<Vec<_>>();
        prop_assert_eq!(nans(&y), nans(&ey));
        prop_assert_eq!(nans(&slope), nans(&eslope));
        let finite = |v: &[f32]| v.iter().map(|v| if v.is_nan() { 0.0 } else { *v }).collect::<Vec<_>>();
        let bound: Vec<f32> = (0..len)
            .map(|i| {
                let (lo, hi) = bounds[(i / plane) % c];
                16.0 * f32::EPSILON * (lo.abs() + hi.abs())
            })
            .collect();
        assert_within("soft_clamp", &finite(&y), &finite(&ey), &bound);
        assert_within("soft_clamp slope", &finite(&slope), &finite(&eslope), &vec![16.0 * f32::EPSILON; len]);
        let mut unsloped = x.clone();
        elementwise::soft_clamp(&mut unsloped, plane, &kernel_bounds, None);
        prop_assert_eq!(bits(&unsloped), bits(&y), "the same values without the slope");
        // Every value inside its own channel's bounds, up to the rounding of `mid + half·t`.
        for (i, &v) in y.iter().enumerate().filter(|(_, v)| !v.is_nan()) {
            let (lo, hi) = bounds[(i / plane) % c];
            let ulps = 2.0 * f32::EPSILON * lo.abs().max(hi.abs());
            prop_assert!(lo - ulps <= v && v <= hi + ulps, "{} outside {}..{}", v, lo, hi);
        }
        let dy = rng.vec(len);
        let mut dx = dy.clone();
        elementwise::soft_clamp_backward(&mut dx, &slope);
        prop_assert_eq!(bits(&dx), bits(&reference::soft_clamp_backward(&dy, &slope)));
    }

    #[test]
    fn normalization_matches_reference(
        n in 1..=3usize, c in 1..=4usize, h in 1..=6usize, w in 1..=19usize,
        stats in prop_oneof![Just(Statistics::Instance), Just(Statistics::Batch), Just(Statistics::Running)],
        spread in prop_oneof![Just(0.0f32), Just(1e-3), Just(1.0), Just(40.0)], offset in -50.0f32..50.0, seed: u64,
    ) {
        // Spread 0 makes constant groups (σ² = 0, so 1/σ = 1/√ε); a large offset against a small
        // spread is where a one-pass variance would cancel.
        let g = NormGeometry { n, c, m: h * w, stats };
        let mut rng = Rng::new(seed);
        let x: Vec<f32> = rng.vec(g.len()).iter().map(|v| offset + spread * v).collect();
        let (gamma, beta, dy) = (rng.vec(c), rng.vec(c), rng.vec(g.len()));
        let groups = g.groups();

        // Statistics: two f64 sums each; the variance's terms are all positive.
        let (mut mean, mut var) = (vec![f32::NAN; groups], vec![f32::NAN; groups]);
        let (emean, evar) = reference::moments(&x, g);
        norm::moments(&x, g, &mut mean, &mut var);
        let abs_mean = reference::moments(&abs(&x), g).0;
        let count = g.group_len();
        let mean_bound: Vec<f32> = emean.iter().zip(&abs_mean).map(|(&e, &a)| f64_sum_bound(e, a, count)).collect();
        assert_within("mean", &mean, &emean, &mean_bound);
        let var_bound: Vec<f32> = evar.iter().map(|&e| f64_sum_bound(e, e, count)).collect();
        assert_within("variance", &var, &evar, &var_bound);

        // Normalise with the kernel's statistics, or with given ones for inference.
        let (mean, inv_std) = if stats == Statistics::Running {
            (rng.vec(groups), rng.vec(groups).iter().map(|v| 0.1 + v.abs()).collect())
        } else {
            let inv_std = norm::inverse_std(&var, 1e-5);
            (mean, inv_std)
        };
        let p = NormParams { mean: &mean, inv_std: &inv_std, gamma: &gamma, beta: &beta };
        let (mut y, mut xhat) = (vec![f32::NAN; g.len()], vec![f32::NAN; g.len()]);
        norm::normalize(&x, g, p, &mut y, Some(&mut xhat));
        let mut y_alone = vec![f32::NAN; g.len()];
        norm::normalize(&x, g, p, &mut y_alone, None);
        prop_assert_eq!(bits(&y_alone), bits(&y), "y does not depend on whether x̂ is kept");
        // In place, with and without x̂: the same bits.
        let (mut inplace, mut xhat2) = (x.clone(), vec![f32::NAN; g.len()]);
        norm::normalize_in_place(&mut inplace, g, p, Some(&mut xhat2));
        prop_assert_eq!(bits(&inplace), bits(&y), "y in place");
        prop_assert_eq!(bits(&xhat2), bits(&xhat), "x̂ in place");
        let mut inplace = x.clone();
        norm::normalize_in_place(&mut inplace, g, p, None);
        prop_assert_eq!(bits(&inplace), bits(&y), "y in place, no x̂");
        let (ey, exhat) = reference::normalize(&x, g, p);
        // x̂ = fl(fl(x - μ)·(1/σ)): two roundings against the reference's one, ≤ 1.5ε·|x̂|.
        assert_within("x̂", &xhat, &exhat, &exhat.iter().map(|v| 2.0 * f32::EPSILON * v.abs() + f32::MIN_POSITIVE).collect::<Vec<_>>());
        // y = fl(fl(γ·x̂) + β) on the fast x̂: ≤ 2.5ε·(|γ·x̂| + |β|).
        let channel = |i: usize| (i / g.m) % c;
        let y_bound: Vec<f32> = exhat.iter().enumerate().map(|(i, v)| 3.0 * f32::EPSILON * ((gamma[channel(i)] * v).abs() + beta[channel(i)].abs()) + f32::MIN_POSITIVE).collect();
        assert_within("y", &y, &ey, &y_bound);

        // Backward, every gradient at once and each alone (the sums are shared).
        let dx_scale: Vec<f32> = (0..groups).map(|k| gamma[g.channel_of_group(k)] * inv_std[k]).collect();
        let (mut dx, mut dgamma, mut dbeta) = (vec![f32::NAN; g.len()], vec![f32::NAN; c], vec![f32::NAN; c]);
        let grads = NormGrads { dx: Some(&mut dx), dgamma: Some(&mut dgamma), dbeta: Some(&mut dbeta) };
        norm::normalize_backward(&dy, Some(&xhat), g, &dx_scale, grads);
        let (edx, edgamma, edbeta) = reference::normalize_backward(&dy, &xhat, g, &dx_scale);
        let (_, abs_dgamma, abs_dbeta) = reference::normalize_backward(&abs(&dy), &abs(&xhat), g, &dx_scale);
        let per_channel = g.n * g.m;
        assert_within("dβ", &dbeta, &edbeta, &edbeta.iter().zip(&abs_dbeta).map(|(&e, &a)| f64_sum_bound(e, a, per_channel)).collect::<Vec<_>>());
        assert_within("dγ", &dgamma, &edgamma, &edgamma.iter().zip(&abs_dgamma).map(|(&e, &a)| f64_sum_bound(e, a, per_channel)).collect::<Vec<_>>());
        // dx = fl(k·fl(fl(dy - a) - fl(x̂·b))) with a = mean(dy), b = mean(dy·x̂) rounded to f32:
        // within 2ε·|k|·(|dy| + |a| + |x̂·b|) of the exact, the reference's rounding adds ε/2.
        let dot: Vec<f32> = dy.iter().zip(&xhat).map(|(a, b)| (a * b).abs()).collect();
        let (mean_abs_dy, mean_abs_dot) = (reference::moments(&abs(&dy), g).0, reference::moments(&dot, g).0);
        let dx_bound: Vec<f32> = (0..g.len())
            .map(|i| {
                let k = g.group_of_plane(i / g.m);
                let terms = if stats.from_input() { dy[i].abs() + mean_abs_dy[k] + xhat[i].abs() * mean_abs_dot[k] } else { dy[i].abs() };
                3.0 * f32::EPSILON * dx_scale[k].abs() * terms + f32::MIN_POSITIVE
            })
            .collect();
        assert_within("dx", &dx, &edx, &dx_bound);

        let mut dx_alone = vec![f32::NAN; g.len()];
        let xhat_if_needed = stats.from_input().then_some(xhat.as_slice());
        norm::normalize_backward(&dy, xhat_if_needed, g, &dx_scale, NormGrads { dx: Some(&mut dx_alone), ..NormGrads::default() });
        prop_assert_eq!(bits(&dx_alone), bits(&dx), "dx alone");
        let mut dbeta_alone = vec![f32::NAN; c];
        norm::normalize_backward(&dy, None, g, &[], NormGrads { dbeta: Some(&mut dbeta_alone), ..NormGrads::default() });
        prop_assert_eq!(bits(&dbeta_alone), bits(&dbeta), "dβ alone, without x̂");
    }
}

/// `crop2d_backward` writes every pixel of `dx` (the window's gradient, zeros around it), on
/// planes enough for several tasks, with windows touching every edge, and with an empty window.
#[test]
fn crop2d_backward_writes_every_pixel() {
    let (planes, h, w) = (7, 9, 11);
    let windows = [
        pad::Window { top: 2, left: 3, h: 5, w: 6 },
        pad::Window { top: 0, left: 0, h: 9, w: 11 },
        pad::Window { top: 0, left: 4, h: 3, w: 7 },
        pad::Window { top: 1, left: 1, h: 0, w: 4 },
    ];
    for win in windows {
        let dy = Rng::new(5).vec(planes * win.h * win.w);
        let dx = pad::crop2d_backward(&dy, planes, h, w, win);
        assert_eq!(dx.len(), planes * h * w);
        for (i, &d) in dx.iter().enumerate() {
            let (p, y, x) = (i / (h * w), i / w % h, i % w);
            let inside = (win.top..win.top + win.h).contains(&y) && (win.left..win.left + win.w).contains(&x);
            let want = if inside { dy[(p * win.h + y - win.top) * win.w + x - win.left] } else { 0.0 };
            assert_eq!(d.to_bits(), want.to_bits(), "{win:?}: plane {p}, pixel ({y}, {x})");
        }
    }
}
