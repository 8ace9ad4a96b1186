//! The transfer phase: one forward pass of a trained network repaints a photo.
//!
//! Small pictures go through whole. Larger ones go through in overlapping tiles
//! ([`crate::tiles`]) so memory stays bounded at any size. Two things make tiles agree with each
//! other and with the whole picture:
//! - **The pixel grid.** The network halves its input twice, so its output is not the same when
//!   the input is shifted by 1-3 pixels; every tile starts on a multiple of 4, on the whole
//!   picture's grid. (Unaligned, a trained network's tiles differed from the whole picture by 16
//!   levels on average, against a spread of 53.)
//! - **The statistics.** Instance normalisation makes a tile's result depend on its own
//!   statistics; so a first pass records each instance-norm layer's statistics on a copy of the
//!   whole picture reduced to one tile's size, and every tile is normalised with those. The
//!   reduced copy has a little less fine detail than the picture, so strokes come out slightly
//!   weaker than in a whole-picture pass (mean difference 7 against a spread of 53 for a 2x
//!   reduction, with no seams); a mosaic of full-resolution crops did worse (22), its crop edges
//!   dominating the statistics. Hence tiles as large as memory allows ([`default_tile`]).
//!
//! The picture itself gets a mirrored border before any of this ([`BORDER`]), cut away after.

use nn::layers::{Ctx, NormStats};
use nn::transformer::Transformer;
use tensor::{Tape, Tensor, Var};
use vgg::Vgg19;

use crate::image::{resize_exact, resize_longest, size};
use crate::tiles::{layout, map_tiles};
use crate::Error;

/// Memory one pass of the network may take by default, the whole picture's or one tile's:
/// 1.4 GiB, a little over what the full-width network's pass over a 1920x1080 picture (with
/// its border) takes (1.3 GiB), so that a Full-HD photo goes whole at either width; 3840x2160
/// then peaks at 1.0-1.2 GiB in tiles, within the 2 GB it must fit. Tiles cost time twice: the
/// statistics pass over a reduced copy, and the overlap computed twice (at 1920x1080 in
/// 1024-pixel tiles, 40% more pixels than one whole pass). So pictures go through whole
/// whenever this allows, and otherwise in tiles as large as it allows (see [`default_tile`]).
pub const PASS_BYTES: usize = (14 << 30) / 10;
/// Peak memory of a pass per pixel: a part that does not depend on the network's width (the
/// picture's own planes, before and after) and a part per channel of its first layer (every
/// activation's channels are a multiple of it). Fitted to peak RSS of whole passes (`/usr/bin/time
/// stylize apply MODEL IN -o OUT --tile 4096`, Xeon, 2026-11-29, since the upsampling layers read
/// their input in place): 195, 365 and 694 MiB at 0.57, 1.12 and 2.17 million pixels (border
/// included) at width 16, 356, 679 and 1,295 MiB at width 32; 335 and 626 bytes a pixel at the
/// largest.
const PASS_BYTES_PER_PIXEL: (usize, usize) = (50, 18);
/// Overlap between tiles: a quarter of it is discarded at each inner edge, the rest blended.
pub const TILE_OVERLAP: usize = 64;
/// The smallest tile: below it a tile would be mostly overlap. Smaller requests are raised to it.
pub const MIN_TILE: usize = 64;
/// The smallest side the network accepts: at 1/4 resolution its 3x3 reflection padding needs 2.
pub const MIN_SIDE: usize = 8;
/// Pixels of the picture's own mirror image added on every side before the network runs, and
/// cut away after. Why: the networks paint a band of chequered colour along every edge of a
/// picture. Measured with the shipped Starry Night network on the Tübingen photo (512x384),
/// against a pass over a copy mirrored by 48 pixels: without a border the outermost rows differ
/// by 45 levels on average and rows 64 in by 7; with 8 mirrored pixels by 18 and 4; with 16 by 8
/// and 3; with 32 by 1.4 throughout (the photo mirrored with numpy's `np.pad(..., mode="reflect")`
/// before `stylize apply`; `tests/train_apply.rs` measures 0 against 16 at 256 px). 16 removes the visible band; it costs 5-8% of the time at
/// 1024² and 18% at 512² (`benches/README.md`). A multiple of 4 keeps the picture on the
/// network's pixel grid. The band is learnt because it lowers the loss: next to VGG's zero
/// padding its high frequencies bring the early layers' Grams nearer the painting's, so Starry
/// Night's pictures score 5-27% worse without it (`models/README.md`) while looking better.
pub const BORDER: usize = 16;

