//! sgemm: square 256, 1024, 2048 and the conv-shaped M=256, K=2304, N=16384 (conv3_x at
//! 128x128). Throughput is in FLOPs: read criterion's "Gelem/s" as GFLOP/s.

use benches::{data, gemm_flops};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tensor::kernels::gemm::{gemm, AOperand, Epilogue, MatRef, PackedA};

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("sgemm");
    group.sample_size(10);
    for &(m, k, n) in &[(256, 256, 256), (1024, 1024, 1024), (2048, 2048, 2048), (256, 2304, 16384)] {
        let (a, b) = (data(m * k, 1), data(k * n, 2));
        let mut out = vec![0.0; m * n];
        group.throughput(Throughput::Elements(gemm_flops(m, n, k)));
        let (av, bv) = (MatRef::row_major(&a, m, k), MatRef::row_major(&b, k, n));
        group.bench_function(format!("{m}x{k}x{n}"), |bench| {
            bench.iter(|| gemm(AOperand::View(av), &bv, &mut out, Epilogue::default()))
        });
        let packed = PackedA::new(av);
        group.bench_function(format!("{m}x{k}x{n} prepacked A"), |bench| {
            bench.iter(|| gemm(AOperand::Packed(&packed), &bv, &mut out, Epilogue::default()))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
