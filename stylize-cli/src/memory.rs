//! How much memory a run will need, estimated before any work so that an impossible size is
//! refused in the first second with the number, not after minutes of swapping.

use vgg::table::{self, Layer};

/// Bytes a style-transfer run at `width x height` is expected to need at its peak, counting what
/// the engine keeps: per VGG19 layer up to `deepest`, the ReLU masks and max-pool argmaxes
/// (1 byte each) and the style features Gram saves (4 bytes); the two largest live activations
/// and gradients (4 bytes each); the optimiser's history (`history_vectors` copies of the image);
/// and the packed weights.
pub fn estimate_bytes(width: usize, height: usize, history_vectors: usize) -> u64 {
    let (mut h, mut w) = (height as u64, width as u64);
    let mut channels = 3u64;
    let mut saved = 0u64;
    let mut largest = 3 * h * w;
    for layer in table::LAYERS.iter() {
        match layer {
            Layer::Conv { index, .. } => channels = table::CONVS[*index].out_channels as u64,
            Layer::Relu { .. } => saved += 5 * channels * h * w,
            Layer::Pool { .. } => {
                h /= 2;
                w /= 2;
                saved += channels * h * w;
            }
        }
        largest = largest.max(channels * h * w);
        if layer.name() == "relu5_1" {
            break;
        }
    }
    let image = 3 * (width * height) as u64 * 4;
    let weights = 2 * 20_000_000 * 4;
    saved + 4 * largest * 4 + (history_vectors as u64 + 4) * image + weights
}

/// Memory available to this process, from `/proc/meminfo` (Linux); `None` elsewhere.
pub fn available_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Human-readable bytes, e.g. "3.2 GiB".
pub fn format_bytes(b: u64) -> String {
    let gib = b as f64 / (1u64 << 30) as f64;
    if gib >= 1.0 {
        format!("{gib:.1} GiB")
    } else {
        format!("{:.0} MiB", b as f64 / (1u64 << 20) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_grows_with_size_and_history() {
        let small = estimate_bytes(256, 256, 200);
        let big = estimate_bytes(1024, 1024, 200);
        assert!(big > 10 * small / 2, "{small} -> {big}");
        assert!(estimate_bytes(512, 512, 200) > estimate_bytes(512, 512, 4));
        // 512x512 with L-BFGS history 100 (200 vectors): under 2 GiB, over 0.5 GiB.
        let e = estimate_bytes(512, 512, 200);
        assert!(e > 1 << 29 && e < 1 << 31, "{}", format_bytes(e));
    }
}
