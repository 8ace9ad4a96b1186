//! How much memory a run will need, estimated before any work so that an impossible size is
//! refused in the first second with the number, not after minutes of swapping.
//!
//! The largest part the engine can account for exactly: what the tape keeps for the backward
//! pass ([`saved_bytes`], checked against `Tape::saved_bytes` in the tests). The rest is the
//! live activations and gradients, the optimiser's history and the packed weights.

use tensor::kernels::conv::{ConvGeometry, PackedConv};
use vgg::table::{self, Layer, CONVS};

use crate::objective::Layers;
use crate::Error;

/// Bytes the tape keeps for one evaluation of the objective at `width x height` with `styles`
/// style images, op by op as `tensor`'s `Op::saved_bytes` counts them: a ReLU mask (1 byte per
/// value) per convolution, a max-pool argmax (1 byte per output), the features each Gram
/// saves and the `C x C` difference of each style target, the content difference, and the two
/// neighbour-difference images of the total variation (4 bytes per value).
pub fn saved_bytes(width: usize, height: usize, layers: &Layers, styles: usize) -> Result<u64, Error> {
    let names = layers.names();
    let deepest = vgg::model::deepest(&names)?;
    let (mut h, mut w, mut c) = (height as u64, width as u64, 3u64);
    let mut saved = 0u64;
    for (i, layer) in table::LAYERS.iter().enumerate().take(deepest + 1) {
        match layer {
            Layer::Conv { index } => c = CONVS[*index].out_channels as u64,
            Layer::Relu { .. } => saved += c * h * w,
            Layer::Pool { .. } => {
                (h, w) = (h / 2, w / 2);
                saved += c * h * w;
            }
        }
        let name = table::LAYERS[i].name();
        if layers.style.iter().any(|(n, _)| n == name) {
            saved += 4 * c * h * w + styles as u64 * 4 * c * c;
        }
        if layers.content == name {
            saved += 4 * c * h * w;
        }
    }
    let (h0, w0) = (height as u64, width as u64);
    saved += 4 * 3 * (h0 * w0.saturating_sub(1) + h0.saturating_sub(1) * w0);
    Ok(saved)
}

/// Bytes a run at `width x height` is expected to need at its peak: the tensors at the
/// peak, `history_vectors` copies of the image for the optimiser and four more for the image,
/// its gradient and the targets' inputs, the weights as the engine keeps them
/// (`PackedConv::bytes_for`: packed twice where both passes are direct, kept once as they are
/// where a pass is Winograd) with the one buffer Winograd transforms a layer's weights into at
/// each call (`PackedConv::transformed_bytes_for`), and [`PROCESS_BYTES`].
///
/// The tensors at the peak are the larger of two moments (found by counting the live blocks
/// through 512² and 1024² steps, `tensor::huge_pages::census`, `benches/README.md`, "The 1024²
/// peak, met"): the end of the forward pass, which holds all of [`saved_bytes`], and
/// conv1_2's direct forward, which holds relu1_1 (its Gram's features) with its ReLU mask, a
/// zero-padded copy of it, and the output with its mask: 3.5 images of the largest activation.
/// At default settings the two are within 4% of each other. The backward pass adds nothing
/// large: a Gram makes its gradient over its features, and a convolution adds its input
/// gradient into the one held (`gram_backward`, `conv_backward_input_add`).
pub fn estimate_bytes(
    width: usize,
    height: usize,
    layers: &Layers,
    styles: usize,
    history_vectors: usize,
) -> Result<u64, Error> {
    let deepest = vgg::model::deepest(&layers.names())?;
    let (mut h, mut w, mut c) = (height as u64, width as u64, 3u64);
    let (mut largest, mut weights, mut transformed) = (3 * h * w, 0u64, 0u64);
    for layer in table::LAYERS.iter().take(deepest + 1) {
        match layer {
            Layer::Conv { index } => {
                c = CONVS[*index].out_channels as u64;
                let spec = &CONVS[*index];
                let g = ConvGeometry::same3x3(spec.in_channels, spec.out_channels);
                let algorithms = vgg::model::conv_algorithms(spec.name, vgg::Purpose::Optimise);
                weights += PackedConv::bytes_for(g, algorithms) as u64;
                transformed = transformed.max(PackedConv::transformed_bytes_for(g, algorithms) as u64);
            }
            Layer::Relu { .. } => {}
            Layer::Pool { .. } => (h, w) = (h / 2, w / 2),
        }
        largest = largest.max(c * h * w);
    }
    let image = 3 * (width * height) as u64 * 4;
    let saved = saved_bytes(width, height, layers, styles)?;
    let first_block = 4 * largest * 7 / 2;
    Ok(saved.max(first_block) + (history_vectors as u64 + 4) * image + weights + transformed + PROCESS_BYTES)
}

/// Memory a run holds besides its tensors and weights: the code, thread stacks, the mapped
/// weights file, and the allocator's slack among blocks below its mmap threshold. Measured as
/// peak RSS less the peak of live blocks (`STYLIZE_MEMORY_CENSUS=1`, three Adam steps): 56 MiB
/// at 512², 18 at 1024².
pub const PROCESS_BYTES: u64 = 64 << 20;

