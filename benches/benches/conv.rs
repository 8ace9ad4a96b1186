//! Convolution forward and backward-to-input for every distinct VGG19 layer shape at a 512x512
//! input. Throughput is in FLOPs (2·cout·cin·9·H·W): read "Gelem/s" as GFLOP/s.

use benches::{data, gemm_flops};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tensor::kernels::conv::{conv_backward_input, conv_forward, ConvGeometry, PackedConv};

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

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("conv3x3");
    group.sample_size(10);
    for &(name, cin, cout, side) in LAYERS {
        let g = ConvGeometry::same3x3(cin, cout);
        let packed = PackedConv::new(&data(cout * cin * 9, 1), &data(cout, 2), g);
        let x = data(cin * side * side, 3);
        let dy = data(cout * side * side, 4);
        let (mut y, mut dx) = (vec![0.0; cout * side * side], vec![0.0; cin * side * side]);
        group.throughput(Throughput::Elements(gemm_flops(cout, side * side, cin * 9)));
        group.bench_function(format!("{name} {cin}->{cout} @{side} forward"), |b| {
            b.iter(|| conv_forward(&packed, &x, side, side, &mut y))
        });
        group.bench_function(format!("{name} {cin}->{cout} @{side} backward-input"), |b| {
            b.iter(|| conv_backward_input(&packed, &dy, side, side, &mut dx))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
