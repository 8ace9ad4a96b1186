//! Resizing: a port of Pillow's separable Lanczos resampler (`libImaging/Resample.c`, Pillow >= 4).
//!
//! The reference resizes its 8-bit images with `Image.resize(..., Image.LANCZOS)` and only then
//! converts to float, so [`resize_longest`] does the same on 8-bit values with Pillow's fixed-point
//! rounding: its results are integers equal to the reference's. [`resize_exact`] runs the same
//! filter on floats without rounding or clamping, for the image being optimised.

use std::f64::consts::PI;

use tensor::Tensor;

use super::size;

// Why a port and not a crate (measured against Pillow 13.0.0, 2026-11-25): `fast_image_resize`
// 6.1 runs the vertical pass first on u8, clipping in between, and keeps its weights in i16
// (at most 15 bits); `image` 0.25 also goes vertical first, through f32. On photos both differ
// from Pillow by ±1 to ±42 in tens of thousands of values, and even a float emulation misses the
// exact .5 ties that only Pillow's 22-bit weights, horizontal pass first, decide. The golden
// numbers need Pillow's values, so the 8-bit path is Pillow's `ImagingResample*_8bpc` re-done.
// `fast_image_resize` on f32 planes does equal [`resize_exact`] bit for bit (3x faster), but it
// would bring ~25k lines of unsafe SIMD for ~60 ms a run; the float path shares `axis_taps`.

/// Lanczos-3: sinc(x) sinc(x/3) on [-3, 3). Pillow's `lanczos_filter`, support 3.
fn lanczos3(x: f64) -> f64 {
    fn sinc(x: f64) -> f64 {
        if x == 0.0 {
            1.0
        } else {
            (x * PI).sin() / (x * PI)
        }
    }
    if (-3.0..3.0).contains(&x) {
        sinc(x) * sinc(x / 3.0)
    } else {
        0.0
    }
}

/// Filter taps for resampling one axis from `n_in` to `n_out` samples (Pillow's
/// `precompute_coeffs`). Output i reads inputs `start[i] .. start[i] + taps[i].len()`.
/// When shrinking, the kernel is stretched by the scale so it also low-passes (anti-aliasing).
struct AxisTaps {
    start: Vec<usize>,
    taps: Vec<Vec<f64>>,
}

fn axis_taps(n_in: usize, n_out: usize) -> AxisTaps {
    let scale = n_in as f64 / n_out as f64;
    let filter_scale = scale.max(1.0);
    let support = 3.0 * filter_scale;
    let mut start = Vec::with_capacity(n_out);
    let mut taps = Vec::with_capacity(n_out);
    for i in 0..n_out {
        let center = (i as f64 + 0.5) * scale;
        // `as i64` truncates toward zero, as C's (int) does in Pillow.
        let lo = ((center - support + 0.5) as i64).max(0) as usize;
        let hi = ((center + support + 0.5) as i64).min(n_in as i64) as usize;
        let mut w: Vec<f64> = (lo..hi).map(|x| lanczos3((x as f64 - center + 0.5) / filter_scale)).collect();
        let sum: f64 = w.iter().sum();
        if sum != 0.0 {
            w.iter_mut().for_each(|v| *v /= sum);
        }
        start.push(lo);
        taps.push(w);
    }
    AxisTaps { start, taps }
}

/// Pillow's 8-bit fixed point: weights scaled by 2^22, rounded half away from zero.
const PRECISION_BITS: u32 = 32 - 8 - 2;

fn fixed_point(taps: &AxisTaps) -> Vec<Vec<i64>> {
    let one = f64::from(1u32 << PRECISION_BITS);
    let round = |k: f64| {
        if k < 0.0 {
            (-0.5 + k * one) as i64
        } else {
            (0.5 + k * one) as i64
        }
    };
    taps.taps.iter().map(|w| w.iter().map(|&k| round(k)).collect()).collect()
}

