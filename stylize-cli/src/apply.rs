//! The transfer phase: one forward pass of a trained network repaints a photo.
//!
//! Small pictures go through whole. Larger ones go through in overlapping tiles
//! ([`crate::tiles`]) so memory stays bounded at any size. Instance normalisation makes a tile's
//! result depend on its own statistics, and tiles with different statistics would disagree at
//! their seams; so a first pass over the whole picture, reduced to one tile's size, records each
//! instance-norm layer's statistics, and every tile is then normalised with those. A reduced
//! copy's per-channel means and variances are close to the full picture's (they are averages
//! over the same scene), and, above all, every tile shares them.

use nn::layers::{Ctx, NormStats};
use nn::transformer::Transformer;
use tensor::{Tape, Tensor, Var};
use vgg::Vgg19;

use crate::image::{resize_exact, resize_longest, size};
use crate::tiles::map_tiles;
use crate::Error;

/// Tile side for pictures larger than it: a 512x512 tile of the full-width network needs about
/// 300 MB of activations, and the network's border effects fade well within the overlap.
pub const DEFAULT_TILE: usize = 512;
/// Overlap between tiles: a quarter of it is discarded at each inner edge, the rest blended.
pub const TILE_OVERLAP: usize = 64;
/// The smallest side the network accepts: at 1/4 resolution its 3x3 reflection padding needs 2.
pub const MIN_SIDE: usize = 8;

/// `net`'s picture of `rgb` (`[1, 3, H, W]`, 0..255), in tiles of at most `tile` pixels.
pub fn stylize(net: &Transformer, rgb: &Tensor, tile: usize) -> Result<Tensor, Error> {
    let (w, h) = size(rgb);
    if w.min(h) < MIN_SIDE {
        return Err(Error::TooSmallToApply { width: w, height: h, min: MIN_SIDE });
    }
    let x = Vgg19::preprocess(rgb)?;
    let y = if w.max(h) <= tile {
        forward(net, &x, NormStats::Own)?.0
    } else {
        let reduced = resize_longest_float(&x, tile);
        let (_, stats) = forward(net, &reduced, NormStats::Record(Vec::new()))?;
        let NormStats::Record(stats) = stats else { unreachable!("recorded") };
        map_tiles(&x, tile, TILE_OVERLAP.min(tile / 2), |t| {
            Ok::<_, Error>(forward(net, t, NormStats::Reuse(stats.clone()))?.0)
        })?
    };
    Ok(Vgg19::deprocess(&y)?)
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
    Ok((crop(y.value(), w, h), stats))
}

/// The top-left `w x h` of every plane.
fn crop(t: &Tensor, w: usize, h: usize) -> Tensor {
    let (tw, th) = size(t);
    if (tw, th) == (w, h) {
        return t.clone();
    }
    let (n, c, _, _) = t.shape().nchw().expect("an image");
    let mut out = Vec::with_capacity(n * c * w * h);
    for plane in t.data().chunks_exact(tw * th) {
        for row in plane.chunks_exact(tw).take(h) {
            out.extend_from_slice(&row[..w]);
        }
    }
    Tensor::new([n, c, h, w], out).expect("a crop")
}

/// Resize so the longest side is `longest`, on float data (VGG space, not 8-bit).
fn resize_longest_float(x: &Tensor, longest: usize) -> Tensor {
    let (w, h) = size(x);
    let (nw, nh) = crate::image::longest_side_size(w, h, longest);
    resize_exact(x, nw, nh)
}

/// `rgb` resized so its longest side is `size` (the 8-bit resize the reference uses), or as is.
pub fn at_size(rgb: &Tensor, size: Option<usize>) -> Tensor {
    match size {
        Some(s) => resize_longest(rgb, s),
        None => rgb.clone(),
    }
}
