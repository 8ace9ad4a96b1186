//! The Gatys objective: VGG19 features of the image being optimised against fixed targets.
//!
//! `L(x) = content_weight · L_c + style_weight · Σ_k b_k Σ_l w_l · L_s(l, k) + tv_weight · L_tv`,
//! with `L_c`, `L_s` and `L_tv` from `nn::loss` (the definition of
//! `shared/reference/gatys_reference.py`), `b_k` the blend weight of style image k, and `w_l` a
//! user weight per style layer (1 by default) on top of the loss's own `10 / C²`.
//!
//! The image `x` lives in VGG's space ([`Vgg19::preprocess`]: BGR minus the ImageNet mean).
//! Every term is a function of it: the total variation of a channel permutation plus a constant
//! shift is the total variation of the RGB image. So an optimiser works on `x` from the first
//! step to the last, and only the saved pictures and `eval`'s gradient go back to RGB.
//!
//! Targets are computed once: the content features `P` and each style's Gram matrices `A`,
//! through the same VGG19 with constant inputs, so those passes record nothing on the tape.

use nn::loss;
use tensor::{Tape, Tensor, Var};
use vgg::Vgg19;

use crate::Error;

/// The style layers of Gatys et al. (2016).
pub const DEFAULT_STYLE_LAYERS: [&str; 5] = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"];
/// The content layer of Gatys et al. (2016).
pub const DEFAULT_CONTENT_LAYER: &str = "relu4_2";

/// How much each term counts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Weights {
    pub content: f32,
    pub style: f32,
    pub tv: f32,
}

impl Default for Weights {
    /// The reference's defaults (chosen by eye on Tübingen + Starry Night).
    fn default() -> Self {
        Weights { content: 1.0, style: 1.0, tv: 0.001 }
    }
}

/// Which layers, with which weights.
#[derive(Clone, Debug, PartialEq)]
pub struct Layers {
    pub content: String,
    /// (layer name, weight on top of 10 / C²)
    pub style: Vec<(String, f32)>,
}

impl Default for Layers {
    fn default() -> Self {
        Layers {
            content: DEFAULT_CONTENT_LAYER.to_string(),
            style: DEFAULT_STYLE_LAYERS.iter().map(|l| (l.to_string(), 1.0)).collect(),
        }
    }
}

impl Layers {
    /// Every layer the objective reads: the style layers, then the content layer.
    pub fn names(&self) -> Vec<&str> {
        self.style.iter().map(|(n, _)| n.as_str()).chain([self.content.as_str()]).collect()
    }

    /// The smallest image side the deepest of these layers accepts.
    pub fn min_side(&self) -> Result<usize, Error> {
        Ok(Vgg19::min_side_for(&self.names())?)
    }
}

/// The loss terms at one image, unweighted, plus the weighted total.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Losses {
    pub content: f32,
    pub style: f32,
    pub tv: f32,
    pub total: f32,
}

/// The style targets: for each style image, its blend weight and one Gram matrix `[1, C, C]`
/// per style layer, computed once through VGG19 with a constant input (nothing on the tape).
#[derive(Clone, Debug)]
pub struct StyleTargets {
    targets: Vec<(f32, Vec<Tensor>)>,
}

impl StyleTargets {
    /// The Grams of each `(style, blend weight)`, RGB images `[1, 3, H, W]` in 0..255.
    pub fn new(vgg: &Vgg19, styles: &[(Tensor, f32)], layers: &Layers) -> Result<Self, Error> {
        if styles.is_empty() {
            return Err(Error::NoStyle);
        }
        let mut tape = Tape::new();
        let names: Vec<&str> = layers.style.iter().map(|(n, _)| n.as_str()).collect();
        let mut targets = Vec::with_capacity(styles.len());
        for (style, blend) in styles {
            let feats = vgg.features(&mut tape, &Var::constant(Vgg19::preprocess(style)?), &names)?;
            let grams = feats.iter().map(|f| Ok(tape.gram(f)?.value().clone())).collect::<Result<Vec<_>, Error>>()?;
            targets.push((*blend, grams));
        }
        debug_assert!(tape.is_empty(), "target passes record nothing");
        Ok(StyleTargets { targets })
    }
}

/// Refuses style images that, resized to `sizes` (width, height), are smaller than the deepest
/// of `layers` needs or need more memory for their targets than is `available`, before any
/// work: a long thin painting used to fail in VGG with no word of which image or what to do.
pub fn check_style_sizes(sizes: &[(usize, usize)], layers: &Layers, available: Option<u64>) -> Result<(), Error> {
    let min = layers.min_side()?;
    if let Some(&(width, height)) = sizes.iter().find(|(w, h)| (*w).min(*h) < min) {
        let layer = vgg::table::LAYERS[vgg::model::deepest(&layers.names())?].name();
        return Err(Error::StyleTooSmall { width, height, layer, min });
    }
    crate::memory::check_style_sizes(sizes, available)
}

/// The content layer's features of `x` (images in VGG's space), as a constant target.
pub fn content_features(vgg: &Vgg19, x: &Tensor, layers: &Layers) -> Result<Tensor, Error> {
    let mut tape = Tape::new();
    Ok(vgg.features(&mut tape, &Var::constant(x.clone()), &[layers.content.as_str()])?.remove(0).value().clone())
}

