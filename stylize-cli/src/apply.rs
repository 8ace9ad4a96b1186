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
//!   dominating the statistics. Hence tiles as large as memory allows ([`DEFAULT_TILE`]).
//!
//! The picture itself gets a mirrored border before any of this ([`BORDER`]), cut away after.

use nn::layers::{Ctx, NormStats};
use nn::transformer::Transformer;
use tensor::{Tape, Tensor, Var};
use vgg::Vgg19;

use crate::image::{resize_exact, resize_longest, size};
use crate::tiles::map_tiles;
use crate::Error;

/// Tile side for pictures larger than it, and the side of the copy whose statistics the tiles
/// share. A 1024x1024 pass of the full-width network peaks at 1.17 GB (0.64 GB at half width,
/// measured with `/usr/bin/time`), which keeps a 3840x2160 picture in tiles under 2 GB, and most
/// photos go through whole.
pub const DEFAULT_TILE: usize = 1024;
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

/// `net`'s picture of `rgb` (`[1, 3, H, W]`, 0..255), in tiles of at most `tile` pixels.
pub fn stylize(net: &Transformer, rgb: &Tensor, tile: usize) -> Result<Tensor, Error> {
    stylize_tiled(net, rgb, tile, tile)
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
    // A picture that fits in a tile goes through whole, border and all (up to 2·BORDER more).
    let whole = w.max(h) <= tile;
    // Reflection needs a side longer than the border, which stays on the 4-pixel grid.
    let border = BORDER.min((w.min(h) - 1) / 4 * 4);
    let x = mirror_border(&Vgg19::preprocess(rgb)?, border);
    let (w, h) = size(&x);
    let y = if whole {
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

/// `rgb` resized so its longest side is `size` (the 8-bit resize the reference uses), or as is.
pub fn at_size(rgb: &Tensor, size: Option<usize>) -> Tensor {
    match size {
        Some(s) => resize_longest(rgb, s),
        None => rgb.clone(),
    }
}
