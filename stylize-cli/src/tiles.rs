//! Any image size in bounded memory: run a network over overlapping tiles and blend them.
//!
//! A convolutional network's output at a pixel depends only on the input around it (its
//! receptive field), so an image can be cut into tiles that overlap by more than the distance
//! over which tile borders disturb the result, each tile run on its own, and the results
//! stitched. Stitching with hard cuts would show the border effects as seams; instead each
//! output pixel is the weighted mean of every tile covering it. A tile's weight is 0 in the
//! `overlap / 4` pixels next to an inner edge (where its own border disturbs it most; the
//! neighbour covers them fully), then ramps linearly to 1 over the middle half of the overlap.
//! So a function whose output depends on at most `overlap / 4` pixels around it comes out
//! exactly as on the whole image, and a network's wider border effects fade out smoothly.
//! Memory is the input, the output and its weight sums, plus one tile's worth of activations.

use tensor::Tensor;

use crate::image::size;

/// Where tiles start along an axis of `len` pixels, and their length: as few tiles as cover the
/// axis with at most `tile` pixels each and at least `overlap` between neighbours, all of one
/// length (so no tile is mostly overlap: 1080 pixels in tiles of 1024 are two of 572, not 1024
/// and 1024), the last ending flush with the end. One tile if it fits.
///
/// Every start is a multiple of `align`, so that a network that halves its input `k` times
/// (`align = 2^k`) sees each tile on the same pixel grid as the whole image: shifted by a pixel
/// or two, its output would differ. The last tile may be up to `align - 1` pixels shorter.
pub fn layout(len: usize, tile: usize, overlap: usize, align: usize) -> (Vec<usize>, usize) {
    let tile = tile / align * align;
    // Rounding a start to the grid can cost up to `align` pixels of overlap: plan with both.
    let margin = overlap + align;
    assert!(margin < tile, "tiles of {tile} pixels cannot overlap by {overlap} on a grid of {align}");
    if len <= tile {
        return (vec![0], len);
    }
    let n = (len - margin).div_ceil(tile - margin);
    let length = ((len + (n - 1) * margin).div_ceil(n)).div_ceil(align) * align;
    let length = length.min(tile);
    let span = len - length;
    let mut starts: Vec<usize> = (0..n - 1).map(|i| i * span / (n - 1) / align * align).collect();
    starts.push(span.div_ceil(align) * align);
    (starts, length)
}

/// The blending weight of position `i` in a tile of `n` pixels that starts at `start` on an
/// axis of `len`: at each edge that is not the image's own, 0 for `overlap / 4` pixels, then a
/// ramp to 1 over the middle half of the overlap.
fn weight(i: usize, n: usize, start: usize, len: usize, overlap: usize) -> f32 {
    let margin = (overlap / 4) as f32;
    let width = (overlap as f32 - 2.0 * margin).max(1.0);
    let ramp = |d: usize| ((d as f32 + 0.5 - margin) / width).clamp(0.0, 1.0);
    let left = if start == 0 { 1.0 } else { ramp(i) };
    let right = if start + n == len { 1.0 } else { ramp(n - 1 - i) };
    left.min(right)
}

