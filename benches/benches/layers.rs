//! The feed-forward network's layers (issue 10) at the shapes its training runs: a batch of four
//! 256x256 crops through Johnson et al.'s network (32 channels at 256 px, 64 at 128, 128 at 64).
//!
//! These kernels do a few flops per value, so they are bound by memory: throughput is the bytes
//! each must read and write at least (criterion's "GiB/s"), counted below per benchmark; `copy`
//! is the yardstick, a parallel copy of the largest activation.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rayon::prelude::*;
use tensor::kernels::norm::{self, NormGeometry, NormGrads, NormParams, Statistics};
use tensor::kernels::{elementwise, pad, upsample};

use benches::data;

/// The batch: four crops.
const N: usize = 4;

/// (channels, side) of the activations: the first and last stage, the downsampled middle stage,
/// and the residual blocks.
const ACTIVATIONS: &[(usize, usize)] = &[(32, 256), (64, 128), (128, 64)];

const F32: u64 = std::mem::size_of::<f32>() as u64;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("copy");
    group.sample_size(20);
    let len = N * 32 * 256 * 256;
    let (x, mut y) = (data(len, 1), vec![0.0; len]);
    group.throughput(Throughput::Bytes(2 * F32 * len as u64));
    group.bench_function(format!("{N}x32x256x256"), |b| {
        b.iter(|| y.par_chunks_mut(1 << 15).zip(x.par_chunks(1 << 15)).for_each(|(y, x)| y.copy_from_slice(x)))
    });
    group.finish();

    // Reflection pad: 4 before the 9x9 input and output convolutions, 1 before every 3x3.
    // Forward reads x and writes y; backward reads dy and writes dx.
    let mut group = c.benchmark_group("reflection_pad2d");
    group.sample_size(20);
    for &(ch, side, p) in &[(3, 256, 4), (32, 256, 4), (32, 256, 1), (64, 128, 1), (128, 64, 1)] {
        let planes = N * ch;
        let (len, padded) = (planes * side * side, planes * (side + 2 * p) * (side + 2 * p));
        let (x, dy) = (data(len, 1), data(padded, 2));
        group.throughput(Throughput::Bytes(F32 * (len + padded) as u64));
        // Both passes return a new buffer, so their time includes allocating the output, as the
        // op's does (the padding and upsampling kernels write it without zeroing it first).
        group.bench_function(format!("pad {p} {N}x{ch}x{side}x{side} forward"), |b| {
            b.iter(|| pad::reflection_pad2d(&x, planes, side, side, p))
        });
        group.bench_function(format!("pad {p} {N}x{ch}x{side}x{side} backward"), |b| {
            b.iter(|| pad::reflection_pad2d_backward(&dy, planes, side, side, p))
        });
    }
    group.finish();

    // Crop: training cuts the mirrored border (16 pixels a side) off the network's 3-channel
    // output. Forward reads the window and writes it; backward writes the whole plane, reading
    // the window's gradient.
    let mut group = c.benchmark_group("crop2d");
    group.sample_size(20);
    let (side, border, planes) = (256, 16, N * 3);
    let outer = side + 2 * border;
    let win = pad::Window { top: border, left: border, h: side, w: side };
    let (x, dy) = (data(planes * outer * outer, 1), data(planes * side * side, 2));
    let mut y = vec![0.0; planes * side * side];
    group.throughput(Throughput::Bytes(2 * F32 * (planes * side * side) as u64));
    group.bench_function(format!("{N}x3x{outer}x{outer} forward"), |b| {
        b.iter(|| pad::crop2d(&x, planes, outer, outer, win, &mut y))
    });
    group.throughput(Throughput::Bytes(F32 * (planes * (side * side + outer * outer)) as u64));
    group.bench_function(format!("{N}x3x{outer}x{outer} backward"), |b| {
        b.iter(|| pad::crop2d_backward(&dy, planes, outer, outer, win))
    });
    group.finish();

    // Instance norm and batch norm in training, as the ops run them. Forward: the statistics
    // (two passes over x, which the bytes do not count), then x -> y and x̂: 12 bytes a value.
    // Backward with dx, dγ and dβ: dy and x̂ -> dx, 12 bytes a value.
    for (name, stats) in [("instance_norm", Statistics::Instance), ("batch_norm_train", Statistics::Batch)] {
        let mut group = c.benchmark_group(name);
        group.sample_size(20);
        for &(ch, side) in ACTIVATIONS {
            let g = NormGeometry { n: N, c: ch, m: side * side, stats };
            let (x, dy, gamma, beta) = (data(g.len(), 1), data(g.len(), 2), data(ch, 3), data(ch, 4));
            let (mut y, mut xhat, mut dx) = (vec![0.0; g.len()], vec![0.0; g.len()], vec![0.0; g.len()]);
            let (mut mean, mut var) = (vec![0.0; g.groups()], vec![0.0; g.groups()]);
            group.throughput(Throughput::Bytes(3 * F32 * g.len() as u64));
            group.bench_function(format!("{N}x{ch}x{side}x{side} forward"), |b| {
                b.iter(|| {
                    norm::moments(&x, g, &mut mean, &mut var);
                    let inv_std = norm::inverse_std(&var, 1e-5);
                    let p = NormParams { mean: &mean, inv_std: &inv_std, gamma: &gamma, beta: &beta };
                    norm::normalize(&x, g, p, &mut y, Some(&mut xhat));
                })
            });
            let dx_scale = data(g.groups(), 5);
            let (mut dgamma, mut dbeta) = (vec![0.0; ch], vec![0.0; ch]);
            group.bench_function(format!("{N}x{ch}x{side}x{side} backward"), |b| {
                b.iter(|| {
                    let grads = NormGrads { dx: Some(&mut dx), dgamma: Some(&mut dgamma), dbeta: Some(&mut dbeta) };
                    norm::normalize_backward(&dy, Some(&xhat), g, &dx_scale, grads)
                })
            });
        }
        group.finish();
    }

    // Leaky ReLU: x -> y and a one-byte mask (9 bytes a value); dy and the mask -> dx.
    let mut group = c.benchmark_group("leaky_relu");
    group.sample_size(20);
    for &(ch, side) in ACTIVATIONS {
        let len = N * ch * side * side;
        let (x, dy) = (data(len, 1), data(len, 2));
        let (mut y, mut mask) = (vec![0.0; len], vec![0u8; len]);
        group.throughput(Throughput::Bytes((2 * F32 + 1) * len as u64));
        group.bench_function(format!("{N}x{ch}x{side}x{side} forward"), |b| {
            b.iter(|| elementwise::leaky_relu(&x, 0.2, &mut y, Some(&mut mask)))
        });
        // In place without a mask (inference, the tape's path when nothing else holds x): from a
        // fresh copy of x each pass (not timed), as below.
        group.bench_function(format!("{N}x{ch}x{side}x{side} forward in place"), |b| {
            b.iter_batched_ref(|| x.clone(), |y| elementwise::leaky_relu_in_place(y, 0.2, None), BatchSize::LargeInput)
        });
        group.bench_function(format!("{N}x{ch}x{side}x{side} backward"), |b| {
            // In place: each pass starts from a fresh copy of dy (not timed), so that repeated
            // scaling does not drift into subnormals.
            b.iter_batched_ref(
                || dy.clone(),
                |d| elementwise::leaky_relu_backward(d, &mask, 0.2),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();

    // Upsampling before the two resize-convolutions: x -> y four times larger, and back.
    let mut group = c.benchmark_group("upsample_nearest2x");
    group.sample_size(20);
    for &(ch, side) in &[(128, 64), (64, 128)] {
        let planes = N * ch;
        let len = planes * side * side;
        let (x, dy) = (data(len, 1), data(4 * len, 2));
        group.throughput(Throughput::Bytes(5 * F32 * len as u64));
        group.bench_function(format!("{N}x{ch}x{side}x{side} forward"), |b| {
            b.iter(|| upsample::nearest2x(&x, planes, side, side))
        });
        group.bench_function(format!("{N}x{ch}x{side}x{side} backward"), |b| {
            b.iter(|| upsample::nearest2x_backward(&dy, planes, side, side))
        });
    }
    group.finish();

    // The bounded output: the network's 3-channel picture, a training batch at 256² and one
    // 1920x1080 photo at apply. Forward with the slope (training) and without (apply), in place
    // from a fresh copy each pass; backward, in place.
    let mut group = c.benchmark_group("soft_clamp");
    group.sample_size(20);
    // A picture's range in VGG's space is about this (0..255 less a mean near 120); the time does
    // not depend on the exact bounds.
    let bounds = [elementwise::Bounds { lo: -120.0, hi: 135.0 }; 3];
    for (name, n, h, w) in [("4x3x256x256", N, 256, 256), ("1x3x1080x1920", 1, 1080, 1920)] {
        let len = n * 3 * h * w;
        let (x, dy) = (data(len, 1).iter().map(|v| 200.0 * v).collect::<Vec<f32>>(), data(len, 2));
        let mut slope = vec![0.0; len];
        group.throughput(Throughput::Elements(len as u64));
        group.bench_function(format!("{name} forward"), |b| {
            b.iter_batched_ref(
                || x.clone(),
                |y| elementwise::soft_clamp(y, h * w, &bounds, Some(&mut slope)),
                BatchSize::LargeInput,
            )
        });
        group.bench_function(format!("{name} forward, no slope"), |b| {
            b.iter_batched_ref(
                || x.clone(),
                |y| elementwise::soft_clamp(y, h * w, &bounds, None),
                BatchSize::LargeInput,
            )
        });
        group.bench_function(format!("{name} backward"), |b| {
            b.iter_batched_ref(|| dy.clone(), |d| elementwise::soft_clamp_backward(d, &slope), BatchSize::LargeInput)
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
