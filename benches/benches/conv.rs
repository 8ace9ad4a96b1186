//! Convolution forward and backward-to-input for every distinct VGG19 layer shape at a 512x512
//! input and at a 256x256 training crop, and forward, backward-to-input and backward-to-weights
//! for the layers of the feed-forward network (Johnson et al. 2016) at a 256x256 training crop
//! (its 3x3 stride-1 layers' weight gradient by both algorithms, and that of larger 3x3
//! layers). Throughput is in FLOPs (2·cout·cin·kh·kw·Ho·Wo, the same for every pass): read
//! "Gelem/s" as GFLOP/s. The VGG layers run both algorithms, direct and Winograd F(4x4, 3x3);
//! Winograd's figure is in the direct convolution's FLOPs ("effective" GFLOP/s), so the two
//! compare as times do.

use benches::{data, gemm_flops, winograd_tiles};
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use tensor::kernels::conv::{
    conv_backward_input, conv_backward_weight, conv_forward, conv_forward_new, ConvAlgorithm, ConvAlgorithms,
    ConvGeometry, InputView, PackedConv, Transforms,
};
use tensor::kernels::winograd::{self, Pass, WinogradWeights};

/// (name, cin, cout, side) of each distinct VGG19 convolution at a 512x512 input.
const LAYERS: &[(&str, usize, usize, usize)] = &[
    ("conv1_1", 3, 64, 512),
    ("conv1_2", 64, 64, 512),
    ("conv2_1", 64, 128, 256),
    ("conv2_2", 128, 128, 256),
    ("conv3_1", 128, 256, 128),
    ("conv3_x", 256, 256, 128),
    ("conv4_1", 256, 512, 64),
    ("conv4_x", 512, 512, 64),
    ("conv5_1", 512, 512, 32),
];

fn vgg(c: &mut Criterion) {
    let mut group = c.benchmark_group("conv3x3");
    group.sample_size(10);
    both_routes(&mut group, LAYERS, Transforms::PerCall);
    group.finish();
}

/// The same layers on a 256x256 training crop, half the side, the Winograd transforms kept as
/// `stylize train` keeps them. The deepest have few tiles per image (64 at 32x32, 16 at
/// 16x16), so the Winograd route splits their products by output channels rather than by
/// tiles (`winograd::Split`).
fn training_crop(c: &mut Criterion) {
    let mut group = c.benchmark_group("conv3x3-crop");
    group.sample_size(10);
    let crop: Vec<_> = LAYERS.iter().map(|&(name, cin, cout, side)| (name, cin, cout, side / 2)).collect();
    both_routes(&mut group, &crop, Transforms::Kept);
    group.finish();
}

/// Forward and backward-to-input of each `(name, cin, cout, side)` layer, one image, by both
/// algorithms (Winograd from 16 input channels: fewer make 3-deep products, see
/// `winograd::pays`), Winograd's weight transforms made as `transforms` says.
fn both_routes(group: &mut BenchmarkGroup<WallTime>, layers: &[(&str, usize, usize, usize)], transforms: Transforms) {
    for &(name, cin, cout, side) in layers {
        let g = ConvGeometry::same3x3(cin, cout);
        let x = data(cin * side * side, 3);
        let dy = data(cout * side * side, 4);
        let (mut y, mut dx) = (vec![0.0; cout * side * side], vec![0.0; cin * side * side]);
        group.throughput(Throughput::Elements(gemm_flops(cout, side * side, cin * 9)));
        for algorithm in [ConvAlgorithm::Direct, ConvAlgorithm::Winograd] {
            if algorithm == ConvAlgorithm::Winograd && cin < 16 {
                continue;
            }
            let algorithms = ConvAlgorithms { transforms, ..ConvAlgorithms::both(algorithm) };
            let packed = PackedConv::with_algorithms(&data(cout * cin * 9, 1), &data(cout, 2), g, algorithms);
            let id = format!("{name} {cin}->{cout} @{side} {algorithm:?}");
            group.bench_function(format!("{id} forward"), |b| {
                b.iter(|| conv_forward(&packed, &x, 1, side, side, &mut y))
            });
            group.bench_function(format!("{id} backward-input"), |b| {
                b.iter(|| conv_backward_input(&packed, &dy, 1, side, side, &mut dx))
            });
        }
    }
}

