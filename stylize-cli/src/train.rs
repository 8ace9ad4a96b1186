//! The training phase: teach a feed-forward network one style (Johnson, Alahi and Fei-Fei,
//! "Perceptual Losses for Real-Time Style Transfer and Super-Resolution", ECCV 2016).
//!
//! Each step takes a batch of random photo crops ([`Photos::batch`]), runs them through the
//! network with `apply`'s mirrored border ([`TrainSettings::border`], cut off again after), and
//! scores the output with the same perceptual loss `run` optimises
//! ([`perceptual_loss`]): content against the crops' own VGG features, style against the style
//! images' Grams (computed once), total variation. Backward gives every parameter's gradient,
//! and Adam moves them all. A [`Trainer`] holds everything a step changes (the network, Adam's
//! moments, the random generator, the step count), and [`Trainer::checkpoint`] saves all of it,
//! so a run resumed from a checkpoint continues exactly as if it had never stopped.

use std::collections::BTreeMap;
use std::time::Instant;

use nn::layers::Ctx;
use nn::model_file::{ModelError, ModelFile};
use nn::optim::{Adam, AdamConfig, AdamState};
use nn::transformer::{OutputRange, Transformer, Variant, META_ARCH, META_VARIANT, META_WIDTH};
use tensor::kernels::pad::Window;
use tensor::{Rng, Tape, Tensor, Var};
use vgg::Vgg19;

use crate::apply::{mirror_border, BORDER};
use crate::memory;
use crate::objective::{content_features, perceptual_loss, Layers, Losses, StyleTargets, Weights};
use crate::photos::Photos;
use crate::transfer::{Control, ObserverError};
use crate::Error;

/// Everything about a training run but its images. The defaults are Johnson et al.'s, at a
/// size a CPU trains in an hour or two.
#[derive(Clone, Debug)]
pub struct TrainSettings {
    /// Side of the square photo crops, a multiple of 4 (the network halves twice).
    pub size: usize,
    pub steps: usize,
    pub batch: usize,
    /// Adam's learning rate (Johnson et al.: 1e-3).
    pub lr: f32,
    /// Over the last this many steps the learning rate falls linearly towards zero
    /// ([`TrainSettings::lr_at`]); 0 keeps it constant.
    pub lr_decay: usize,
    /// Seeds the network's initialisation and the crops.
    pub seed: u64,
    pub weights: Weights,
    pub layers: Layers,
    /// Style images' longest side relative to `size`.
    pub style_scale: f32,
    /// Channels of the first convolution: 32 is the paper's network, 16 a quarter of the work.
    /// 16 by default: in 300 equal steps both reached the same training loss (4.61e6), while 32
    /// took 1.33x as long per step and 3x as long to apply (models/README.md, "Width and
    /// variant").
    pub width: usize,
    pub variant: Variant,
    /// The network's output: [`OutputRange::Soft`], so that the loss is the saved picture's;
    /// [`OutputRange::Clamp`] reproduces the first shipped models' first stages.
    pub output: OutputRange,
    /// Pixels of each crop's mirror image added on every side before the network, and cut off
    /// its output before the loss: `apply`'s [`BORDER`], so the network learns on what `apply`
    /// shows it. Why: without it the network learns to paint a chequered band along every edge,
    /// because next to VGG's zero padding the band's high frequencies lower the early layers'
    /// Gram difference (`models/README.md`); `apply` cuts the band off, so it is loss gamed,
    /// not picture gained. A multiple of 4, smaller than `size`; 0 trains on the bare crops.
    pub border: usize,
}

impl Default for TrainSettings {
    fn default() -> Self {
        TrainSettings {
            size: 256,
            steps: 2000,
            batch: 4,
            lr: 1e-3,
            lr_decay: 0,
            seed: 0,
            weights: Weights::default(),
            layers: Layers::default(),
            style_scale: 1.0,
            width: 16,
            variant: Variant::InstanceRelu,
            output: OutputRange::Soft,
            border: BORDER,
        }
    }
}

impl TrainSettings {
    /// `stylize train`'s `--lr-decay` when none is given: the rate falls over the second half
    /// of the run (the shipped models' schedule, 2,000 of 4,000 steps; see [`TrainSettings::lr_at`]).
    /// `Default` keeps the rate constant, so that a run of any length can be made from it.
    pub fn default_lr_decay(steps: usize) -> usize {
        steps / 2
    }

    /// The longest side the style images are resized to: `--style-scale` times the crops'.
    pub fn style_side(&self) -> usize {
        ((self.size as f32 * self.style_scale).round() as usize).max(16)
    }

