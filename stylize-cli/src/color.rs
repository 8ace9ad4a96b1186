//! Colour preservation (`--preserve-colors`): transfer the style's brush strokes, keep the photo's colours.
//!
//! Gatys, Bethge, Hertzmann, Shechtman, "Preserving Color in Neural Artistic Style Transfer"
//! (arXiv:1606.05897, 2016), section 3, "luminance-only transfer": style lives mostly in the
//! luminance, so the result takes its luminance Y from the stylised image and its chroma (I, Q)
//! from the content image. The paper works in YIQ, and so do we.
//!
//! The paper's full recipe, for the run loop to follow:
//! 1. `y_c` = Y of the content, `y_s` = [`match_luminance`]`(Y of the style, y_c)` (mean and
//!    standard deviation of the style's luminance moved to the content's, eq. 2 of the paper);
//! 2. optimise on the grey images [`grey_from_luminance`]`(y_c)` and `(y_s)` (VGG wants 3 channels);
//! 3. [`preserve_colors`]`(content, result)`: the result's Y with the content's I and Q.
//!
//! Step 3 alone, applied to an ordinary colour run, is the simpler variant many tools ship.
//!
//! Colours are converted linearly on the 0..255 values (no gamma), as in the paper.

use tensor::Tensor;

use crate::image::{from_planes, resize_exact, size};

/// RGB -> YIQ, the FCC NTSC matrix with the precision `skimage.color.rgb2yiq` uses
/// (Y row: Rec. 601 luma weights). Y is in 0..255 for 0..255 input; I and Q are signed.
pub const RGB_TO_YIQ: [[f64; 3]; 3] =
    [[0.299, 0.587, 0.114], [0.595_900_59, -0.274_556_67, -0.321_343_92], [0.211_536_61, -0.522_736_17, 0.311_199_55]];

/// The exact inverse of [`RGB_TO_YIQ`], computed rather than copied from a table: the
/// textbook's rounded inverse (R = Y + 0.956 I + 0.621 Q ...) is off by ~0.1 on 0..255
/// values, which a round trip would show.
pub fn yiq_to_rgb_matrix() -> [[f64; 3]; 3] {
    let m = RGB_TO_YIQ;
    // Inverse by cofactors: inv[i][j] = cofactor(j, i) / det.
    let cof = |r: usize, c: usize| {
        let (r0, r1) = ((r + 1) % 3, (r + 2) % 3);
        let (c0, c1) = ((c + 1) % 3, (c + 2) % 3);
        m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0]
    };
    let det: f64 = (0..3).map(|c| m[0][c] * cof(0, c)).sum();
    let mut inv = [[0.0; 3]; 3];
    for (i, row) in inv.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = cof(j, i) / det;
        }
    }
    inv
}

/// 3x3 matrix times each pixel of three planes.
fn mix(m: &[[f64; 3]; 3], planes: [&[f32]; 3]) -> [Vec<f32>; 3] {
    let n = planes[0].len();
    let row = |r: &[f64; 3]| -> Vec<f32> {
        (0..n)
            .map(|i| {
                (r[0] * f64::from(planes[0][i]) + r[1] * f64::from(planes[1][i]) + r[2] * f64::from(planes[2][i]))
                    as f32
            })
            .collect()
    };
    [row(&m[0]), row(&m[1]), row(&m[2])]
}

/// The Y, I and Q planes of an image `[1, 3, H, W]` (each H x W, row-major).
pub fn rgb_to_yiq(img: &Tensor) -> [Vec<f32>; 3] {
    let (w, h) = size(img);
    let (r, rest) = img.data().split_at(w * h);
    let (g, b) = rest.split_at(w * h);
    mix(&RGB_TO_YIQ, [r, g, b])
}

/// The RGB image with planes Y, I, Q of size `width` x `height`. Not clamped: saving clamps.
pub fn yiq_to_rgb(yiq: &[Vec<f32>; 3], width: usize, height: usize) -> Tensor {
    for p in yiq {
        assert_eq!(p.len(), width * height, "yiq_to_rgb: plane of {} values for {width}x{height}", p.len());
    }
    let [r, g, b] = mix(&yiq_to_rgb_matrix(), [&yiq[0], &yiq[1], &yiq[2]]);
    from_planes(width, height, [r, g, b].concat())
}

/// The stylised image's luminance with the content image's colours (chroma I, Q).
///
/// The content is resized to the stylised image's size first if they differ (e.g. the content
/// was loaded at its own size, or the run ended at a scale that rounded differently), since the
/// colours of a photo survive resizing well.
pub fn preserve_colors(content: &Tensor, stylized: &Tensor) -> Tensor {
    let (w, h) = size(stylized);
    let [y, _, _] = rgb_to_yiq(stylized);
    let [_, i, q] = rgb_to_yiq(&resize_exact(content, w, h));
    yiq_to_rgb(&[y, i, q], w, h)
}

/// The style's luminance shifted and scaled to the content's mean and standard deviation:
/// `y' = (σ_c / σ_s) (y_s − μ_s) + μ_c` (Gatys et al. 2016, eq. 2). Without it, a dark
/// painting would darken a bright photo even though its colours are not transferred.
/// A flat style (σ_s = 0) becomes the content's mean.
pub fn match_luminance(style_y: &[f32], content_y: &[f32]) -> Vec<f32> {
    let (mu_s, sd_s) = mean_std(style_y);
    let (mu_c, sd_c) = mean_std(content_y);
    let gain = if sd_s > 0.0 { sd_c / sd_s } else { 0.0 };
    style_y.iter().map(|&v| (gain * (f64::from(v) - mu_s) + mu_c) as f32).collect()
}