/// (cin, cout, side) of small 3x3 layers around Winograd's cut-off (`winograd::pays`: 16
/// channels each way): the half-width network's 32 -> 16 upsampling layer among them.
const CUT_OFF: &[(usize, usize, usize)] =
    &[(8, 8, 256), (16, 16, 256), (32, 16, 256), (24, 64, 128), (64, 24, 128), (32, 32, 256)];

/// Direct against Winograd forward on layers near the channel count where Winograd starts to
/// pay, whatever `PackedConv::new` would choose for them.
fn cut_off(c: &mut Criterion) {
    let mut group = c.benchmark_group("winograd-cut-off");
    group.sample_size(10);
    for &(cin, cout, side) in CUT_OFF {
        let g = ConvGeometry::same3x3(cin, cout);
        let x = data(cin * side * side, 3);
        let mut y = vec![0.0; cout * side * side];
        group.throughput(Throughput::Elements(gemm_flops(cout, side * side, cin * 9)));
        for algorithm in [ConvAlgorithm::Direct, ConvAlgorithm::Winograd] {
            let algorithms = ConvAlgorithms::both(algorithm);
            let packed = PackedConv::with_algorithms(&data(cout * cin * 9, 1), &data(cout, 2), g, algorithms);
            group.bench_function(format!("{cin}->{cout} @{side} {algorithm:?} forward"), |b| {
                b.iter(|| conv_forward(&packed, &x, 1, side, side, &mut y))
            });
        }
    }
    group.finish();
}

/// (name, cin, cout, kernel, stride, side) of the feed-forward network's convolutions for a
/// 256x256 crop: each reads its input reflection-padded by kernel/2 (`Conv2d::reflected`), so
/// here without padding on a `side + 2·(kernel/2)` input, giving `side / stride` pixels, as the
/// direct routes run on a padded copy; the Winograd layers also read the border in place.
const FEED_FORWARD: &[(&str, usize, usize, usize, usize, usize)] = &[
    ("in 9x9", 3, 32, 9, 1, 256),
    ("down1 3x3/2", 32, 64, 3, 2, 256),
    ("down2 3x3/2", 64, 128, 3, 2, 128),
    ("residual 3x3", 128, 128, 3, 1, 64),
    ("out 9x9", 32, 3, 9, 1, 256),
    // The half-width network's (the default's) layers that take Winograd.
    ("residual/2 3x3", 64, 64, 3, 1, 64),
    ("up1/2 3x3", 64, 32, 3, 1, 128),
    // The half-width network's direct layers.
    ("down1/2 3x3/2", 16, 32, 3, 2, 256),
    ("down2/2 3x3/2", 32, 64, 3, 2, 128),
    ("up2/2 3x3", 32, 16, 3, 1, 256),
    ("in/2 9x9", 3, 16, 9, 1, 256),
    ("out/2 9x9", 16, 3, 9, 1, 256),
];

