//! The Gatys objective: VGG19 features of the image being optimised against fixed targets.
//!
//! `L(x) = content_weight · L_c + style_weight · Σ_k b_k Σ_l w_l · L_s(l, k) + tv_weight · L_tv`,
//! with `L_c`, `L_s` and `L_tv` from `nn::loss` (the definition of
//! `shared/reference/gatys_reference.py`), `b_k` the blend weight of style image k, and `w_l` a
//! user weight per style layer (1 by default) on top of the loss's own `10 / C²`.
//!
//! Targets are computed once: the content features `P` and each style's Gram matrices `A`,
//! through the same VGG19 with constant inputs, so those passes record nothing on the tape.

use anyhow::{bail, Context, Result};
use nn::loss;
use tensor::{Tape, Tensor, Var};
use vgg::Vgg19;

/// The five style layers and the content layer of Gatys et al. (2016).
pub const DEFAULT_STYLE_LAYERS: [&str; 5] = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"];
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
#[derive(Clone, Debug)]
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

/// The loss terms at one image, unweighted, plus the weighted total.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Losses {
    pub content: f32,
    pub style: f32,
    pub tv: f32,
    pub total: f32,
}

/// Targets and weights, ready to evaluate the loss and its gradient at any image of the
/// content's size.
pub struct Objective<'a> {
    vgg: &'a Vgg19,
    layers: Layers,
    weights: Weights,
    content_target: Tensor,
    /// `(blend weight, one Gram matrix per style layer)` for each style image.
    style_targets: Vec<(f32, Vec<Tensor>)>,
    names: Vec<String>,
}

/// An RGB 0..255 image as a `[1, 3, H, W]` tensor.
pub fn image_tensor(data: Vec<f32>, height: usize, width: usize) -> Result<Tensor> {
    Ok(Tensor::new([1, 3, height, width], data)?)
}

impl<'a> Objective<'a> {
    /// Computes the targets: content features of `content`, and the style Grams of each
    /// `(style image, blend weight)`.
    pub fn new(
        vgg: &'a Vgg19,
        content: &Tensor,
        styles: &[(Tensor, f32)],
        layers: Layers,
        weights: Weights,
    ) -> Result<Self> {
        if styles.is_empty() {
            bail!("at least one style image is needed");
        }
        let mut tape = Tape::new();
        let content_feats = vgg
            .features(&mut tape, &Var::constant(content.clone()), &[layers.content.as_str()])
            .context("computing the content image's features")?;
        let content_target = content_feats[0].value().clone();
        let style_names: Vec<&str> = layers.style.iter().map(|(n, _)| n.as_str()).collect();
        let mut style_targets = Vec::with_capacity(styles.len());
        for (i, (style, blend)) in styles.iter().enumerate() {
            let feats = vgg
                .features(&mut tape, &Var::constant(style.clone()), &style_names)
                .with_context(|| format!("computing the features of style image {}", i + 1))?;
            let grams = feats.iter().map(|f| Ok(tape.gram(f)?.value().clone())).collect::<Result<Vec<_>>>()?;
            style_targets.push((*blend, grams));
        }
        debug_assert!(tape.is_empty(), "target passes record nothing");
        let mut names: Vec<String> = layers.style.iter().map(|(n, _)| n.clone()).collect();
        names.push(layers.content.clone());
        Ok(Objective { vgg, layers, weights, content_target, style_targets, names })
    }

    /// The losses at `image` `[1, 3, H, W]` and, if `with_grad`, `∂total/∂image`.
    pub fn evaluate(&self, image: &Tensor, with_grad: bool) -> Result<(Losses, Option<Tensor>)> {
        let mut tape = Tape::new();
        let x = if with_grad { tape.leaf(image.clone()) } else { Var::constant(image.clone()) };
        let names: Vec<&str> = self.names.iter().map(String::as_str).collect();
        let feats = self.vgg.features(&mut tape, &x, &names)?;
        let (style_feats, content_feat) = feats.split_at(self.layers.style.len());

        let content = loss::content_loss(&mut tape, &content_feat[0], &self.content_target)?;
        let mut style: Option<Var> = None;
        for (blend, grams) in &self.style_targets {
            for ((feat, gram), (_, layer_weight)) in style_feats.iter().zip(grams).zip(&self.layers.style) {
                let term = loss::style_layer_loss(&mut tape, feat, gram)?;
                let term = tape.scale(&term, blend * layer_weight);
                style = Some(match style {
                    None => term,
                    Some(acc) => tape.add(&acc, &term)?,
                });
            }
        }
        drop(feats);
        let style = style.unwrap_or_else(|| Var::constant(Tensor::scalar(0.0)));
        let tv = loss::total_variation(&mut tape, &x)?;

        let terms = [(&content, self.weights.content), (&style, self.weights.style), (&tv, self.weights.tv)];
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
        let grad = if with_grad {
            let mut grads = tape.backward(&total)?;
            Some(grads.take(&x).unwrap_or_else(|| Tensor::zeros(image.shape())))
        } else {
            None
        };
        Ok((losses, grad))
    }
}
