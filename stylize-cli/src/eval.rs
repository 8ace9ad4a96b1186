//! `stylize eval`: the losses and the gradient at x = content, for checks against the reference.
//!
//! The JSON keys are a public interface: `content`, `style`, `tv`, `total`, `grad_l2`,
//! `grad_first` (the first 8 gradient values in NCHW order), as the reference's `eval` prints.

use anyhow::{Context, Result};
use vgg::Vgg19;

use crate::cli::EvalArgs;
use crate::image_io::{self, Image};
use crate::objective::{image_tensor, Layers, Losses, Objective, Weights};

/// The result of `eval`.
#[derive(Debug, serde::Serialize)]
pub struct Report {
    #[serde(flatten)]
    pub losses: Losses,
    pub grad_l2: f64,
    pub grad_first: Vec<f32>,
}

pub fn eval(args: &EvalArgs) -> Result<()> {
    if let Some(path) = &args.grad_out {
        image_io::check_output_dir(path)?;
    }
    let weights_path = vgg::resolve_weights_path(args.compute.weights.as_deref())?;
    let load = |p: &std::path::Path, what: &str| -> Result<Image> {
        let img = image_io::load_rgb(p).with_context(|| format!("reading the {what} {}", p.display()))?;
        Ok(match args.size {
            Some(size) => image_io::resize_longest(&img, size),
            None => img,
        })
    };
    let content = load(&args.content, "content image")?;
    let styles = args.styles.iter().map(|p| load(p, "style image")).collect::<Result<Vec<_>>>()?;
    let blend = args.loss.blend_weights(styles.len());
    let vgg = Vgg19::load(&weights_path)?;

    let content_t = image_tensor(content.data.clone(), content.height, content.width)?;
    let styles_t = styles
        .iter()
        .zip(blend)
        .map(|(s, b)| Ok((image_tensor(s.data.clone(), s.height, s.width)?, b)))
        .collect::<Result<Vec<_>>>()?;
    let weights = Weights { content: args.loss.content_weight, style: args.loss.style_weight, tv: args.loss.tv_weight };
    let objective = Objective::new(&vgg, &content_t, &styles_t, Layers::default(), weights)?;
    let (losses, grad) = objective.evaluate(&content_t, true)?;
    let grad = grad.expect("asked for the gradient");
    let report = Report {
        losses,
        grad_l2: grad.data().iter().map(|&g| (g as f64) * (g as f64)).sum::<f64>().sqrt(),
        grad_first: grad.data().iter().take(8).copied().collect(),
    };
    if let Some(path) = &args.grad_out {
        image_io::save_npy_f32(path, grad.shape().dims(), grad.data())?;
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let l = report.losses;
        println!(
            "content {:e}\nstyle   {:e}\ntv      {:e}\ntotal   {:e}\n|grad|  {:e}",
            l.content, l.style, l.tv, l.total, report.grad_l2
        );
    }
    Ok(())
}
