//! One optimisation step, timed: VGG19 forward to the deepest layer the loss reads, the losses,
//! and the backward pass to the image, the same work as the reference's `bench` mode.
//!
//! The image is seeded noise, and its own features are the targets (as in the reference):
//! timing does not depend on the values. The first step warms caches and the allocator and is
//! not counted.

use std::time::Instant;

use tensor::Tensor;
use vgg::table::{self, Layer};
use vgg::Vgg19;

use crate::objective::{Layers, Objective, Weights};
use crate::Error;

/// Seconds per step and the rate they imply; what `bench --json` prints. `width` and `params`
/// describe the feed-forward network of `--apply` and `--train` (absent for a Gatys step), and
/// `batch` the crops of a training step.
#[derive(Debug, serde::Serialize)]
pub struct BenchReport {
    pub size: usize,
    pub threads: usize,
    pub median_s: f64,
    pub min_s: f64,
    pub max_s: f64,
    pub gflops: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<usize>,
}

/// Runs `f` once to warm up, then `iters` times; the report of those times for `flops` of work.
fn time(size: usize, iters: usize, flops: f64, mut f: impl FnMut() -> Result<(), Error>) -> Result<BenchReport, Error> {
    let mut times = Vec::with_capacity(iters);
    for i in 0..=iters {
        let t = Instant::now();
        f()?;
        if i > 0 {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    Ok(BenchReport {
        size,
        threads: rayon::current_num_threads(),
        median_s: median,
        min_s: times[0],
        max_s: times[times.len() - 1],
        gflops: flops / median / 1e9,
        width: None,
        params: None,
        batch: None,
    })
}

/// Times one forward pass of `net` on a `size x size` image, whole (no tiles).
pub fn time_apply(net: &nn::transformer::Transformer, size: usize, iters: usize) -> Result<BenchReport, Error> {
    let image = Tensor::uniform([1, 3, size, size], 0.0, 255.0, 0);
    let flops = net.forward_flops(size, size);
    let mut report = time(size, iters, flops, || crate::apply::stylize(net, &image, usize::MAX).map(drop))?;
    (report.width, report.params) = (Some(net.width), Some(net.num_params()));
    Ok(report)
}

/// Times one training step (`batch` crops of `size x size`, the default loss) of a fresh
/// network of `width`: network forward, VGG19 loss, backward through both, Adam. FLOPs count,
/// for each crop, the network three times (forward, input and weight gradients), VGG19's
/// forward to the content layer for the target, and a Gatys step ([`step_flops`]) for the loss
/// on the output.
pub fn time_train(
    vgg: &Vgg19,
    photos: &crate::photos::Photos,
    width: usize,
    batch: usize,
    iters: usize,
) -> Result<BenchReport, Error> {
    let size = photos.crop_size();
    let settings = crate::train::TrainSettings { size, batch, width, steps: usize::MAX, ..Default::default() };
    let style = Tensor::uniform([1, 3, size, size], 0.0, 255.0, 1);
    let mut trainer = crate::train::Trainer::new(vgg, &[(style, 1.0)], settings, Default::default())?;
    let layers = Layers::default();
    let content = Layers { content: layers.content.clone(), style: Vec::new() };
    let flops = batch as f64
        * (3.0 * trainer.net.forward_flops(size, size)
            + step_flops(size, size, &layers)?
            + step_flops(size, size, &content)? / 2.0);
    let mut report = time(size, iters, flops, || trainer.step(photos).map(drop))?;
    (report.width, report.params, report.batch) = (Some(width), Some(trainer.net.num_params()), Some(batch));
    Ok(report)
}

/// FLOPs of one step at `h x w` reading `layers`: every convolution up to the deepest layer,
/// forward and backward to its input (2·cout·cin·9·H·W each), and each style layer's Gram
/// matrix and its backward (2·C²·N each).
pub fn step_flops(h: usize, w: usize, layers: &Layers) -> Result<f64, Error> {
    let deepest = vgg::model::deepest(&layers.names())?;
    let (mut h, mut w) = (h as f64, w as f64);
    let (mut flops, mut channels) = (0.0, 3.0);
    for layer in table::LAYERS.iter().take(deepest + 1) {
        match layer {
            Layer::Conv { index } => {
                let spec = &table::CONVS[*index];
                flops += 2.0 * 2.0 * spec.out_channels as f64 * spec.in_channels as f64 * 9.0 * h * w;
                channels = spec.out_channels as f64;
            }
            Layer::Relu { .. } => {}
            Layer::Pool { .. } => (h, w) = ((h / 2.0).floor(), (w / 2.0).floor()),
        }
        if layers.style.iter().any(|(n, _)| n == layer.name()) {
            flops += 2.0 * 2.0 * channels * channels * h * w;
        }
    }
    Ok(flops)
}

/// Times `iters` steps (after one warm-up) on a `size x size` image with the default loss.
pub fn time_steps(vgg: &Vgg19, size: usize, iters: usize) -> Result<BenchReport, Error> {
    let layers = Layers::default();
    let image = Tensor::uniform([1, 3, size, size], 0.0, 255.0, 0);
    let objective = Objective::new(vgg, &image, &[(image.clone(), 1.0)], layers.clone(), Weights::default())?;
    let x = Vgg19::preprocess(&image)?;
    time(size, iters, step_flops(size, size, &layers)?, || objective.evaluate(&x, true).map(drop))
}