fn feed_forward(c: &mut Criterion) {
    let mut group = c.benchmark_group("feed-forward");
    group.sample_size(10);
    for &(name, cin, cout, k, stride, side) in FEED_FORWARD {
        let g = ConvGeometry { cin, cout, kh: k, kw: k, pad_h: 0, pad_w: 0, stride };
        let (input, out) = (side + 2 * (k / 2), side / stride);
        assert_eq!(g.output_size(input, input), Some((out, out)));
        let packed = PackedConv::new(&data(cout * g.patch_len(), 1), &data(cout, 2), g);
        let x = data(cin * input * input, 3);
        let dy = data(cout * out * out, 4);
        let (mut y, mut dx, mut dw) = (vec![0.0; dy.len()], vec![0.0; x.len()], vec![0.0; cout * g.patch_len()]);
        group.throughput(Throughput::Elements(gemm_flops(cout, out * out, g.patch_len())));
        let id = format!("{name} {cin}->{cout} @{side}");
        group
            .bench_function(format!("{id} forward"), |b| b.iter(|| conv_forward(&packed, &x, 1, input, input, &mut y)));
        group.bench_function(format!("{id} backward-input"), |b| {
            b.iter(|| conv_backward_input(&packed, &dy, 1, input, input, &mut dx))
        });
        group.bench_function(format!("{id} backward-weight"), |b| {
            b.iter(|| conv_backward_weight(&packed, &x, 1, input, input, &dy, &mut dw))
        });
        if winograd::pays(cin, cout, k, k, stride) {
            // The Winograd route beside the direct one the layer takes, for the comparison.
            let a = ConvAlgorithms { weight_gradient: ConvAlgorithm::Winograd, ..packed.algorithms() };
            let packed = PackedConv::with_algorithms(&data(cout * g.patch_len(), 1), &data(cout, 2), g, a);
            group.bench_function(format!("{id} backward-weight Winograd"), |b| {
                b.iter(|| conv_backward_weight(&packed, &x, 1, input, input, &dy, &mut dw))
            });
            // The network's forward as it runs: its input written out as the layer reads it
            // (upsampled for the up layers, then mirrored) and convolved, against the layer
            // reading it in place (`InputView`).
            let view = InputView { upsample: name.starts_with("up"), reflect: 1 };
            let small = if view.upsample { side / 2 } else { side };
            let what = if view.upsample { "upsampled and padded" } else { "padded" };
            let unpadded = data(cin * small * small, 3);
            group.bench_function(format!("{id} forward, {what} copy first"), |b| {
                b.iter(|| {
                    let image = view.materialise(&unpadded, cin, small, small);
                    conv_forward_new(&packed, &image, 1, input, input, InputView::default(), false, None)
                })
            });
            let what = if view.upsample { "upsampling and border" } else { "border" };
            group.bench_function(format!("{id} forward, {what} read in place"), |b| {
                b.iter(|| conv_forward_new(&packed, &unpadded, 1, small, small, view, false, None))
            });
        }
    }
    group.finish();
}

/// (cin, cout, side) of 3x3 stride-1 layers larger than the network's at a 256² crop (as a
/// larger batch or crop would give), for the weight gradient by both routes.
const WEIGHT_GRADIENT: &[(usize, usize, usize)] = &[(64, 64, 128), (64, 64, 256), (128, 128, 128), (32, 32, 256)];

/// The weight gradient of [`WEIGHT_GRADIENT`]'s layers, direct against Winograd: whether the
/// Winograd route's fewer multiply-adds pay once its products are deeper.
fn weight_gradient(c: &mut Criterion) {
    let mut group = c.benchmark_group("weight-gradient");
    group.sample_size(10);
    for &(cin, cout, side) in WEIGHT_GRADIENT {
        let g = ConvGeometry { cin, cout, kh: 3, kw: 3, pad_h: 0, pad_w: 0, stride: 1 };
        let (x, dy, mut dw) =
            (data(cin * (side + 2) * (side + 2), 3), data(cout * side * side, 4), vec![0.0; cout * cin * 9]);
        group.throughput(Throughput::Elements(gemm_flops(cout, side * side, cin * 9)));
        for algorithm in [ConvAlgorithm::Direct, ConvAlgorithm::Winograd] {
            let a = ConvAlgorithms { weight_gradient: algorithm, ..ConvAlgorithms::for_geometry(g) };
            let packed = PackedConv::with_algorithms(&data(cout * cin * 9, 1), &data(cout, 2), g, a);
            group.bench_function(format!("{cin}->{cout} @{side} {algorithm:?}"), |b| {
                b.iter(|| conv_backward_weight(&packed, &x, 1, side + 2, side + 2, &dy, &mut dw))
            });
        }
    }
    group.finish();
}

