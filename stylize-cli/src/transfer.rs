//! The optimisation phase: repaint one photo by gradient descent on its pixels (Gatys et al.,
//! "Image Style Transfer Using Convolutional Neural Networks", CVPR 2016), coarse to fine.
//!
//! [`transfer`] follows one image from start to finish: for each scale of the [`Plan`] it
//! resizes the content and styles, computes the targets ([`Objective::new`]), starts from the
//! previous scale's result (or the [`Init`]), and runs the optimiser on the image in VGG's space.
//! It reports to an [`Observer`] (scale changes, steps, intermediate saves), which can stop it,
//! and returns a typed [`Outcome`]. Presentation (progress bars, logs, Ctrl-C, files) is the
//! observer's business; nothing here prints or exits.

use std::time::Instant;

use nn::optim::{self, Adam, AdamConfig, ClosureError, Lbfgs, LbfgsConfig, OptimError};
use tensor::Tensor;
use vgg::Vgg19;

use crate::image::{longest_side_size, resize_exact, resize_longest, size};
use crate::objective::{Layers, Losses, Objective, Weights};
use crate::{color, memory, schedule, Error};

/// Which optimiser moves the pixels, with its settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    /// L-BFGS, the reference's default: converges in fewer steps.
    Lbfgs(LbfgsConfig),
    /// Adam: smoother progress, needs more steps.
    Adam(AdamConfig),
}

impl Optimizer {
    fn build(&self) -> Box<dyn optim::Optimizer> {
        match *self {
            Optimizer::Lbfgs(c) => Box::new(Lbfgs::new(c)),
            Optimizer::Adam(c) => Box::new(Adam::new(c)),
        }
    }

    /// Copies of the image the optimiser keeps: two per L-BFGS pair (s and y), two for Adam's
    /// moments.
    pub fn history_vectors(&self) -> usize {
        match self {
            Optimizer::Lbfgs(c) => 2 * c.history,
            Optimizer::Adam(_) => 2,
        }
    }
}

/// Where the optimised image starts.
#[derive(Clone, Debug)]
pub enum Init {
    /// The content image (the reference's choice: a recognisable result from the first step).
    Content,
    /// Uniform noise in 0..255 from this seed: more varied results, needs more steps.
    Noise { seed: u64 },
    /// An RGB image (e.g. a previous result to refine), resized to the first scale.
    Image(Tensor),
}

/// Everything about a run but its images. [`Settings::default`] holds the defaults of the
/// reference implementation, which the command line shows, but for two that finish sooner with
/// a better picture: [`Settings::clamp`] and [`Settings::min_change`].
#[derive(Clone, Debug)]
pub struct Settings {
    /// Longest side of the result in pixels.
    pub size: usize,
    /// Number of scales, coarse to fine; `None` picks it from the size (see `schedule`).
    pub scales: Option<usize>,
    /// Optimiser steps at each scale.
    pub iters: usize,
    pub optimizer: Optimizer,
    pub weights: Weights,
    pub layers: Layers,
    /// Style images' longest side relative to the scale's.
    pub style_scale: f32,
    pub init: Init,
    /// Luminance-only transfer (see `color`).
    pub preserve_colors: bool,
    /// Report the current image every this many steps ([`Event::Save`]).
    pub save_every: Option<usize>,
    /// The coarsest scale ends early once the loss falls by less than this fraction per step,
    /// averaged over the last [`CONVERGENCE_WINDOW`] steps; each finer scale at this times its
    /// pixels over the coarsest's ([`schedule::min_change_at`]). 0 runs every step of `iters`.
    pub min_change: f32,
    /// Keep every pixel in 0..255 after each step (projected descent): the optimiser then scores
    /// the picture the file will hold, not one whose out-of-range pixels saving clips.
    pub clamp: bool,
}

/// The default [`Settings::min_change`]: at 512 px (two scales) the coarse scale then stops at
/// 0.1% a step and the finest at 0.4%. Measured on two content/style pairs against running all
/// 300 steps of both scales, it finishes in about a quarter of the time at a lower loss of the
/// saved picture (`benches/README.md`, "Time to a finished picture").
pub const DEFAULT_MIN_CHANGE: f32 = 1e-3;

