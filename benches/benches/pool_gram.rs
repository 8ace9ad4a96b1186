//! Max-pool (forward with argmax, backward) and the Gram matrix at VGG19 style-layer shapes for
//! a 512x512 input.

use benches::{data, gemm_flops};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tensor::kernels::{gram, pool};

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("max_pool2");
    group.sample_size(20);
    for &(ch, side) in &[(64, 512), (512, 64)] {
        let x = data(ch * side * side, 1);
        let n_out = ch * (side / 2) * (side / 2);
        let (mut y, mut am, mut dx) = (vec![0.0; n_out], vec![0u8; n_out], vec![0.0; x.len()]);
        group.throughput(Throughput::Bytes((x.len() * 4) as u64));
        group.bench_function(format!("{ch}x{side}x{side} forward"), |b| {
            b.iter(|| pool::max_pool2(&x, ch, side, side, &mut y, &mut am))
        });
        group.bench_function(format!("{ch}x{side}x{side} backward"), |b| {
            b.iter(|| pool::max_pool2_backward(&y, &am, ch, side, side, &mut dx))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("gram");
    group.sample_size(10);
    for &(ch, side) in &[(64, 512), (128, 256), (256, 128), (512, 64), (512, 32)] {
        let n = side * side;
        let f = data(ch * n, 1);
        let mut g = vec![0.0; ch * ch];
        let mut df = vec![0.0; ch * n];
        group.throughput(Throughput::Elements(gemm_flops(ch, ch, n)));
        group.bench_function(format!("{ch}x{n} forward"), |b| b.iter(|| gram::gram(&f, ch, n, &mut g)));
        let dg = data(ch * ch, 2);
        // In place, so each iteration first copies F in (one more pass over it than the
        // backward pass makes).
        group.bench_function(format!("{ch}x{n} backward"), |b| {
            b.iter(|| {
                df.copy_from_slice(&f);
                gram::gram_backward(&mut df, &dg, ch, n)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
