//! `stylize eval`: the losses and the gradient at x = content, for checks against the reference,
//! or at any picture of the content's size (`--image`), to score an output.
//!
//! The JSON keys are a public interface: `content`, `style`, `tv`, `total`, `grad_l2`,
//! `grad_first` (the first 8 gradient values in NCHW order), as the reference's `eval` prints.

use std::path::Path;

use anyhow::{Context, Result};
use stylize::objective::{Layers, Losses, Objective};
use stylize::{image, memory, npy, output};
use tensor::Tensor;
use vgg::Vgg19;

use super::args::EvalArgs;

/// What `eval --json` prints.
#[derive(Debug, serde::Serialize)]
struct Report {
    #[serde(flatten)]
    losses: Losses,
    grad_l2: f64,
    grad_first: Vec<f32>,
}

pub fn eval(args: &EvalArgs) -> Result<()> {
    if let Some(path) = &args.grad_out {
        output::check(path)?;
    }
    let weights_path = vgg::resolve_weights_path(args.compute.weights.as_deref())?;
    let layers = Layers::default();
    let load = |p: &Path, what: &str| -> Result<Tensor> {
        let img = image::load_rgb(p).with_context(|| format!("reading the {what} {}", p.display()))?;
        let (w, h) = image::size(&img);
        let (w, h) = args.size.map_or((w, h), |s| image::longest_side_size(w, h, s));
        memory::check_evaluation(w, h, &layers, args.styles.len(), memory::available_bytes())?;
        Ok(match args.size {
            Some(size) => image::resize_longest(&img, size),
            None => img,
        })
    };
    let content = load(&args.content, "content image")?;
    let styles = args.styles.iter().map(|p| load(p, "style image")).collect::<Result<Vec<_>>>()?;
    let sizes: Vec<(usize, usize)> = styles.iter().map(image::size).collect();
    stylize::objective::check_style_sizes(&sizes, &layers, memory::available_bytes())?;
    let styles: Vec<(Tensor, f32)> = styles.into_iter().zip(args.loss.blend_weights(args.styles.len())).collect();
    let vgg = Vgg19::load(&weights_path, &layers.names())?;
    let objective = Objective::new(&vgg, &content, &styles, layers.clone(), args.loss.weights())?;
    let x = match &args.image {
        Some(path) => {
            let x = load(path, "picture to score")?;
            if image::size(&x) != image::size(&content) {
                let ((w, h), (cw, ch)) = (image::size(&x), image::size(&content));
                anyhow::bail!(
                    "{} is {w}x{h} but the content is {cw}x{ch}; score a picture of the content's size (use the same --size for both)",
                    path.display()
                );
            }
            x
        }
        None => content,
    };
    let (losses, grad) = objective.evaluate_rgb(&x)?;
    let report = Report {
        losses,
        grad_l2: grad.data().iter().map(|&g| (g as f64) * (g as f64)).sum::<f64>().sqrt(),
        grad_first: grad.data().iter().take(8).copied().collect(),
    };
    if let Some(path) = &args.grad_out {
        npy::save_f32(path, grad.shape().dims(), grad.data())?;
    }
    if args.json {
        super::print(serde_json::to_string(&report)?)?;
    } else {
        let l = report.losses;
        super::print(format_args!(
            "content {:e}\nstyle   {:e}\ntv      {:e}\ntotal   {:e}\n|grad|  {:e}",
            l.content, l.style, l.tv, l.total, report.grad_l2
        ))?;
    }
    Ok(())
}