    /// Refuses a run whose steps, or whose style targets (from images of `style_sizes` before
    /// resizing), would not fit in the memory `available` (if known), before any work.
    pub fn check_memory(&self, style_sizes: &[(usize, usize)], available: Option<u64>) -> Result<(), Error> {
        let resized: Vec<(usize, usize)> =
            style_sizes.iter().map(|&(w, h)| crate::image::longest_side_size(w, h, self.style_side())).collect();
        crate::objective::check_style_sizes(&resized, &self.layers, available)?;
        let (batch, size) = (self.batch, self.size);
        memory::refuse_beyond(memory::train_step_bytes(batch, size, self.width), available, |needed, available| {
            Error::TrainOutOfMemory { batch, size, needed, available }
        })
    }

    /// The learning rate of step `step` (1-based): `lr` until the last `lr_decay` steps, then
    /// falling linearly, `lr · (steps + 1 - step) / (lr_decay + 1)`, to `lr / (lr_decay + 1)` at
    /// the last step.
    ///
    /// Why: with a constant rate Adam's steps keep the noise of each small batch, and the loss
    /// settles at a floor set by the rate. Measured on a Starry Night model after 2,000 steps at
    /// 1e-3: the next 150 steps on the same crops at 1e-4 gave a 6-11% lower training loss than
    /// at 1e-3 (models/README.md). Decaying linearly to zero matches or beats the other common
    /// schedules (Defazio et al. 2023, "When, Why and How Much? Adaptive Learning Rate
    /// Scheduling by Refinement").
    pub fn lr_at(&self, step: usize) -> f32 {
        let decay = self.lr_decay.min(self.steps);
        match step > self.steps - decay {
            true => self.lr * (self.steps + 1).saturating_sub(step) as f32 / (decay + 1) as f32,
            false => self.lr,
        }
    }
}

/// One finished training step.
#[derive(Clone, Copy, Debug)]
pub struct TrainStep {
    /// 1-based.
    pub step: usize,
    pub steps: usize,
    /// The batch's losses before the step's update.
    pub losses: Losses,
    pub seconds: f64,
}

/// A network being trained, with all the state a step changes.
pub struct Trainer<'v> {
    vgg: &'v Vgg19,
    styles: StyleTargets,
    settings: TrainSettings,
    /// What the caller records about the run (style image hashes, ...), saved in every file.
    metadata: BTreeMap<String, String>,
    pub net: Transformer,
    adam: Adam,
    rng: Rng,
    /// Steps done.
    pub step: usize,
    /// The last step's losses.
    pub last: Option<Losses>,
}

/// Metadata keys of a checkpoint's training state.
const KEY_STEP: &str = "train.step";
const KEY_ADAM_T: &str = "train.adam_t";
const KEY_RNG: &str = "train.rng_state";
const KEY_STEPS: &str = "train.steps";
const KEY_LR_DECAY: &str = "train.lr_decay";
const KEY_BORDER: &str = "train.border";
const KEY_FINAL_LOSS: &str = "train.final_loss";

impl<'v> Trainer<'v> {
    /// A fresh run: the network initialised from `settings.seed`.
    pub fn new(
        vgg: &'v Vgg19,
        styles: &[(Tensor, f32)],
        settings: TrainSettings,
        metadata: BTreeMap<String, String>,
    ) -> Result<Self, Error> {
        if !settings.size.is_multiple_of(4) || settings.size < 16 {
            return Err(Error::BadTrainSize { size: settings.size });
        }
        if !settings.border.is_multiple_of(4) || settings.border >= settings.size {
            return Err(Error::BadTrainBorder { border: settings.border, size: settings.size });
        }
        if settings.lr_decay > settings.steps {
            return Err(Error::BadLrDecay { decay: settings.lr_decay, steps: settings.steps });
        }
        let style_sizes: Vec<(usize, usize)> = styles.iter().map(|(s, _)| crate::image::size(s)).collect();
        settings.check_memory(&style_sizes, memory::available_bytes())?;
        let styles: Vec<(Tensor, f32)> =
            styles.iter().map(|(s, b)| (crate::image::resize_longest(s, settings.style_side()), *b)).collect();
        let targets = StyleTargets::new(vgg, &styles, &settings.layers)?;
        let mut net = Transformer::new(settings.width, settings.variant, settings.seed);
        net.output = settings.output;
        let adam = Adam::new(AdamConfig { lr: settings.lr, ..AdamConfig::default() });
        let rng = Rng::new(settings.seed ^ 0x5eed_c0de_cafe_f00d);
        Ok(Trainer { vgg, styles: targets, settings, metadata, net, adam, rng, step: 0, last: None })
    }