/// Steps over which [`Settings::min_change`] averages the loss's fall: L-BFGS without a line
/// search does not descend at every step, so one step's change says little.
pub const CONVERGENCE_WINDOW: usize = 10;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            size: 512,
            scales: None,
            iters: 300,
            optimizer: Optimizer::Lbfgs(LbfgsConfig::default()),
            weights: Weights::default(),
            layers: Layers::default(),
            style_scale: 1.0,
            init: Init::Content,
            preserve_colors: false,
            save_every: None,
            min_change: DEFAULT_MIN_CHANGE,
            clamp: true,
        }
    }
}

/// What a run will do, worked out before any compute so that impossible requests fail at once.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// `(width, height)` of each scale, coarse to fine; the last is the result's.
    pub sizes: Vec<(usize, usize)>,
    /// Each scale's [`Settings::min_change`] threshold, coarse to fine
    /// ([`schedule::min_change_at`]).
    pub min_changes: Vec<f32>,
    /// The estimated peak memory in bytes.
    pub memory: u64,
    /// The optimiser to run: the settings', with a shorter L-BFGS history if the full one
    /// would not fit in memory ([`Plan::history_reduced`] says so).
    pub optimizer: Optimizer,
}

/// L-BFGS is not shortened below this many correction pairs: fewer approximate the curvature
/// too poorly to be worth its memory over Adam (Nocedal & Wright suggest 3 to 20).
pub const MIN_LBFGS_HISTORY: usize = 5;

impl Plan {
    /// `(kept, asked)` correction pairs when the L-BFGS history was shortened to fit in memory.
    pub fn history_reduced(&self, settings: &Settings) -> Option<(usize, usize)> {
        match (self.optimizer, settings.optimizer) {
            (Optimizer::Lbfgs(kept), Optimizer::Lbfgs(asked)) if kept.history < asked.history => {
                Some((kept.history, asked.history))
            }
            _ => None,
        }
    }
}

impl Settings {
    /// The plan for a content image of `content_size` (width, height) and `styles` style images:
    /// refuses an output too small for the chosen layers, or too large for the memory available.
    pub fn plan(&self, content_size: (usize, usize), styles: usize) -> Result<Plan, Error> {
        self.plan_within(content_size, styles, memory::available_bytes())
    }

    /// [`Settings::plan`] with `available` bytes of memory (`None`: unknown, assume enough).
    /// When L-BFGS's history (two images per pair) is what does not fit, it is shortened to
    /// the longest that does, down to [`MIN_LBFGS_HISTORY`] pairs: a 3840x2160 image is 100 MB,
    /// so 100 pairs alone would take 20 GB.
    pub fn plan_within(
        &self,
        content_size: (usize, usize),
        styles: usize,
        available: Option<u64>,
    ) -> Result<Plan, Error> {
        let min = self.layers.min_side()?;
        let (w, h) = longest_side_size(content_size.0, content_size.1, self.size);
        let layer = vgg::table::LAYERS[vgg::model::deepest(&self.layers.names())?].name();
        if w.min(h) < min {
            return Err(Error::TooSmall { width: w, height: h, layer, min });
        }
        let sizes: Vec<(usize, usize)> = schedule::scale_sizes(self.size, self.scales, min)
            .into_iter()
            .map(|s| longest_side_size(content_size.0, content_size.1, s))
            .filter(|&(w, h)| w.min(h) >= min)
            .collect();
        let need =
            |optimizer: &Optimizer| memory::estimate_bytes(w, h, &self.layers, styles, optimizer.history_vectors());
        let mut optimizer = self.optimizer;
        let mut memory = need(&optimizer)?;
        if let (Some(available), Optimizer::Lbfgs(config)) = (available, self.optimizer) {
            // The estimate has come within 6% of the measured peak (benches/README.md), either
            // way: a history sized to fill all the memory available could push a long run into
            // swap once it fills up, so a tenth is left free.
            let budget = available - available / 10;
            if memory > budget && config.history > MIN_LBFGS_HISTORY {
                // The estimate grows by two images per pair: take the longest history that fits.
                let fixed = need(&Optimizer::Lbfgs(LbfgsConfig { history: 0, ..config }))?;
                let pair = 2 * 3 * (w * h) as u64 * 4;
                let fits = (budget.saturating_sub(fixed) / pair) as usize;
                optimizer =
                    Optimizer::Lbfgs(LbfgsConfig { history: fits.clamp(MIN_LBFGS_HISTORY, config.history), ..config });
                memory = need(&optimizer)?;
            }
        }
        memory::refuse_beyond(memory, available, |needed, available| Error::OutOfMemory {
            width: w,
            height: h,
            needed,
            available,
        })?;
        let coarsest = sizes.first().map_or(1, |&(w, h)| w * h);
        let min_changes =
            sizes.iter().map(|&(w, h)| schedule::min_change_at(self.min_change, w * h, coarsest)).collect();
        Ok(Plan { sizes, min_changes, memory, optimizer })
    }
}

