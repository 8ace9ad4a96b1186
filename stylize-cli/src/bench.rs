//! `stylize bench`: seconds per style-transfer iteration (VGG19 forward to relu5_1, the losses,
//! and the backward pass to the image), the same work as the reference's `bench` mode.
//!
//! The image is seeded noise at `--size` x `--size`, and its own features are the targets (as
//! in the reference): timing does not depend on the values. The first iteration warms caches and
//! the allocator and is not counted.

use std::time::Instant;

use anyhow::Result;
use vgg::table::{self, Layer};
use vgg::Vgg19;

use crate::cli::BenchArgs;
use crate::objective::{image_tensor, Layers, Objective, Weights, DEFAULT_STYLE_LAYERS};
use crate::run::noise_image;

/// What `bench --json` prints.
#[derive(Debug, serde::Serialize)]
pub struct BenchReport {
    pub size: usize,
    pub threads: usize,
    pub median_s: f64,
    pub min_s: f64,
    pub max_s: f64,
    pub gflops: f64,
}

/// FLOPs of one iteration at `h x w`: every convolution up to relu5_1 forward and backward to
/// its input (2·cout·cin·9·H·W each), and each style layer's Gram matrix and its backward
/// (2·C²·N each).
pub fn iteration_flops(h: usize, w: usize) -> f64 {
    let (mut h, mut w) = (h as f64, w as f64);
    let mut flops = 0.0;
    let mut channels = 3.0;
    for layer in table::LAYERS.iter() {
        match layer {
            Layer::Conv { index, .. } => {
                let spec = &table::CONVS[*index];
                flops += 2.0 * 2.0 * spec.out_channels as f64 * spec.in_channels as f64 * 9.0 * h * w;
                channels = spec.out_channels as f64;
            }
            Layer::Relu { .. } => {
                if DEFAULT_STYLE_LAYERS.contains(&layer.name()) {
                    flops += 2.0 * 2.0 * channels * channels * h * w;
                }
            }
            Layer::Pool { .. } => {
                h = (h / 2.0).floor();
                w = (w / 2.0).floor();
            }
        }
        if layer.name() == "relu5_1" {
            break;
        }
    }
    flops
}

pub fn bench(args: &BenchArgs) -> Result<()> {
    let weights_path = vgg::resolve_weights_path(args.compute.weights.as_deref())?;
    let vgg = Vgg19::load(&weights_path)?;
    let image = noise_image(args.size, args.size, 0);
    let x = image_tensor(image.data, args.size, args.size)?;
    let objective = Objective::new(&vgg, &x, &[(x.clone(), 1.0)], Layers::default(), Weights::default())?;
    let mut times = Vec::with_capacity(args.iters);
    for i in 0..=args.iters {
        let t = Instant::now();
        let (losses, grad) = objective.evaluate(&x, true)?;
        let seconds = t.elapsed().as_secs_f64();
        anyhow::ensure!(losses.total.is_finite() && grad.is_some(), "the benchmark's loss is not finite");
        if i > 0 {
            times.push(seconds);
        }
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let report = BenchReport {
        size: args.size,
        threads: rayon::current_num_threads(),
        median_s: median,
        min_s: times[0],
        max_s: times[times.len() - 1],
        gflops: iteration_flops(args.size, args.size) / median / 1e9,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{}x{} on {} threads: median {:.3} s per iteration (min {:.3}, max {:.3}), {:.1} GFLOP/s",
            report.size, report.size, report.threads, report.median_s, report.min_s, report.max_s, report.gflops
        );
    }
    Ok(())
}