    /// A fresh run that starts from a trained network instead of the seed's initialisation: the
    /// network of `model` (a model file or a checkpoint), with Adam's moments at zero and the
    /// step count at 0. The run's own settings (border, rate, weights) apply from its first step,
    /// so a shipped model can be trained further under settings it was not made with, its output
    /// range included (a network trained with [`OutputRange::Clamp`] learns to work under the
    /// bound). `model` must have the run's width and variant; the seed still chooses the crops.
    pub fn starting_from(
        vgg: &'v Vgg19,
        styles: &[(Tensor, f32)],
        settings: TrainSettings,
        metadata: BTreeMap<String, String>,
        model: &mut ModelFile,
    ) -> Result<Self, Error> {
        let mut t = Trainer::new(vgg, styles, settings, metadata)?;
        let net = Transformer::from_model_file(model)?;
        let describe = |width: usize, variant: Variant| format!("width-{width} {}", variant.name());
        let run = describe(t.settings.width, t.settings.variant);
        if describe(net.width, net.variant) != run {
            return Err(Error::InitMismatch { path: model.path.clone(), model: describe(net.width, net.variant), run });
        }
        t.net = net;
        t.net.output = t.settings.output;
        Ok(t)
    }

    /// Continues the run saved in `checkpoint` (from [`Trainer::checkpoint`]). The settings and
    /// metadata must be those it was started with: a resumed run is the same run.
    pub fn resume(
        vgg: &'v Vgg19,
        styles: &[(Tensor, f32)],
        settings: TrainSettings,
        metadata: BTreeMap<String, String>,
        mut checkpoint: ModelFile,
    ) -> Result<Self, Error> {
        let mut t = Trainer::new(vgg, styles, settings, metadata)?;
        let done: usize = checkpoint.meta_parsed(KEY_STEP)?;
        // A resumed run may be longer, and its rate may fall over other steps, as long as every
        // step already taken had the rate it has in this run: a 2,000-step run resumed with
        // `--steps 4000 --lr-decay 2000` is that 4,000-step run. Checkpoints from before
        // `--lr-decay` kept the rate constant.
        let lr_decay = match checkpoint.meta(KEY_LR_DECAY) {
            Err(_) => 0,
            Ok(_) => checkpoint.meta_parsed(KEY_LR_DECAY)?,
        };
        let before = TrainSettings { steps: checkpoint.meta_parsed(KEY_STEPS)?, lr_decay, ..t.settings.clone() };
        let same_schedule = (1..=done).all(|k| before.lr_at(k) == t.settings.lr_at(k));
        for (key, value) in t.run_metadata() {
            if (key == KEY_STEPS || key == KEY_LR_DECAY) && same_schedule {
                continue;
            }
            // Checkpoints from before `--lr-decay` and `--border` had neither.
            let found = match checkpoint.meta(&key) {
                Err(_) if key == KEY_LR_DECAY || key == KEY_BORDER => "0",
                found => found?,
            };
            if found != value {
                return Err(Error::ResumeMismatch {
                    path: checkpoint.path.clone(),
                    key,
                    checkpoint: found.to_string(),
                    now: value,
                });
            }
        }
        // What the checkpoint's run had and this one lacks (a second style, a starting network)
        // differs as surely as a changed value.
        let run = t.run_metadata();
        let state = [META_ARCH, META_WIDTH, META_VARIANT, KEY_STEP, KEY_ADAM_T, KEY_RNG, KEY_FINAL_LOSS];
        if let Some((key, found)) =
            checkpoint.metadata.iter().find(|(k, _)| !run.contains_key(*k) && !state.contains(&k.as_str()))
        {
            return Err(Error::ResumeMismatch {
                path: checkpoint.path.clone(),
                key: key.clone(),
                checkpoint: found.clone(),
                now: "nothing".into(),
            });
        }
        t.net = Transformer::from_model_file(&mut checkpoint)?;
        if t.net.output != t.settings.output {
            return Err(Error::ResumeMismatch {
                path: checkpoint.path.clone(),
                key: "--output-range".into(),
                checkpoint: t.net.output.name().into(),
                now: t.settings.output.name().into(),
            });
        }
        let shapes: Vec<_> = t.net.params().iter().map(|(_, p)| p.shape()).collect();
        let (mut m, mut v) = (Vec::new(), Vec::new());
        for ((name, _), shape) in t.net.params().iter().zip(&shapes) {
            m.push(checkpoint.take(&format!("adam.m.{name}"), shape.dims())?);
            v.push(checkpoint.take(&format!("adam.v.{name}"), shape.dims())?);
        }
        let adam_t: i32 = checkpoint.meta_parsed(KEY_ADAM_T)?;
        t.adam =
            Adam::with_state(AdamConfig { lr: t.settings.lr, ..AdamConfig::default() }, AdamState { t: adam_t, m, v });
        t.rng = Rng::new(checkpoint.meta_parsed(KEY_RNG)?);
        t.step = done;
        checkpoint.finish()?;
        Ok(t)
    }