/// Sum + 2^21, arithmetic shift by 22 (a floor), clip to 0..255: Pillow's `clip8`.
fn clip8(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// One u8 plane (h x w) -> (h x new_w), Pillow's `ImagingResampleHorizontal_8bpc`.
fn resample_rows_u8(src: &[u8], w: usize, h: usize, new_w: usize) -> Vec<u8> {
    let t = axis_taps(w, new_w);
    let k = fixed_point(&t);
    let mut out = vec![0u8; h * new_w];
    for y in 0..h {
        let row = &src[y * w..(y + 1) * w];
        for x in 0..new_w {
            let px = &row[t.start[x]..t.start[x] + k[x].len()];
            let acc = px.iter().zip(&k[x]).fold(1i64 << (PRECISION_BITS - 1), |a, (&p, &c)| a + i64::from(p) * c);
            out[y * new_w + x] = clip8(acc);
        }
    }
    out
}

/// One u8 plane (h x w) -> (new_h x w), Pillow's `ImagingResampleVertical_8bpc`.
fn resample_cols_u8(src: &[u8], w: usize, h: usize, new_h: usize) -> Vec<u8> {
    let t = axis_taps(h, new_h);
    let k = fixed_point(&t);
    let mut out = vec![0u8; new_h * w];
    for y in 0..new_h {
        for x in 0..w {
            let acc = k[y]
                .iter()
                .enumerate()
                .fold(1i64 << (PRECISION_BITS - 1), |a, (j, &c)| a + i64::from(src[(t.start[y] + j) * w + x]) * c);
            out[y * w + x] = clip8(acc);
        }
    }
    out
}

/// The size the reference gives an image whose longest side becomes `longest`: the scale is
/// `longest / max(w, h)` and each side `max(1, round(side * scale))`. Python's `round` is half
/// to even, hence `round_ties_even`; 512x384 -> 192 gives 192x144.
pub fn longest_side_size(width: usize, height: usize, longest: usize) -> (usize, usize) {
    let s = longest as f64 / width.max(height) as f64;
    let side = |n: usize| ((n as f64 * s).round_ties_even() as usize).max(1);
    (side(width), side(height))
}

/// Resizes so the longest side is `longest`, keeping the aspect ratio, as the reference's
/// `load_image(path, size)` does; returns a copy when the longest side already has that length.
///
/// The work is done on 8-bit values, with Pillow's Lanczos and its fixed-point rounding (horizontal
/// pass, round to u8, vertical pass, round to u8), because the reference resizes the 8-bit image
/// and only then converts to float: the result is integers, equal to the reference's. `img` is
/// rounded to u8 first, which is exact for anything [`load_rgb`](super::load_rgb) returned. For float images that
/// must keep their fractions (the one being optimised), use [`resize_exact`].
pub fn resize_longest(img: &Tensor, longest: usize) -> Tensor {
    assert!(longest > 0, "resize_longest: longest side must be positive");
    let (w, h) = size(img);
    if w.max(h) == longest {
        return img.clone();
    }
    let (new_w, new_h) = longest_side_size(w, h, longest);
    let data = planes(img, new_w, new_h, |plane| {
        let mut plane: Vec<u8> = plane.iter().map(|&v| v.round_ties_even().clamp(0.0, 255.0) as u8).collect();
        // Pillow skips a pass whose axis keeps its length; the passes are not the identity.
        if new_w != w {
            plane = resample_rows_u8(&plane, w, h, new_w);
        }
        if new_h != h {
            plane = resample_cols_u8(&plane, new_w, h, new_h);
        }
        plane.iter().map(|&v| f32::from(v)).collect()
    });
    with_size(img, new_w, new_h, data)
}

/// Resizes float data to exactly `width` x `height` with the same Lanczos-3 filter, without
/// rounding or clamping, for carrying the image being optimised from one scale to the next.
///
/// Lanczos overshoots a little at hard edges (values slightly outside 0..255); that is left in,
/// since the optimiser does not clamp either and the saved image is clamped at the end. The
/// weights of each output sum to 1, so a constant shift of the input (VGG's mean) passes through.
pub fn resize_exact(img: &Tensor, width: usize, height: usize) -> Tensor {
    assert!(width > 0 && height > 0, "resize_exact: target size {width}x{height} must be positive");
    let (w, h) = size(img);
    if (width, height) == (w, h) {
        return img.clone();
    }
    let tx = axis_taps(w, width);
    let ty = axis_taps(h, height);
    let mut rows = vec![0.0f32; h * width];
    let data = planes(img, width, height, |src| {
        for y in 0..h {
            for x in 0..width {
                let px = &src[y * w + tx.start[x]..];
                rows[y * width + x] = tx.taps[x].iter().zip(px).map(|(&k, &p)| k * f64::from(p)).sum::<f64>() as f32;
            }
        }
        let mut out = Vec::with_capacity(width * height);
        for y in 0..height {
            for x in 0..width {
                let acc: f64 = ty.taps[y]
                    .iter()
                    .enumerate()
                    .map(|(j, &k)| k * f64::from(rows[(ty.start[y] + j) * width + x]))
                    .sum();
                out.push(acc as f32);
            }
        }
        out
    });
    with_size(img, width, height, data)
}

/// Every `h x w` plane of `img` through `f`, which returns the `new_w x new_h` plane.
fn planes(img: &Tensor, new_w: usize, new_h: usize, mut f: impl FnMut(&[f32]) -> Vec<f32>) -> Vec<f32> {
    let (w, h) = size(img);
    let mut out = Vec::with_capacity(img.shape().numel() / (w * h) * new_w * new_h);
    for plane in img.data().chunks_exact(w * h) {
        out.extend(f(plane));
    }
    out
}

/// `img`'s batch and channels at a new height and width.
fn with_size(img: &Tensor, width: usize, height: usize, data: Vec<f32>) -> Tensor {
    let (n, c, _, _) = img.shape().nchw().expect("an image tensor is [n, c, h, w]");
    Tensor::new([n, c, height, width], data).expect("one plane per batch item and channel")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{from_planes, ramp};

    #[test]
    fn longest_side_rounding_matches_the_reference() {
        assert_eq!(longest_side_size(512, 384, 192), (192, 144));
        assert_eq!(longest_side_size(384, 512, 192), (144, 192));
        assert_eq!(longest_side_size(1000, 1, 100), (100, 1)); // max(1, round(0.1))
        assert_eq!(longest_side_size(5, 3, 3), (3, 2)); // round(1.8)
        assert_eq!(longest_side_size(4, 1, 10), (10, 2)); // round(2.5) = 2: Python rounds half to even
        let out = resize_longest(&ramp(512, 384), 192);
        assert_eq!(size(&out), (192, 144));
        assert_eq!(out.data().len(), 3 * 192 * 144);
    }

    #[test]
    fn resize_longest_is_a_copy_at_the_same_size() {
        let img = ramp(30, 20);
        assert_eq!(resize_longest(&img, 30).data(), img.data());
    }

    /// Pillow 13.0.0, the reference's resize, on the `ramp` image:
    /// ```python
    /// import numpy as np; from PIL import Image
    /// w, h = 9, 6; i = np.arange(3*w*h); d = ((i*37 + i//7) % 256).astype(np.uint8).reshape(3, h, w)
    /// for size in (5, 14):
    ///     im = Image.fromarray(d.transpose(1, 2, 0)); s = size / max(im.size)
    ///     r = im.resize((max(1, round(im.width*s)), max(1, round(im.height*s))), Image.LANCZOS)
    ///     print(r.size, np.asarray(r).transpose(2, 0, 1).flatten().tolist()[:45])
    /// ```
    /// (the 14 px case is checked on its first 24 values). Whole images of many sizes were also
    /// compared against Pillow when this was written, all equal.
    #[test]
    fn resize_longest_matches_pillow_exactly() {
        let down: [f32; 45] = PILLOW_9X6_TO_5;
        let out = resize_longest(&ramp(9, 6), 5);
        assert_eq!(size(&out), (5, 3));
        assert_eq!(out.data(), down);
        let out = resize_longest(&ramp(9, 6), 14);
        assert_eq!(size(&out), (14, 9));
        assert_eq!(out.data()[..24], PILLOW_9X6_TO_14_FIRST24);
    }

    #[rustfmt::skip]
    const PILLOW_9X6_TO_5: [f32; 45] = [
        67., 136., 143., 98., 79., 149., 105., 104., 144., 143., 106., 161., 159., 111., 110.,
        137., 114., 143., 111., 140., 134., 123., 91., 116., 144., 87., 123., 170., 129., 99.,
        161., 121., 109., 161., 157., 134., 129., 98., 100., 137., 108., 87., 148., 151., 99.,
    ];
    #[rustfmt::skip]
    const PILLOW_9X6_TO_14_FIRST24: [f32; 24] = [
        0., 7., 37., 62., 81., 99., 121., 153., 200., 255., 191., 16., 0., 47.,
        28., 39., 64., 86., 121., 168., 210., 171., 100., 125.,
    ];

    #[test]
    fn resize_exact_keeps_constants_and_fractions() {
        // Lanczos weights are normalised, so a constant image stays constant, unclamped.
        let img = from_planes(5, 4, vec![-12.25; 60]);
        let up = resize_exact(&img, 11, 7);
        assert_eq!(size(&up), (11, 7));
        assert!(up.data().iter().all(|v| (v + 12.25).abs() < 1e-4), "{:?}", &up.data()[..5]);
        let same = resize_exact(&img, 5, 4);
        assert_eq!(same.data(), img.data());
    }

    #[test]
    fn resize_exact_agrees_with_the_8_bit_path_before_rounding() {
        // A smooth mid-range image, so the 8-bit path never clamps between its passes.
        let data =
            (0..3).flat_map(|c| (0..6).flat_map(move |y| (0..9).map(move |x| (60 + 10 * c + 3 * y + 2 * x) as f32)));
        let img = from_planes(9, 6, data.collect());
        let float = resize_exact(&img, 14, 9);
        let int = resize_longest(&img, 14);
        // The 8-bit path rounds after each pass: 0.5 after the first, carried through weights
        // whose absolute sum is below 1.2, plus 0.5 after the second.
        for (f, i) in float.data().iter().zip(int.data()) {
            assert!((f - i).abs() <= 1.1, "{f} vs {i}");
        }
    }
}