/// Population mean and standard deviation, accumulated in f64.
fn mean_std(v: &[f32]) -> (f64, f64) {
    assert!(!v.is_empty(), "mean_std of an empty plane");
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let var = v.iter().map(|&x| (f64::from(x) - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// A grey RGB image whose three channels are the luminance `y`: how a luminance-only image
/// is fed to VGG, which wants three channels.
pub fn grey_from_luminance(y: &[f32], width: usize, height: usize) -> Tensor {
    assert_eq!(y.len(), width * height, "grey_from_luminance: {} values for {width}x{height}", y.len());
    from_planes(width, height, y.repeat(3))
}

/// Steps 1 and 2 of luminance-only transfer: the grey images to optimise on. Returns the
/// content's luminance as a grey image, and each style's luminance, matched to the content's
/// mean and spread, as grey images.
pub fn luminance_only(content: &Tensor, styles: &[Tensor]) -> (Tensor, Vec<Tensor>) {
    let [content_y, _, _] = rgb_to_yiq(content);
    let greys = styles
        .iter()
        .map(|s| {
            let [style_y, _, _] = rgb_to_yiq(s);
            let (w, h) = size(s);
            grey_from_luminance(&match_luminance(&style_y, &content_y), w, h)
        })
        .collect();
    let (w, h) = size(content);
    (grey_from_luminance(&content_y, w, h), greys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(width: usize, height: usize, seed: u64) -> Tensor {
        Tensor::uniform([1, 3, height, width], 0.0, 255.0, seed)
    }

    #[test]
    fn yiq_round_trip() {
        let img = pseudo_random(13, 7, 1);
        let back = yiq_to_rgb(&rgb_to_yiq(&img), 13, 7);
        let worst = img.data().iter().zip(back.data()).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(worst < 1e-3, "round-trip error {worst}");
    }

    #[test]
    fn inverse_is_an_inverse() {
        let inv = yiq_to_rgb_matrix();
        let product: Vec<f64> = (0..9).map(|n| (0..3).map(|k| inv[n / 3][k] * RGB_TO_YIQ[k][n % 3]).sum()).collect();
        for (n, v) in product.iter().enumerate() {
            let identity = if n / 3 == n % 3 { 1.0 } else { 0.0 };
            assert!((v - identity).abs() < 1e-12, "(inv * m)[{}][{}] = {v}", n / 3, n % 3);
        }
        // Close to the textbook's rounded inverse, so this is the YIQ everyone means.
        assert!((inv[0][1] - 0.956).abs() < 1e-3 && (inv[2][2] - 1.703).abs() < 2e-3, "{inv:?}");
    }

    #[test]
    fn grey_has_no_chroma_and_white_is_255() {
        let grey = from_planes(2, 1, vec![0.0, 255.0, 0.0, 255.0, 0.0, 255.0]);
        let [y, i, q] = rgb_to_yiq(&grey);
        assert!((y[1] - 255.0).abs() < 1e-3 && y[0] == 0.0, "{y:?}");
        assert!(i.iter().chain(&q).all(|v| v.abs() < 1e-3), "{i:?} {q:?}");
    }

    #[test]
    fn preserve_colors_takes_luminance_from_stylized_and_chroma_from_content() {
        let content = pseudo_random(8, 6, 2);
        let stylized = pseudo_random(8, 6, 3);
        let out = preserve_colors(&content, &stylized);
        let [y_out, i_out, q_out] = rgb_to_yiq(&out);
        let [y_sty, _, _] = rgb_to_yiq(&stylized);
        let [_, i_con, q_con] = rgb_to_yiq(&content);
        let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-3);
        assert!(close(&y_out, &y_sty) && close(&i_out, &i_con) && close(&q_out, &q_con));
        // Preserving the colours of an image onto itself changes nothing.
        let same = preserve_colors(&content, &content);
        assert!(close(same.data(), content.data()));
    }

    #[test]
    fn preserve_colors_resizes_the_content() {
        let content = from_planes(4, 2, [vec![200.0; 8], vec![50.0; 8], vec![10.0; 8]].concat());
        let stylized = from_planes(8, 4, vec![100.0; 96]);
        let out = preserve_colors(&content, &stylized);
        assert_eq!(size(&out), (8, 4));
        // Flat content: every output pixel gets its chroma; red stays the largest channel.
        let (r, g, b) = (out.data()[5], out.data()[32 + 5], out.data()[64 + 5]);
        assert!(r > g && g > b, "{r} {g} {b}");
    }

    #[test]
    fn match_luminance_moves_mean_and_std() {
        let style: Vec<f32> = (0..100).map(|i| 10.0 + 0.5 * i as f32).collect();
        let content: Vec<f32> = (0..50).map(|i| 100.0 + 2.0 * (i % 10) as f32).collect();
        let matched = match_luminance(&style, &content);
        let (m, s) = mean_std(&matched);
        let (mc, sc) = mean_std(&content);
        assert!((m - mc).abs() < 1e-3 && (s - sc).abs() < 1e-3, "{m} {s} vs {mc} {sc}");
        assert!(match_luminance(&[7.0; 4], &content).iter().all(|&v| (f64::from(v) - mc).abs() < 1e-3));
    }

    #[test]
    fn grey_image_repeats_luminance() {
        let g = grey_from_luminance(&[1.0, 2.0], 2, 1);
        assert_eq!(g.data(), [1.0, 2.0, 1.0, 2.0, 1.0, 2.0]);
    }
}