/// The side of the largest square one pass of a network of `width` channels may take: in
/// [`PASS_BYTES`], or in three quarters of `free_bytes` (the memory available now, if known)
/// when that is less, so that a small machine gets smaller tiles rather than the OOM killer.
/// A multiple of 4, at least [`MIN_TILE`]. With memory to spare: 1,548 pixels at full width
/// (32) and 2,108 at half width (16), so a 1920x1080 photo with its border (1952x1112, 2.17
/// million pixels) goes through whole at either.
pub fn default_tile(width: usize, free_bytes: Option<u64>) -> usize {
    let free = free_bytes.map_or(usize::MAX, |b| usize::try_from(b / 4 * 3).unwrap_or(usize::MAX));
    let (fixed, per_channel) = PASS_BYTES_PER_PIXEL;
    let pixels = PASS_BYTES.min(free) / (fixed + per_channel * width);
    (pixels.isqrt() / 4 * 4).max(MIN_TILE)
}

/// Peak memory of a tiled picture's own copies per pixel, while its tiles' passes run and
/// after. During: the photo as given (kept for `--preserve-colors`), its bordered copy in VGG's
/// space, and the output being assembled with its blend weights, 40 bytes. After: those and the
/// output cropped, turned back into pixels and saved, 76 bytes, fitted to peak RSS with tiles
/// small enough that their passes hardly count (`/usr/bin/time stylize apply starry_night
/// IN.png -o OUT.png --tile 256 --size S` for S = 3840 and 7680, IN a 3840x2160 picture, Xeon,
/// 2026-11-29): 616 and 2,424 MiB at 8.5 and 33.4 million pixels (border included).
const PICTURE_BYTES_PER_PIXEL: (u64, u64) = (40, 76);

/// Bytes `apply` is expected to need at its peak for a `w x h` picture (before its border) with
/// a network of `width` channels and tiles of at most `tile` pixels a side: one pass over the
/// whole picture when it goes whole; else the larger of the picture's copies while a pass runs
/// (over the largest tile, or the statistics' reduced copy) and after. For 3840x2160 this says
/// 1.09 and 1.29 GB at widths 16 and 32 with the default tiles, where the peaks were 1.12 and
/// 1.28 GB ("Upsampling read in place; larger tiles" in `benches/README.md`).
pub fn peak_bytes(width: usize, w: usize, h: usize, tile: usize) -> u64 {
    let (fixed, per_channel) = PASS_BYTES_PER_PIXEL;
    let pass = (fixed + per_channel * width) as u64;
    let (w, h) = (w + 2 * BORDER, h + 2 * BORDER);
    let pixels = (w * h) as u64;
    let tile = tile.max(MIN_TILE);
    if goes_whole(w, h, tile) {
        return pass * pixels;
    }
    let overlap = TILE_OVERLAP.min(tile / 2);
    let ((_, tile_w), (_, tile_h)) = (layout(w, tile, overlap, 4), layout(h, tile, overlap, 4));
    let (stats_w, stats_h) = crate::image::longest_side_size(w, h, tile.min(STATS_SIDE));
    let passing = (tile_w * tile_h).max(stats_w * stats_h) as u64;
    let (during, after) = PICTURE_BYTES_PER_PIXEL;
    (during * pixels + pass * passing).max(after * pixels)
}

/// Refuses a `w x h` picture whose [`peak_bytes`] exceed the memory `available` (if known), so
/// that an absurd `--size` is an error naming the numbers, not an allocation failure.
pub fn check_memory(width: usize, w: usize, h: usize, tile: usize, available: Option<u64>) -> Result<(), Error> {
    crate::memory::refuse_beyond(peak_bytes(width, w, h, tile), available, |needed, available| Error::OutOfMemory {
        width: w,
        height: h,
        needed,
        available,
    })
}

/// Whether a `w x h` picture (its border included) goes through in one pass when passes may
/// take `tile x tile` pixels: memory grows with the pixels, not with the longest side.
pub fn goes_whole(w: usize, h: usize, tile: usize) -> bool {
    w.saturating_mul(h) <= tile.saturating_mul(tile)
}

/// The longest side of the reduced copy whose statistics normalise the tiles, when tiles are
/// larger: a 3840x2160 picture reduced 2.5x. The statistics pass costs time in proportion to
/// its pixels, and once the tiles grew to 2,108 px (the 1.4 GiB [`PASS_BYTES`]) a copy of a
/// tile's side made 3840x2160 take 10.5-10.7 s at half width, against 8.0-9.3 s with the
/// 1,492-px tiles before (`benches/README.md`, "Upsampling read in place; larger tiles").
pub const STATS_SIDE: usize = 1536;