    /// Everything that defines the run, as model-file metadata.
    fn run_metadata(&self) -> BTreeMap<String, String> {
        let s = &self.settings;
        let mut m = self.metadata.clone();
        let w = s.weights;
        let layers: Vec<String> = s.layers.style.iter().map(|(n, w)| format!("{n}:{w}")).collect();
        for (k, v) in [
            ("train.size", s.size.to_string()),
            ("train.batch", s.batch.to_string()),
            ("train.lr", s.lr.to_string()),
            ("train.seed", s.seed.to_string()),
            (KEY_STEPS, s.steps.to_string()),
            (KEY_LR_DECAY, s.lr_decay.to_string()),
            (KEY_BORDER, s.border.to_string()),
            ("loss.content_weight", w.content.to_string()),
            ("loss.style_weight", w.style.to_string()),
            ("loss.tv_weight", w.tv.to_string()),
            ("loss.content_layer", s.layers.content.clone()),
            ("loss.style_layers", layers.join(",")),
            ("loss.style_scale", s.style_scale.to_string()),
        ] {
            m.insert(k.to_string(), v);
        }
        m
    }

    /// One step: a batch of crops, the loss, the gradients, Adam. A step that fails (a photo
    /// gone, a gradient not finite) changes nothing, the crops' generator included, so the
    /// trainer's checkpoint is then that of the last step done.
    pub fn step(&mut self, photos: &Photos) -> Result<TrainStep, Error> {
        let rng = self.rng.clone();
        let result = self.try_step(photos);
        if result.is_err() {
            self.rng = rng;
        }
        result
    }

    fn try_step(&mut self, photos: &Photos) -> Result<TrainStep, Error> {
        let started = Instant::now();
        let crops = photos.batch(&mut self.rng, self.settings.batch)?;
        let x = Vgg19::preprocess(&crops)?;
        let content_target = content_features(self.vgg, &x, &self.settings.layers)?;
        let (s, vgg) = (&self.settings, self.vgg);
        let mut tape = Tape::new();
        let mut ctx = Ctx::new(&mut tape, true);
        let y = self.net.forward(&mut ctx, &Var::constant(mirror_border(&x, s.border)))?;
        let bound = ctx.finish();
        let window = Window { top: s.border, left: s.border, h: s.size, w: s.size };
        let y = if s.border > 0 { tape.crop2d(&y, window)? } else { y };
        let (losses, total) = perceptual_loss(&mut tape, vgg, &y, &content_target, &self.styles, &s.layers, s.weights)?;
        drop(y);
        let mut grads = tape.backward(&total)?;
        let mut by_name = bound.gradients(&mut grads);
        drop(grads);
        let (names, params): (Vec<String>, Vec<Tensor>) =
            self.net.params().into_iter().map(|(name, t)| (name, t.clone())).unzip();
        let gradients: Vec<Tensor> =
            names.iter().map(|n| by_name.remove(n).expect("every parameter is bound in a training pass")).collect();
        self.adam.set_lr(self.settings.lr_at(self.step + 1));
        let updated = self
            .adam
            .update(&params, &gradients)
            .map_err(|e| Error::Diverged { step: self.step + 1, reason: e.to_string() })?;
        for ((_, slot), value) in self.net.params_mut().into_iter().zip(updated) {
            *slot = value;
        }
        self.net.update_running_stats(&bound.batch_stats)?;
        self.step += 1;
        self.last = Some(losses);
        Ok(TrainStep { step: self.step, steps: self.settings.steps, losses, seconds: started.elapsed().as_secs_f64() })
    }

