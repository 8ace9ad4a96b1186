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