/// `net`'s picture of `rgb` (`[1, 3, H, W]`, 0..255): whole if it has no more pixels than a
/// `tile x tile` square, border included ([`goes_whole`]), else in tiles of at most `tile`
/// pixels a side, normalised by the statistics of a copy of at most `tile` or [`STATS_SIDE`]
/// pixels a side, whichever is less.
pub fn stylize(net: &Transformer, rgb: &Tensor, tile: usize) -> Result<Tensor, Error> {
    stylize_tiled(net, rgb, tile, tile.min(STATS_SIDE))
}

/// [`stylize`] with the tiles normalised by the statistics of a copy reduced to `stats_side`
/// pixels (or of the picture itself if it is no larger; both with their [`BORDER`]), for tests
/// of the tiling.
pub fn stylize_tiled(net: &Transformer, rgb: &Tensor, tile: usize, stats_side: usize) -> Result<Tensor, Error> {
    let (w, h) = size(rgb);
    if w.min(h) < MIN_SIDE {
        return Err(Error::TooSmallToApply { width: w, height: h, min: MIN_SIDE });
    }
    let tile = tile.max(MIN_TILE);
    // Reflection needs a side longer than the border, which stays on the 4-pixel grid.
    let border = BORDER.min((w.min(h) - 1) / 4 * 4);
    let x = mirror_border(&Vgg19::preprocess(rgb)?, border);
    let (w, h) = size(&x);
    let y = if goes_whole(w, h, tile) {
        forward(net, &x, NormStats::Own)?.0
    } else {
        let sample = if w.max(h) <= stats_side {
            x.clone()
        } else {
            let (sw, sh) = crate::image::longest_side_size(w, h, stats_side);
            resize_exact(&x, sw, sh)
        };
        let (_, stats) = forward(net, &sample, NormStats::Record(Vec::new()))?;
        let NormStats::Record(stats) = stats else { unreachable!("recorded") };
        map_tiles(&x, tile, TILE_OVERLAP.min(tile / 2), 4, |t| {
            Ok::<_, Error>(forward(net, t, NormStats::Reuse(stats.clone()))?.0)
        })?
    };
    let y = crop(&y, border, border, w - 2 * border, h - 2 * border);
    Ok(Vgg19::deprocess(&y)?)
}

/// `x` (`[n, c, h, w]`) with `border` pixels of its mirror image on every side.
pub(crate) fn mirror_border(x: &Tensor, border: usize) -> Tensor {
    if border == 0 {
        return x.clone();
    }
    let (n, c, h, w) = x.shape().nchw().expect("an image");
    let (hp, wp) = (h + 2 * border, w + 2 * border);
    let out = tensor::kernels::pad::reflection_pad2d(x.data(), n * c, h, w, border);
    Tensor::new([n, c, hp, wp], out).expect("a padded image")
}

/// The network on one image in VGG's space, any size: the stride-2 layers round up and the
/// upsampling doubles, so the output is cropped back to the input's size.
fn forward(net: &Transformer, x: &Tensor, norm: NormStats) -> Result<(Tensor, NormStats), Error> {
    let (w, h) = size(x);
    let mut tape = Tape::new();
    let mut ctx = Ctx::new(&mut tape, false);
    ctx.norm_stats = norm;
    let y = net.forward(&mut ctx, &Var::constant(x.clone()))?;
    let stats = ctx.finish().norm_stats;
    Ok((crop(y.value(), 0, 0, w, h), stats))
}

/// The `w x h` of every plane whose top-left corner is at `(x0, y0)`.
fn crop(t: &Tensor, x0: usize, y0: usize, w: usize, h: usize) -> Tensor {
    let (tw, th) = size(t);
    if (tw, th) == (w, h) {
        return t.clone();
    }
    let (n, c, _, _) = t.shape().nchw().expect("an image");
    let mut out = Vec::with_capacity(n * c * w * h);
    for plane in t.data().chunks_exact(tw * th) {
        for row in plane.chunks_exact(tw).skip(y0).take(h) {
            out.extend_from_slice(&row[x0..x0 + w]);
        }
    }
    Tensor::new([n, c, h, w], out).expect("a crop")
}