/// One finished step, as reported to the observer.
#[derive(Clone, Copy, Debug)]
pub struct StepReport {
    /// 1-based, counted over all scales.
    pub step: usize,
    pub total_steps: usize,
    /// 1-based.
    pub scale: usize,
    pub scales: usize,
    pub width: usize,
    pub height: usize,
    /// The losses at the point the step started from.
    pub losses: Losses,
    pub seconds: f64,
}

/// What the loop tells its observer.
#[derive(Debug)]
pub enum Event<'a> {
    /// A scale begins (its targets are computed).
    Scale { scale: usize, scales: usize, width: usize, height: usize },
    /// A step finished.
    Step(&'a StepReport),
    /// `save_every` steps have passed: the current result, RGB, ready to save.
    Save(&'a Tensor),
}

/// The observer's answer: go on, or stop with the image so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    Continue,
    Stop,
}

/// An observer's own failure (e.g. a log it cannot write), passed through as [`Error::Observer`].
pub type ObserverError = Box<dyn std::error::Error + Send + Sync>;

/// Receives the loop's events; returning [`Control::Stop`] ends the run as [`Outcome::Interrupted`].
pub trait Observer {
    fn on_event(&mut self, event: Event<'_>) -> Result<Control, ObserverError>;
}

/// An observer that watches nothing and never stops the run.
pub struct Silent;

impl Observer for Silent {
    fn on_event(&mut self, _: Event<'_>) -> Result<Control, ObserverError> {
        Ok(Control::Continue)
    }
}

/// How a run ended. Each carries the image to keep, RGB `[1, 3, H, W]`, colours preserved if asked.
#[derive(Debug)]
pub enum Outcome {
    /// Every step of every scale ran.
    Finished { image: Tensor },
    /// The observer stopped the run after `step` steps; the image is the latest.
    Interrupted { image: Tensor, step: usize },
    /// The loss became NaN or infinite at `step`; the image is the last one whose loss was finite.
    Diverged { image: Tensor, step: usize },
}

impl Outcome {
    pub fn image(&self) -> &Tensor {
        match self {
            Outcome::Finished { image } | Outcome::Interrupted { image, .. } | Outcome::Diverged { image, .. } => image,
        }
    }
}

/// Repaints `content` (RGB `[1, 3, H, W]`, 0..255) in the style of `styles` (RGB images with
/// blend weights summing to 1), as `settings` say.
pub fn transfer(
    vgg: &Vgg19,
    content: &Tensor,
    styles: &[(Tensor, f32)],
    settings: &Settings,
    observer: &mut dyn Observer,
) -> Result<Outcome, Error> {
    let plan = settings.plan(size(content), styles.len())?;
    let min_side = settings.layers.min_side()?;
    let style_side = |longest: usize| ((longest as f32 * settings.style_scale).round() as usize).max(min_side);
    // The finest scale's style images are the largest: check them before the first step.
    if let Some(&(w, h)) = plan.sizes.last() {
        let side = style_side(w.max(h));
        let sizes: Vec<(usize, usize)> =
            styles.iter().map(|(s, _)| size(s)).map(|(sw, sh)| longest_side_size(sw, sh, side)).collect();
        crate::objective::check_style_sizes(&sizes, &settings.layers, memory::available_bytes())?;
    }
    // Luminance-only transfer optimises grey images; the colours come back in `finish`.
    let (content_in, styles_in): (Tensor, Vec<(Tensor, f32)>) = if settings.preserve_colors {
        let images: Vec<Tensor> = styles.iter().map(|(s, _)| s.clone()).collect();
        let (c, greys) = color::luminance_only(content, &images);
        (c, greys.into_iter().zip(styles.iter().map(|(_, b)| *b)).collect())
    } else {
        (content.clone(), styles.to_vec())
    };
    let finish = |x: &Tensor| -> Result<Tensor, Error> {
        let rgb = Vgg19::deprocess(x)?;
        Ok(if settings.preserve_colors { color::preserve_colors(content, &rgb) } else { rgb })
    };
    let scales = plan.sizes.len();
    let total_steps = settings.iters * scales;
    let mut step = 0;
    let mut x: Option<Tensor> = None;
    for (scale, (&(w, h), &min_change)) in plan.sizes.iter().zip(&plan.min_changes).enumerate() {
        let scale = scale + 1;
        if observer.on_event(Event::Scale { scale, scales, width: w, height: h })? == Control::Stop {
            let image = match &x {
                Some(x) => finish(x)?,
                None => content.clone(),
            };
            return Ok(Outcome::Interrupted { image, step });
        }
        let longest = w.max(h);
        let styles_s: Vec<(Tensor, f32)> =
            styles_in.iter().map(|(s, b)| (resize_longest(s, style_side(longest)), *b)).collect();
        let content_s = resize_longest(&content_in, longest);
        let objective = Objective::new(vgg, &content_s, &styles_s, settings.layers.clone(), settings.weights)?;
        let mut current = match x.take() {
            Some(previous) => resize_exact(&previous, w, h),
            None => Vgg19::preprocess(&match &settings.init {
                Init::Content => content_s,
                Init::Noise { seed } => Tensor::uniform([1, 3, h, w], 0.0, 255.0, *seed),
                Init::Image(img) => resize_exact(img, w, h),
            })?,
        };
        let mut optimizer = plan.optimizer.build();
        // The point whose loss was last seen finite: what a divergence falls back to.
        let mut good = current.clone();
        let mut totals: Vec<f32> = Vec::with_capacity(settings.iters);
        for _ in 0..settings.iters {
            if converged(&totals, min_change) {
                break;
            }
            let started = Instant::now();
            let mut losses = Losses::default();
            let result = optimizer.step(&current, &mut |p: &Tensor| {
                let (l, g) = objective.evaluate(p, true).map_err(|e| Box::new(e) as ClosureError)?;
                losses = l;
                Ok((l.total, g.expect("asked for the gradient")))
            });
            step += 1;
            match result {
                Ok(next) => {
                    let next = if settings.clamp { Vgg19::clamp_to_pixels(next.x) } else { next.x };
                    good = std::mem::replace(&mut current, next)
                }
                Err(OptimError::NonFinite { .. }) => return Ok(Outcome::Diverged { image: finish(&good)?, step }),
                Err(OptimError::Closure(e)) => {
                    return Err(match e.downcast::<Error>() {
                        Ok(e) => *e,
                        Err(e) => Error::Observer(e),
                    })
                }
            }
            totals.push(losses.total);
            let report = StepReport {
                step,
                total_steps,
                scale,
                scales,
                width: w,
                height: h,
                losses,
                seconds: started.elapsed().as_secs_f64(),
            };
            if observer.on_event(Event::Step(&report))? == Control::Stop {
                return Ok(Outcome::Interrupted { image: finish(&current)?, step });
            }
            if settings.save_every.is_some_and(|n| step % n == 0) {
                observer.on_event(Event::Save(&finish(&current)?))?;
            }
        }
        x = Some(current);
    }
    Ok(Outcome::Finished { image: finish(&x.expect("a plan has at least one scale"))? })
}

/// Whether the loss has stopped falling: over the last [`CONVERGENCE_WINDOW`] steps it fell by
/// less than `min_change` of its value per step (or rose).
fn converged(totals: &[f32], min_change: f32) -> bool {
    if min_change <= 0.0 || totals.len() <= CONVERGENCE_WINDOW {
        return false;
    }
    let (then, now) = (totals[totals.len() - 1 - CONVERGENCE_WINDOW], totals[totals.len() - 1]);
    (then - now) / then.abs().max(f32::MIN_POSITIVE) / (CONVERGENCE_WINDOW as f32) < min_change
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn convergence_needs_a_full_window_of_slow_progress() {
        let falling: Vec<f32> = (0..30).map(|k| 100.0 * 0.9f32.powi(k)).collect();
        assert!(!converged(&falling, 0.01), "10% a step is progress");
        let flat: Vec<f32> = (0..30).map(|k| 100.0 - 0.001 * k as f32).collect();
        assert!(converged(&flat, 1e-4), "1e-5 a step is not");
        assert!(!converged(&flat, 0.0), "0 never stops");
        assert!(!converged(&flat[..10], 1e-4), "not before a full window");
        let rising: Vec<f32> = (0..12).map(|k| 100.0 + k as f32).collect();
        assert!(converged(&rising, 1e-4));
    }
}
