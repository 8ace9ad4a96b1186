//! The three terms of the Gatys et al. loss ("A Neural Algorithm of Artistic Style", 2015;
//! "Image Style Transfer Using Convolutional Neural Networks", CVPR 2016), exactly as the
//! project's reference defines them (`shared/reference/gatys_reference.py`):
//!
//! - content: `mean((F - P)²)` over the C·N values of one layer;
//! - style, per layer: `10 / C² · mean((G - A)²)` over the C·C Gram entries, `G = F Fᵀ / N`;
//! - total variation: the mean squared horizontal plus the mean squared vertical neighbour
//!   difference of the 0..255 image.

use tensor::{Error, Tape, Tensor, Var};

/// `mean((features - target)²)`: how far the image's features are from the content's.
pub fn content_loss(tape: &mut Tape, features: &Var, target: &Tensor) -> Result<Var, Error> {
    tape.mse(features, target)
}

/// The per-layer base weight `10 / C²`: it evens out layers of 64 to 512 channels, whose Gram
/// entries grow with C, so that every style layer contributes on a similar scale.
pub fn style_layer_weight(channels: usize) -> f32 {
    10.0 / (channels * channels) as f32
}

/// `10 / C² · mean((G - A)²)` for features `[1, C, H, W]` and a target Gram `A [C, C]`.
pub fn style_layer_loss(tape: &mut Tape, features: &Var, target_gram: &Tensor) -> Result<Var, Error> {
    let g = tape.gram(features)?;
    gram_loss(tape, &g, target_gram)
}

/// `10 / C² · mean((G - A)²)` for Gram matrices `G` (`[C, C]` or `[n, C, C]`, one per image of
/// a batch: the mean is then over the batch too) already computed: with several style images,
/// one `G` per layer serves every target.
pub fn gram_loss(tape: &mut Tape, gram: &Var, target_gram: &Tensor) -> Result<Var, Error> {
    let channels = gram.shape().dims().last().copied().unwrap_or(0);
    let mse = tape.mse(gram, target_gram)?;
    Ok(tape.scale(&mse, style_layer_weight(channels)))
}

/// Total variation of an image `[1, 3, H, W]`: mean squared difference of horizontal
/// neighbours plus that of vertical neighbours. It penalises high-frequency noise.
pub fn total_variation(tape: &mut Tape, image: &Var) -> Result<Var, Error> {
    let dx = tape.neighbour_diff(image, false)?;
    let dy = tape.neighbour_diff(image, true)?;
    let tx = tape.mean_square(&dx)?;
    let ty = tape.mean_square(&dy)?;
    tape.add(&tx, &ty)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(dims: &[usize], v: Vec<f32>) -> Tensor {
        Tensor::new(dims, v).unwrap()
    }

    #[test]
    fn total_variation_by_hand() {
        // One channel 2x3: [[0, 1, 3], [2, 2, 2]]. Horizontal diffs 1, 2, 0, 0 -> mean sq 5/4;
        // vertical diffs 2, 1, -1 -> mean sq 6/3 = 2. TV = 3.25.
        let mut tape = Tape::new();
        let x = tape.leaf(t(&[1, 1, 2, 3], vec![0.0, 1.0, 3.0, 2.0, 2.0, 2.0]));
        let tv = total_variation(&mut tape, &x).unwrap();
        assert_eq!(tv.value().item(), Some(3.25));
    }

    #[test]
    fn style_loss_by_hand() {
        // F = [[1, 2], [3, 4]] as [1, 2, 1, 2]: G = F Fᵀ / 2 = [[2.5, 5.5], [5.5, 12.5]].
        // Against A = 0: mean(G²) = (6.25 + 30.25 + 30.25 + 156.25) / 4 = 55.75; times 10 / 2².
        let mut tape = Tape::new();
        let f = tape.leaf(t(&[1, 2, 1, 2], vec![1.0, 2.0, 3.0, 4.0]));
        let loss = style_layer_loss(&mut tape, &f, &Tensor::zeros([1, 2, 2])).unwrap();
        assert_eq!(loss.value().item(), Some(55.75 * 2.5));
    }

    #[test]
    fn content_loss_is_zero_at_the_target_and_grows_away() {
        let target = t(&[1, 2, 1, 1], vec![3.0, -1.0]);
        let mut tape = Tape::new();
        let at = content_loss(&mut tape, &Var::constant(target.clone()), &target).unwrap();
        assert_eq!(at.value().item(), Some(0.0));
        let off = content_loss(&mut tape, &Var::constant(t(&[1, 2, 1, 1], vec![4.0, 1.0])), &target).unwrap();
        assert_eq!(off.value().item(), Some(2.5));
    }
}
