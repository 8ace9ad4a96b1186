//! sgemm: square 256, 1024, 2048, the conv-shaped M=256, K=2304, N=16384 (conv3_x at
//! 128x128), and the network's residual weight gradient at a 256² crop, M = cout = 64 by
//! K = 4096 pixels by N = 576 patch positions, beside the same sizes with K and N swapped: few
//! rows of A, where how the tasks split M matters. Throughput is in FLOPs: read criterion's
//! "Gelem/s" as GFLOP/s.

use benches::{data, gemm_flops};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tensor::kernels::gemm::params::{MR, NR};
use tensor::kernels::gemm::{gemm, microkernel, AOperand, Epilogue, MatRef, PackedA};

/// The micro-kernel alone on L1-resident panels, on every thread at once: the practical peak of
/// this machine (what the FMA units sustain), the yardstick for the GEMM figures.
fn peak(c: &mut Criterion) {
    let kc = 256;
    let (a, b) = (data(kc * MR, 1), data(kc * NR, 2));
    let threads = rayon::current_num_threads();
    let calls = 2048;
    let mut group = c.benchmark_group("peak");
    group.sample_size(20);
    group.throughput(Throughput::Elements((threads * calls * 2 * MR * NR * kc) as u64));
    group.bench_function(format!("microkernel {MR}x{NR} kc={kc} x{threads} threads"), |bench| {
        bench.iter(|| {
            rayon::broadcast(|_| {
                let mut tile = [[0.0f32; NR]; MR];
                for _ in 0..calls {
                    microkernel(std::hint::black_box(&a), std::hint::black_box(&b).chunks_exact(NR), &mut tile);
                }
                std::hint::black_box(tile);
            })
        })
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("sgemm");
    group.sample_size(10);
    for &(m, k, n) in
        &[(256, 256, 256), (1024, 1024, 1024), (2048, 2048, 2048), (256, 2304, 16384), (64, 4096, 576), (64, 576, 4096)]
    {
        let (a, b) = (data(m * k, 1), data(k * n, 2));
        let mut out = vec![0.0; m * n];
        group.throughput(Throughput::Elements(gemm_flops(m, n, k)));
        let (av, bv) = (MatRef::row_major(&a, m, k), MatRef::row_major(&b, k, n));
        group.bench_function(format!("{m}x{k}x{n}"), |bench| {
            bench.iter(|| gemm(AOperand::View(av), &bv, &mut out, Epilogue::default()))
        });
        let packed = PackedA::new(av);
        group.bench_function(format!("{m}x{k}x{n} prepacked A"), |bench| {
            bench.iter(|| gemm(AOperand::Packed(packed.view()), &bv, &mut out, Epilogue::default()))
        });
    }
    group.finish();
}

criterion_group!(benches, peak, bench);
criterion_main!(benches);