/// The `(width, height)` of [`at_size`]'s picture of a `w x h` photo.
pub fn size_at(w: usize, h: usize, size: Option<usize>) -> (usize, usize) {
    match size {
        Some(s) if w.max(h) != s => crate::image::longest_side_size(w, h, s),
        _ => (w, h),
    }
}

/// `rgb` resized so its longest side is `size` (the 8-bit resize the reference uses), or as is.
pub fn at_size(rgb: &Tensor, size: Option<usize>) -> Tensor {
    match size {
        Some(s) => resize_longest(rgb, s),
        None => rgb.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The picture `apply` runs for a `w x h` photo: with its border on every side.
    fn bordered(w: usize, h: usize) -> (usize, usize) {
        (w + 2 * BORDER, h + 2 * BORDER)
    }

    /// The memory check lets through what the issue promises (3840x2160 in 2 GB, at either
    /// width, with the tiles `apply` picks for that much memory) and refuses what no machine has.
    #[test]
    fn the_memory_check_passes_4k_in_2_gb_and_refuses_absurd_sizes() {
        let two_gb = Some(2_000_000_000);
        for width in [16, 32] {
            let tile = default_tile(width, two_gb);
            check_memory(width, 3840, 2160, tile, two_gb).unwrap();
            let err = check_memory(width, 100_000, 75_000, tile, Some(64 << 30)).unwrap_err();
            assert!(matches!(err, Error::OutOfMemory { needed, .. } if needed > 64 << 30), "{err}");
        }
        // The estimates the docs give against the peaks measured.
        let gb = |b: u64| (b as f64 / 1e7).round() / 100.0;
        let tile = default_tile(16, None);
        assert_eq!(peak_bytes(16, 512, 512, tile), 338 * 544 * 544, "whole: one pass");
        assert_eq!(gb(peak_bytes(16, 3840, 2160, tile)), 1.09);
        assert_eq!(gb(peak_bytes(32, 3840, 2160, default_tile(32, None))), 1.29);
        assert_eq!(peak_bytes(16, 7680, 4320, 256), 76 * 7712 * 4352, "small tiles: the copies after");
        check_memory(16, 100_000, 75_000, tile, None).unwrap();
    }

    #[test]
    fn a_full_hd_photo_goes_whole_and_4k_in_tiles() {
        let half = default_tile(16, None);
        let (w, h) = bordered(1920, 1080);
        assert!(goes_whole(w, h, half), "1920x1080 in one pass of {half}² pixels");
        let (w4k, h4k) = bordered(3840, 2160);
        assert!(!goes_whole(w4k, h4k, half), "3840x2160 in tiles");
        // The full-width network takes about twice the memory a pixel, and Full HD still goes
        // whole there; 4K does not.
        let full = default_tile(32, None);
        assert!(goes_whole(w, h, full) && !goes_whole(w4k, h4k, full), "full width: {full}");
        // The sides `--tile`'s help and the docs give.
        assert_eq!((half, full), (2108, 1548));
    }

    #[test]
    fn tiles_shrink_with_the_width_and_stay_on_the_grid() {
        let tiles: Vec<usize> = [1, 8, 16, 32, 64, 1024].iter().map(|&c| default_tile(c, None)).collect();
        assert!(tiles.windows(2).all(|t| t[0] > t[1]), "{tiles:?}");
        assert!(tiles.iter().all(|&t| t % 4 == 0 && t >= MIN_TILE), "{tiles:?}");
        let (fixed, per_channel) = PASS_BYTES_PER_PIXEL;
        for c in [16, 32] {
            let t = default_tile(c, None);
            assert!(t * t * (fixed + per_channel * c) <= PASS_BYTES, "width {c}: {t}² over the budget");
        }
    }

    #[test]
    fn less_free_memory_gives_smaller_tiles_down_to_the_smallest() {
        let half = default_tile(16, None);
        assert_eq!(default_tile(16, Some(u64::MAX)), half, "plenty free: the default pass");
        // Three quarters of this is a quarter of the default pass: half the side.
        let small = default_tile(16, Some(PASS_BYTES as u64 / 3));
        assert!(small < half && small.abs_diff(half / 2) <= 4, "a quarter of the memory, half the side: {small}");
        assert_eq!(default_tile(16, Some(0)), MIN_TILE);
    }

    #[test]
    fn whole_is_decided_by_pixels_not_by_the_longest_side() {
        assert!(goes_whole(2000, 500, 1024), "a long strip of 1 M pixels fits a 1024² pass");
        assert!(!goes_whole(1025, 1024, 1024));
        assert!(goes_whole(usize::MAX, 1, usize::MAX), "no overflow");
    }
}