/// `Err(refusal(needed, available))` when `needed` bytes exceed the memory `available` (if
/// known; `None` passes): the one rule of every memory check made before work.
pub fn refuse_beyond(
    needed: u64,
    available: Option<u64>,
    refusal: impl FnOnce(u64, u64) -> Error,
) -> Result<(), Error> {
    match available {
        Some(available) if needed > available => Err(refusal(needed, available)),
        _ => Ok(()),
    }
}

/// Refuses one evaluation of the objective at `width x height` (a forward and backward pass,
/// no optimiser's history: `stylize eval`, `stylize bench`) that would not fit in the memory
/// `available` (if known).
pub fn check_evaluation(
    width: usize,
    height: usize,
    layers: &Layers,
    styles: usize,
    available: Option<u64>,
) -> Result<(), Error> {
    let needed = estimate_bytes(width, height, layers, styles, 0)?;
    refuse_beyond(needed, available, |needed, available| Error::OutOfMemory { width, height, needed, available })
}

/// Peak memory of one style image's target pass per pixel of the image as resized: VGG's
/// forward to the deepest style layer, every style layer's features kept for its Gram. Fitted
/// to peak RSS (`/usr/bin/time stylize run examples/content_tubingen.jpg
/// examples/style_starry_night.jpg -o OUT --size 64 --iters 1 --scales 1 --style-scale S`, the
/// painting resized to 1024, 2048 and 3072 px, Xeon, 2026-11-29): 568, 2,084 and 4,609 MiB,
/// 808 bytes a pixel.
const STYLE_BYTES_PER_PIXEL: u64 = 810;

/// Bytes computing the style targets of images of `sizes` (width, height, as resized) takes at
/// its peak: they are computed one after another, so the largest decides.
pub fn style_targets_bytes(sizes: &[(usize, usize)]) -> u64 {
    let largest = sizes.iter().map(|&(w, h)| (w as u64).saturating_mul(h as u64)).max().unwrap_or(0);
    STYLE_BYTES_PER_PIXEL.saturating_mul(largest).saturating_add(PROCESS_BYTES)
}

/// Refuses style images of `sizes` whose targets would not fit in the memory `available` (if
/// known): a large `--style-scale` used to end in an allocation failure.
pub fn check_style_sizes(sizes: &[(usize, usize)], available: Option<u64>) -> Result<(), Error> {
    let Some(&(width, height)) = sizes.iter().max_by_key(|&&(w, h)| w.saturating_mul(h)) else { return Ok(()) };
    refuse_beyond(style_targets_bytes(sizes), available, |needed, available| Error::StyleOutOfMemory {
        width,
        height,
        needed,
        available,
    })
}

/// Peak memory of a training step, fitted to peak RSS of `stylize bench --train --size S
/// --batch B --width W --iters 2` (the default border of 16, Xeon, 2026-11-29): 618 and 1,019 MiB
/// at width 16 for 1 and 4 crops of 256² (989 for one of 512²), 703 and 1,295 MiB at width 32.
/// Per pixel of the crops: a part for VGG and the loss, and a part per channel of the network's
/// first layer; and a fixed part (VGG's weights, kept transformed for Winograd, the style
/// targets, the network and Adam).
const TRAIN_BYTES_PER_PIXEL: (u64, u64) = (1040, 66);
const TRAIN_FIXED_BYTES: u64 = 508 << 20;

/// Bytes a training step on `batch` crops of `size x size` with a network of `width` channels
/// is expected to need at its peak (within 5% above the figures of [`TRAIN_BYTES_PER_PIXEL`]),
/// and 32 bytes a parameter beyond those of the networks measured (the parameters, their
/// gradients, Adam's two moments, the update and the checkpoint's copy): 54 MB at width 32,
/// but a width of thousands would need more for its parameters than for its activations.
pub fn train_step_bytes(batch: usize, size: usize, width: usize) -> u64 {
    let (per_pixel, per_channel) = TRAIN_BYTES_PER_PIXEL;
    let pixels = (batch as u64).saturating_mul((size * size) as u64);
    let activations = pixels.saturating_mul(per_pixel + per_channel * width as u64);
    let params = 32 * approx_params(width).saturating_sub(approx_params(32));
    TRAIN_FIXED_BYTES + activations.saturating_add(params)
}

/// About the parameters of Johnson et al.'s network at `width` (`nn::transformer`): the 3x3
/// convolutions' 1620·width² (two down, ten residual, two up) and the 9x9 ends' 486·width;
/// the norms and biases, a few thousand, are left out.
pub fn approx_params(width: usize) -> u64 {
    let w = width as u64;
    w.saturating_mul(w).saturating_mul(1620).saturating_add(486 * w)
}

/// Memory available to this process, from `/proc/meminfo` (Linux); `None` elsewhere.
pub fn available_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Human-readable bytes to about three digits, e.g. "1.75 GiB", "22.1 GiB", "514 MiB".
pub fn format_bytes(b: u64) -> String {
    let gib = b as f64 / (1u64 << 30) as f64;
    if gib >= 10.0 {
        format!("{gib:.1} GiB")
    } else if gib >= 1.0 {
        format!("{gib:.2} GiB")
    } else {
        format!("{:.0} MiB", b as f64 / (1u64 << 20) as f64)
    }
}