    /// Everything needed to continue: the network, Adam's moments (`adam.m.NAME`,
    /// `adam.v.NAME`), the step, the generator's state, and the run's settings.
    pub fn checkpoint(&self) -> ModelFile {
        let mut m = self.model();
        let shapes: Vec<_> = self.net.params().iter().map(|(_, p)| p.shape()).collect();
        let state = self.adam.state(&shapes);
        for (((name, _), mt), vt) in self.net.params().iter().zip(state.m).zip(state.v) {
            m.tensors.insert(format!("adam.m.{name}"), mt);
            m.tensors.insert(format!("adam.v.{name}"), vt);
        }
        m.metadata.insert(KEY_ADAM_T.into(), state.t.to_string());
        m.metadata.insert(KEY_RNG.into(), self.rng.state().to_string());
        m
    }

    /// The trained network as a model file: parameters, architecture, and how it was made
    /// (settings, the caller's metadata, steps done and the last loss).
    pub fn model(&self) -> ModelFile {
        let mut m = self.net.to_model_file();
        m.metadata.extend(self.run_metadata());
        m.metadata.insert(KEY_STEP.into(), self.step.to_string());
        if let Some(l) = self.last {
            m.metadata.insert(KEY_FINAL_LOSS.into(), l.total.to_string());
        }
        m
    }

    pub fn settings(&self) -> &TrainSettings {
        &self.settings
    }

    /// The network's picture of one photo crop `[1, 3, s, s]` (RGB), for previews.
    pub fn preview(&self, crop: &Tensor) -> Result<Tensor, Error> {
        crate::apply::stylize(&self.net, crop, usize::MAX)
    }

    /// Trains until `settings.steps`, telling `observer` about each step; it may stop the run.
    pub fn run(
        &mut self,
        photos: &Photos,
        observer: &mut dyn FnMut(&Trainer, &TrainStep) -> Result<Control, ObserverError>,
    ) -> Result<Control, Error> {
        while self.step < self.settings.steps {
            let s = self.step(photos)?;
            if observer(self, &s)? == Control::Stop {
                return Ok(Control::Stop);
            }
        }
        Ok(Control::Continue)
    }
}

impl From<ModelError> for Error {
    fn from(e: ModelError) -> Self {
        Error::Model(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The step's estimate against the peaks its constants were fitted to (MiB), from above and
    /// within 5%; a run at the defaults passes with 2 GiB free, absurd ones are refused.
    #[test]
    fn the_memory_check_fits_the_measured_peaks_and_refuses_absurd_runs() {
        for (batch, size, width, peak) in
            [(1, 256, 16, 618), (4, 256, 16, 1019), (1, 512, 16, 989), (1, 256, 32, 703), (4, 256, 32, 1295)]
        {
            let mib = memory::train_step_bytes(batch, size, width) as f64 / (1 << 20) as f64;
            assert!(mib >= peak as f64 && mib <= 1.05 * peak as f64, "{batch} x {size}² at width {width}: {mib} MiB");
        }
        let painting = [(512, 320)];
        let gib = Some(2 << 30);
        TrainSettings::default().check_memory(&painting, gib).unwrap();
        let err =
            TrainSettings { batch: 100_000, ..TrainSettings::default() }.check_memory(&painting, gib).unwrap_err();
        assert!(matches!(err, Error::TrainOutOfMemory { batch: 100_000, .. }), "{err}");
        let err =
            TrainSettings { style_scale: 40.0, ..TrainSettings::default() }.check_memory(&painting, gib).unwrap_err();
        assert!(matches!(err, Error::StyleOutOfMemory { width: 10240, height: 6400, .. }), "{err}");
        TrainSettings { batch: 100_000, ..TrainSettings::default() }.check_memory(&painting, None).unwrap();
        // A width whose parameters alone do not fit (217 GB at 2,048).
        let err =
            TrainSettings { width: 2048, batch: 1, ..TrainSettings::default() }.check_memory(&painting, Some(32 << 30));
        assert!(matches!(err, Err(Error::TrainOutOfMemory { .. })), "{err:?}");
        for width in [16, 32] {
            let exact = Transformer::new(width, Variant::InstanceRelu, 0).num_params() as f64;
            let approx = memory::approx_params(width) as f64;
            assert!((approx / exact - 1.0).abs() < 0.01, "width {width}: {approx} against {exact}");
        }
    }

    #[test]
    fn the_rate_falls_linearly_over_the_last_steps() {
        let s = TrainSettings { lr: 1.0, steps: 10, lr_decay: 4, ..TrainSettings::default() };
        let rates: Vec<f32> = (1..=10).map(|k| s.lr_at(k)).collect();
        assert_eq!(rates, [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.8, 0.6, 0.4, 0.2]);
        let constant = TrainSettings { lr_decay: 0, ..s };
        assert!((1..=10).all(|k| constant.lr_at(k) == 1.0));
    }
}