/// Records the perceptual loss of images `x` `[n, 3, H, W]` in VGG's space on `tape`: content
/// against `content_target` (the features of the images `x` should look like), style against
/// `styles` (each image's Grams against every target, the mean over the batch), and total
/// variation. Returns the terms' values and the weighted total. Both phases use it: `run`
/// with one image being optimised, `train` with a network's output for a batch of photos.
pub fn perceptual_loss(
    tape: &mut Tape,
    vgg: &Vgg19,
    x: &Var,
    content_target: &Tensor,
    styles: &StyleTargets,
    layers: &Layers,
    weights: Weights,
) -> Result<(Losses, Var), Error> {
    let feats = vgg.features(tape, x, &layers.names())?;
    let (style_feats, content_feat) = feats.split_at(layers.style.len());
    let content = loss::content_loss(tape, &content_feat[0], content_target)?;
    let batch = x.shape().dims()[0];
    // One Gram per layer, compared with every style's target: Σ_k b_k w_l L_s(l, k).
    let mut style: Option<Var> = None;
    for (l, (feat, (_, layer_weight))) in style_feats.iter().zip(&layers.style).enumerate() {
        let gram = tape.gram(feat)?;
        for (blend, grams) in &styles.targets {
            let target = match batch {
                1 => grams[l].clone(),
                n => {
                    Tensor::new([n, grams[l].shape().dims()[1], grams[l].shape().dims()[2]], grams[l].data().repeat(n))?
                }
            };
            let term = loss::gram_loss(tape, &gram, &target)?;
            let term = tape.scale(&term, blend * layer_weight);
            style = Some(match style {
                None => term,
                Some(acc) => tape.add(&acc, &term)?,
            });
        }
    }
    drop(feats);
    let style = style.unwrap_or_else(|| Var::constant(Tensor::scalar(0.0)));
    let tv = loss::total_variation(tape, x)?;

    let terms = [(&content, weights.content), (&style, weights.style), (&tv, weights.tv)];
    let mut total: Option<Var> = None;
    for (term, weight) in terms {
        let weighted = tape.scale(term, weight);
        total = Some(match total {
            None => weighted,
            Some(acc) => tape.add(&acc, &weighted)?,
        });
    }
    let total = total.expect("three terms");
    let item = |v: &Var| v.value().item().expect("scalar loss");
    let losses = Losses { content: item(&content), style: item(&style), tv: item(&tv), total: item(&total) };
    Ok((losses, total))
}

/// Targets and weights, ready to evaluate the loss and its gradient at any image of the
/// content's size.
pub struct Objective<'a> {
    vgg: &'a Vgg19,
    layers: Layers,
    weights: Weights,
    content_target: Tensor,
    styles: StyleTargets,
}

impl<'a> Objective<'a> {
    /// Computes the targets: the content features of `content` and the style Grams of each
    /// `(style, blend weight)`, all RGB images `[1, 3, H, W]` in 0..255.
    pub fn new(
        vgg: &'a Vgg19,
        content: &Tensor,
        styles: &[(Tensor, f32)],
        layers: Layers,
        weights: Weights,
    ) -> Result<Self, Error> {
        let styles = StyleTargets::new(vgg, styles, &layers)?;
        let content_target = content_features(vgg, &Vgg19::preprocess(content)?, &layers)?;
        Ok(Objective { vgg, layers, weights, content_target, styles })
    }

    /// The losses at `x` (an image in VGG's space, [`Vgg19::preprocess`]) and, if `with_grad`,
    /// `∂total/∂x`.
    pub fn evaluate(&self, x: &Tensor, with_grad: bool) -> Result<(Losses, Option<Tensor>), Error> {
        let mut tape = Tape::new();
        let x = if with_grad { tape.leaf(x.clone()) } else { Var::constant(x.clone()) };
        let (losses, total) = self.record(&mut tape, &x)?;
        let grad = if with_grad {
            let mut grads = tape.backward(&total)?;
            Some(grads.take(&x).unwrap_or_else(|| Tensor::zeros(x.shape())))
        } else {
            None
        };
        Ok((losses, grad))
    }

    /// The losses and `∂total/∂rgb` at an RGB image: what `stylize eval` reports.
    pub fn evaluate_rgb(&self, rgb: &Tensor) -> Result<(Losses, Tensor), Error> {
        let (losses, grad) = self.evaluate(&Vgg19::preprocess(rgb)?, true)?;
        Ok((losses, Vgg19::gradient_to_rgb(&grad.expect("asked for the gradient"))?))
    }

    /// Bytes the tape keeps for the backward pass at `x`: the engine's own accounting, which
    /// the memory estimate is checked against.
    pub fn saved_bytes(&self, x: &Tensor) -> Result<usize, Error> {
        let mut tape = Tape::new();
        let x = tape.leaf(x.clone());
        self.record(&mut tape, &x)?;
        Ok(tape.saved_bytes())
    }

    /// Records the loss at `x` on `tape`: the terms' values and the weighted total.
    fn record(&self, tape: &mut Tape, x: &Var) -> Result<(Losses, Var), Error> {
        perceptual_loss(tape, self.vgg, x, &self.content_target, &self.styles, &self.layers, self.weights)
    }
}
