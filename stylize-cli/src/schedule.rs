//! Coarse to fine: the sizes a run optimises at (Gatys et al. 2017, "Controlling Perceptual
//! Factors in Neural Style Transfer", section 5: optimise a downsampled image first, then
//! upsample it as the start of the next scale; the coarse scales settle the layout cheaply).

/// With the number of scales unset, the coarsest scale is at least this long on its longest side.
pub const AUTO_SCALE_MIN: usize = 256;

/// The longest sides to optimise at, coarse to fine, each twice the previous, ending at `size`.
/// `scales: None` picks the number: halve while the coarse scale stays at least
/// [`AUTO_SCALE_MIN`] (512 -> [256, 512], 1024 -> [256, 512, 1024]). No scale is shorter than
/// `min_side`, the smallest side VGG19's deepest layer accepts; scales that would be are dropped.
pub fn scale_sizes(size: usize, scales: Option<usize>, min_side: usize) -> Vec<usize> {
    let n = scales.unwrap_or_else(|| {
        let mut n = 1;
        while size >> n >= AUTO_SCALE_MIN {
            n += 1;
        }
        n
    });
    let mut sizes: Vec<usize> = (0..n.min(usize::BITS as usize)).rev().map(|i| size >> i).collect();
    sizes.retain(|&s| s >= min_side);
    sizes.dedup();
    if sizes.is_empty() {
        sizes.push(size);
    }
    sizes
}

/// The [`min_change`](crate::transfer::Settings::min_change) threshold at a scale of `pixels`,
/// when the coarsest scale has `coarsest` pixels: `min_change · pixels / coarsest`.
///
/// A step's cost grows with its pixels, so a scale 2x finer is stopped at 4x the relative
/// progress per step: every scale ends once its progress per second falls below the same rate.
/// The cheap coarse scales settle the layout; the costly finest one restores the detail the
/// upsampling blurred (its first steps gain the most) and stops once it gains little per second.
pub fn min_change_at(min_change: f32, pixels: usize, coarsest: usize) -> f32 {
    min_change * pixels as f32 / coarsest.max(1) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_scales_keep_the_coarsest_at_256_or_more() {
        assert_eq!(scale_sizes(192, None, 16), [192]);
        assert_eq!(scale_sizes(512, None, 16), [256, 512]);
        assert_eq!(scale_sizes(1000, None, 16), [500, 1000]);
        assert_eq!(scale_sizes(1024, None, 16), [256, 512, 1024]);
    }

    #[test]
    fn explicit_scales_stop_at_the_smallest_side_vgg_accepts() {
        assert_eq!(scale_sizes(64, Some(2), 16), [32, 64]);
        assert_eq!(scale_sizes(64, Some(4), 16), [16, 32, 64]);
        assert_eq!(scale_sizes(64, Some(1), 16), [64]);
        assert_eq!(scale_sizes(20, Some(3), 16), [20], "the final size is kept even when too small; the run checks it");
        assert_eq!(scale_sizes(8, Some(2), 16), [8]);
    }

    #[test]
    fn finer_scales_stop_at_proportionally_more_progress_per_step() {
        assert_eq!(min_change_at(1e-3, 256 * 128, 256 * 128), 1e-3);
        assert_eq!(min_change_at(1e-3, 512 * 256, 256 * 128), 4e-3);
        assert_eq!(min_change_at(0.0, 512 * 256, 256 * 128), 0.0, "0 still runs every step");
    }
}