/// The per-call transform of a layer's weights for Winograd (`WinogradWeights::transform`), on
/// the VGG layers that take it, forward and flipped for the backward pass. Throughput is in
/// kernels (`cout·cin` 3x3 kernels, each transformed into 36 floats).
fn winograd_weights(c: &mut Criterion) {
    let mut group = c.benchmark_group("winograd-weights");
    group.sample_size(10);
    for &(name, cin, cout, _) in LAYERS.iter().filter(|l| winograd::pays(l.1, l.2, 3, 3, 1)) {
        let weights = WinogradWeights::new(&data(cout * cin * 9, 1), cout, cin);
        group.throughput(Throughput::Elements((cout * cin) as u64));
        for pass in [Pass::Forward, Pass::InputGradient] {
            let mut u = vec![0.0; WinogradWeights::transformed_bytes_for(cout, cin, pass) / 4];
            group.bench_function(format!("{name} {cin}->{cout} {pass:?}"), |b| {
                b.iter(|| weights.transform(pass, &mut u))
            });
        }
    }
    group.finish();
}

/// Winograd F(2x2), F(4x4) and F(6x6), each in the plain generic form of
/// `benches::winograd_tiles` (stages timed apart), beside the engine's F(4x4) and direct
/// convolution, on three VGG19 layer shapes at a 512x512 input. Each route's relative error
/// against an f64 direct convolution is printed before its (whole-layer) bench first runs.
fn winograd_tiles(c: &mut Criterion) {
    let mut group = c.benchmark_group("winograd-tiles");
    group.sample_size(10);
    for &(name, cin, cout, side) in LAYERS.iter().filter(|l| ["conv1_2", "conv3_x", "conv4_x"].contains(&l.0)) {
        let (k, b, x) = (data(cout * cin * 9, 1), data(cout, 2), data(cin * side * side, 3));
        // The f64 reference takes seconds, so it is made only when one of this layer's benches
        // runs (criterion calls a bench's closure only when the filter selects it): profiling
        // another bench does not pay for it.
        let reference = std::cell::OnceCell::new();
        let reference = || reference.get_or_init(|| winograd_tiles::direct_f64(&x, &k, &b, cin, cout, side, side));
        let mut y = vec![0.0; cout * side * side];
        group.throughput(Throughput::Elements(gemm_flops(cout, side * side, cin * 9)));
        for algorithm in [ConvAlgorithm::Direct, ConvAlgorithm::Winograd] {
            let packed =
                PackedConv::with_algorithms(&k, &b, ConvGeometry::same3x3(cin, cout), ConvAlgorithms::both(algorithm));
            let id = format!("{name} {cin}->{cout} @{side} engine {algorithm:?}");
            let mut checked = false;
            group.bench_function(&id, |bench| {
                if !std::mem::replace(&mut checked, true) {
                    conv_forward(&packed, &x, 1, side, side, &mut y);
                    eprintln!("{id}: relative L2 error {:.2e}", winograd_tiles::relative_l2(&y, reference()));
                }
                bench.iter(|| conv_forward(&packed, &x, 1, side, side, &mut y))
            });
        }
        for m in [2, 4, 6] {
            let layer = winograd_tiles::Layer::new(winograd_tiles::Transforms::new(m), &k, &b, cin, cout);
            let mut s = layer.scratch(side, side);
            let id = format!("{name} {cin}->{cout} @{side} F({m}x{m})");
            let mut checked = false;
            group.bench_function(format!("{id} whole"), |bench| {
                if !std::mem::replace(&mut checked, true) {
                    layer.forward(&x, side, side, &mut s, &mut y);
                    eprintln!("{id}: relative L2 error {:.2e}", winograd_tiles::relative_l2(&y, reference()));
                }
                bench.iter(|| layer.forward(&x, side, side, &mut s, &mut y))
            });
            group.bench_function(format!("{id} input transform"), |bench| {
                bench.iter(|| layer.input_transform(&x, side, side, &mut s))
            });
            group.bench_function(format!("{id} products"), |bench| bench.iter(|| layer.products(side, side, &mut s)));
            group.bench_function(format!("{id} output transform"), |bench| {
                bench.iter(|| layer.output_transform(side, side, &s, &mut y))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, vgg, training_crop, cut_off, feed_forward, weight_gradient, winograd_weights, winograd_tiles);
criterion_main!(benches);