/// `f` over `img` (`[1, c, h, w]`) in tiles of at most `tile x tile` pixels overlapping by at
/// least `overlap` and starting on multiples of `align` ([`layout`]), blended as the module docs
/// say.
/// `f` must return a tensor of its input's size (any channel count).
pub fn map_tiles<E>(
    img: &Tensor,
    tile: usize,
    overlap: usize,
    align: usize,
    mut f: impl FnMut(&Tensor) -> Result<Tensor, E>,
) -> Result<Tensor, E> {
    let (w, h) = size(img);
    let ((xs, tile_w), (ys, tile_h)) = (layout(w, tile, overlap, align), layout(h, tile, overlap, align));
    if xs.len() == 1 && ys.len() == 1 {
        return f(img);
    }
    let c_in = img.shape().dims()[1];
    let mut out: Vec<f32> = Vec::new();
    let mut weights = vec![0.0f32; w * h];
    let mut c_out = 0;
    for &y0 in &ys {
        for &x0 in &xs {
            let (tw, th) = (tile_w.min(w - x0), tile_h.min(h - y0));
            let mut crop = Vec::with_capacity(c_in * tw * th);
            for plane in img.data().chunks_exact(w * h) {
                for row in plane.chunks_exact(w).skip(y0).take(th) {
                    crop.extend_from_slice(&row[x0..x0 + tw]);
                }
            }
            let y = f(&Tensor::new([1, c_in, th, tw], crop).expect("a crop of the image"))?;
            assert_eq!(size(&y), (tw, th), "map_tiles: the function must keep the tile's size");
            if out.is_empty() {
                c_out = y.shape().dims()[1];
                out = vec![0.0; c_out * w * h];
            }
            for ty in 0..th {
                let wy = weight(ty, th, y0, h, overlap);
                for tx in 0..tw {
                    let k = wy * weight(tx, tw, x0, w, overlap);
                    let at = (y0 + ty) * w + x0 + tx;
                    weights[at] += k;
                    for c in 0..c_out {
                        out[c * w * h + at] += k * y.data()[(c * th + ty) * tw + tx];
                    }
                }
            }
        }
    }
    for plane in out.chunks_exact_mut(w * h) {
        plane.iter_mut().zip(&weights).for_each(|(v, k)| *v /= k);
    }
    Ok(Tensor::new([1, c_out, h, w], out).expect("the blended planes"))
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;

    #[test]
    fn tiles_cover_the_axis_evenly_and_end_flush() {
        assert_eq!(layout(100, 128, 16, 1), (vec![0], 100));
        assert_eq!(layout(128, 128, 16, 1), (vec![0], 128));
        assert_eq!(layout(1080, 1024, 64, 4), (vec![0, 504], 576));
        assert_eq!(layout(1920, 1024, 64, 4), (vec![0, 924], 996));
        for len in [129, 300, 1000, 1080, 3839, 3840] {
            for (tile, overlap, align) in [(128, 32, 1), (128, 32, 4), (1024, 64, 4), (97, 10, 4)] {
                let (s, length) = layout(len, tile, overlap, align);
                assert!(length <= tile, "{len}: {length}");
                assert!(s.iter().all(|x| x % align == 0), "{len}: {s:?} off the grid");
                assert!(
                    s.windows(2).all(|p| p[1] > p[0] && p[0] + length >= p[1] + overlap),
                    "{len}: {s:?} x {length}"
                );
                let end = s.last().unwrap() + length;
                assert!(end >= len && end < len + align, "{len}: {s:?} x {length} does not end flush");
                let fewer = (len - overlap - align).div_ceil(tile / align * align - overlap - align);
                assert_eq!(s.len(), fewer, "{len}: {s:?}");
            }
        }
    }

    /// A 3x3 mean with edge replication: local, so tiles overlapping by more than its radius
    /// must reproduce the whole-image result.
    fn blur(x: &Tensor) -> Result<Tensor, Infallible> {
        let (w, h) = size(x);
        let mut out = Vec::with_capacity(x.data().len());
        for plane in x.data().chunks_exact(w * h) {
            for y in 0..h {
                for xx in 0..w {
                    let mut s = 0.0;
                    for dy in [-1i64, 0, 1] {
                        for dx in [-1i64, 0, 1] {
                            let yy = (y as i64 + dy).clamp(0, h as i64 - 1) as usize;
                            let xq = (xx as i64 + dx).clamp(0, w as i64 - 1) as usize;
                            s += plane[yy * w + xq];
                        }
                    }
                    out.push(s / 9.0);
                }
            }
        }
        Ok(Tensor::new(x.shape(), out).unwrap())
    }

    #[test]
    fn a_local_function_comes_out_as_if_run_on_the_whole_image() {
        let img = Tensor::uniform([1, 3, 45, 70], 0.0, 255.0, 9);
        let whole = blur(&img).unwrap();
        // Overlap 8: the blur's 1-pixel border effect lies inside the 2 pixels given weight 0.
        let tiled = map_tiles(&img, 16, 8, 1, blur).unwrap();
        assert_eq!(tiled.shape(), whole.shape());
        let worst = tiled.data().iter().zip(whole.data()).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-3, "{worst}");
        // Overlap 2 has no margin: the border pixels blend in, and the result visibly differs.
        let thin = map_tiles(&img, 16, 2, 1, blur).unwrap();
        let worst = thin.data().iter().zip(whole.data()).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst > 1.0, "{worst}");
        let identity = map_tiles(&img, 16, 6, 4, |t| Ok::<_, Infallible>(t.clone())).unwrap();
        let worst = identity.data().iter().zip(img.data()).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "the weights are a partition of unity: {worst}");
    }

    #[test]
    fn one_tile_is_the_function_itself() {
        let img = Tensor::uniform([1, 3, 20, 30], 0.0, 1.0, 1);
        let mut calls = 0;
        let out = map_tiles(&img, 32, 8, 4, |t| {
            calls += 1;
            blur(t)
        })
        .unwrap();
        assert_eq!((calls, out.data()), (1, blur(&img).unwrap().data()));
    }
}
