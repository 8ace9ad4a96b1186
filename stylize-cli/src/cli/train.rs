//! `stylize train`: [`stylize::train`] with a progress bar, a log, checkpoints, previews and Ctrl-C.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use nn::model_file::ModelFile;
use nn::transformer::{OutputRange, Variant};
use sha2::{Digest, Sha256};
use stylize::objective::Layers;
use stylize::photos::Photos;
use stylize::train::{TrainSettings, Trainer};
use stylize::transfer::Control;
use stylize::{image, output};
use tensor::Rng;
use vgg::{Purpose, Vgg19};

use super::args::{
    parse_layer_name, parse_layer_weights_arg, parse_positive, parse_positive_f32, parse_size, ComputeArgs,
    LayerWeights, LossArgs,
};
use super::run::{Log, Progress, TRAIN_COLUMNS};

/// Options of `train`.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct TrainArgs {
    /// One or more style images (paintings); with several, see --style-blend
    #[arg(value_name = "STYLE", required = true, num_args = 1..)]
    pub styles: Vec<PathBuf>,

    /// Folder of training photos (any JPEG/PNG photos; the repository ships 52 in data/photos)
    #[arg(long, value_name = "DIR")]
    pub photos: PathBuf,

    /// Where to write the trained model (safetensors); a checkpoint goes to MODEL.ckpt beside it
    #[arg(short, long, value_name = "MODEL")]
    pub output: PathBuf,

    /// Side of the square photo crops the network learns on (a multiple of 4)
    #[arg(long, value_name = "PX", default_value_t = TrainSettings::default().size, value_parser = parse_size)]
    pub size: usize,

    /// Training steps (one batch each)
    #[arg(long, value_name = "N", default_value_t = TrainSettings::default().steps, value_parser = parse_positive)]
    pub steps: usize,

    /// Photos per step
    #[arg(long, value_name = "N", default_value_t = TrainSettings::default().batch, value_parser = parse_positive)]
    pub batch: usize,

    /// Adam's learning rate
    #[arg(long, value_name = "LR", default_value_t = TrainSettings::default().lr, value_parser = parse_positive_f32)]
    pub lr: f32,

    /// Lower the learning rate linearly towards zero over the last N steps (0: keep it constant). Small batches leave noise in every step at a constant rate; letting the rate fall at the end settles the network lower: a fifth lower loss for the shipped models (models/README.md). To resume a run with more --steps, give the first run's N [default: half of --steps]
    #[arg(long, value_name = "N")]
    pub lr_decay: Option<usize>,

    /// Seed of the network's initialisation and of the crops: the same seed and --threads give the same model bit for bit
    #[arg(long, value_name = "N", default_value_t = TrainSettings::default().seed)]
    pub seed: u64,

    /// Channels of the network's first layer: 16 (0.42 M parameters) learns as fast per step here and applies 3x faster; 32 is Johnson et al.'s network (1.68 M)
    #[arg(long, value_name = "C", default_value_t = TrainSettings::default().width, value_parser = parse_positive)]
    pub width: usize,

    /// Blocks of the network: instance norm + ReLU (Johnson et al.), or batch norm + leaky ReLU (the original design)
    #[arg(long, value_name = "instance-relu|batch-leaky", default_value = TrainSettings::default().variant.name(), value_parser = parse_variant)]
    pub variant: Variant,

    /// The network's last step: `soft` bounds its picture to 0..255 with a scaled tanh, so that training lowers the loss of the picture that is saved; `clamp` leaves the raw output, which is clamped only when saved and in which a network learns to hide style that the saved picture loses (models/README.md). `clamp` reproduces the first stage of the shipped models (models/train.sh)
    #[arg(long, value_name = "soft|clamp", default_value = TrainSettings::default().output.name(), value_parser = parse_output_range)]
    pub output_range: OutputRange,

    /// Pixels of mirrored border around each crop, cut off the network's output before the loss, as `apply` does (a multiple of 4; 0 for none). Without it the network learns to paint a band along the edges that lowers the loss but not the picture's quality (models/README.md)
    #[arg(long, value_name = "PX", default_value_t = TrainSettings::default().border)]
    pub border: usize,

    #[command(flatten)]
    pub loss: LossArgs,

    /// Size of the style images relative to --size
    #[arg(long, value_name = "F", default_value_t = TrainSettings::default().style_scale, value_parser = parse_positive_f32)]
    pub style_scale: f32,

    /// VGG19 layer whose features define the content
    #[arg(long, value_name = "LAYER", default_value_t = Layers::default().content, value_parser = parse_layer_name)]
    pub content_layer: String,

    /// Style layers, comma-separated, each optionally LAYER:W
    #[arg(long, value_name = "LAYERS", default_value_t = LayerWeights::default(), value_parser = parse_layer_weights_arg)]
    pub style_layers: LayerWeights,

    /// Start from this trained network (a model file, a checkpoint, or a shipped model's name) instead of a fresh one, e.g. to train a shipped model further with other settings. Adam starts afresh, the run's own settings apply from its first step, and --width and --variant must match the network. The file's hash and the steps behind it (its own and its start's, if it had one) are kept in the model's metadata
    #[arg(long, value_name = "MODEL")]
    pub init: Option<String>,

    /// Save a checkpoint (MODEL.ckpt) every N steps; one is also saved on Ctrl-C
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = parse_positive)]
    pub checkpoint_every: usize,

    /// Continue from MODEL.ckpt exactly where it stopped (same settings and style images); the --log file is continued, not restarted
    #[arg(long)]
    pub resume: bool,

    /// Every N steps, write the network's picture of a fixed photo to MODEL.preview.png
    #[arg(long, value_name = "N", value_parser = parse_positive)]
    pub preview_every: Option<usize>,

    /// Write the losses of every step to FILE: CSV if it ends in .csv, JSON lines otherwise
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,

    #[command(flatten)]
    pub compute: ComputeArgs,

    /// Print nothing but errors and warnings
    #[arg(short, long)]
    pub quiet: bool,
}

fn parse_output_range(s: &str) -> Result<OutputRange, String> {
    OutputRange::from_name(s).ok_or_else(|| format!("'{s}' is not an output range; use soft or clamp"))
}

fn parse_variant(s: &str) -> Result<Variant, String> {
    Variant::from_name(s).ok_or_else(|| format!("'{s}' is not a variant; use instance-relu or batch-leaky"))
}

/// `MODEL.ckpt`, `MODEL.preview.png`: files that go with the model.
fn beside(model: &Path, suffix: &str) -> PathBuf {
    let mut name = model.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(suffix);
    model.with_file_name(name)
}

/// Refuses a model path that names a folder or a picture: `-o out.png` would write a
/// safetensors model under a picture's name, which no viewer opens.
fn check_model_path(path: &Path) -> Result<()> {
    let named = |p: &Path| p.with_extension("safetensors").display().to_string();
    if path.is_dir() {
        bail!(
            "{}: is a folder; give the model's file name, such as {}",
            path.display(),
            path.join("model.safetensors").display()
        );
    }
    if image::output_format(path).is_ok() {
        bail!(
            "{}: a model is a safetensors file, not a picture; name it {} (`stylize apply` paints pictures with it)",
            path.display(),
            named(path)
        );
    }
    Ok(output::check(path)?)
}

pub fn train(args: &TrainArgs) -> Result<ExitCode> {
    let checkpoint_path = beside(&args.output, ".ckpt");
    let preview_path = beside(&args.output, ".preview.png");
    check_model_path(&args.output)?;
    output::check(&checkpoint_path)?;
    if let Some(log) = &args.log {
        output::check(log)?;
    }
    let weights_path = vgg::resolve_weights_path(args.compute.weights.as_deref())?;
    let mut styles = Vec::new();
    let mut metadata = BTreeMap::new();
    for (i, (path, blend)) in args.styles.iter().zip(args.loss.blend_weights(args.styles.len())).enumerate() {
        let bytes = std::fs::read(path).with_context(|| format!("reading style image {}", path.display()))?;
        let hash: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        metadata.insert(format!("style.{i}.sha256"), hash);
        metadata.insert(format!("style.{i}.blend"), blend.to_string());
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        metadata.insert(format!("style.{i}.file"), name);
        styles.push((image::load_rgb(path).with_context(|| format!("reading style image {}", path.display()))?, blend));
    }
    // The network to start from, read now so that a bad file fails before the photos load.
    let init = match &args.init {
        None => None,
        Some(name) => {
            let path = super::apply::resolve(name)?;
            let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let model = ModelFile::from_bytes(&bytes, &path)?;
            let hash: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
            metadata.insert("init.sha256".into(), hash);
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            metadata.insert("init.file".into(), name);
            metadata.insert("init.steps".into(), steps_behind(&model));
            Some(model)
        }
    };
    let settings = TrainSettings {
        size: args.size,
        steps: args.steps,
        batch: args.batch,
        lr: args.lr,
        lr_decay: args.lr_decay.unwrap_or(TrainSettings::default_lr_decay(args.steps)),
        seed: args.seed,
        weights: args.loss.weights(),
        layers: Layers { content: args.content_layer.clone(), style: args.style_layers.0.clone() },
        style_scale: args.style_scale,
        width: args.width,
        variant: args.variant,
        output: args.output_range,
        border: args.border,
    };
    let (photos, skipped) = Photos::open(&args.photos, args.size)?;
    for s in &skipped {
        eprintln!("warning: skipping {}: {}", s.path.display(), s.reason);
    }
    let say = |msg: String| {
        if !args.quiet {
            eprintln!("{msg}");
        }
    };
    let vgg = Vgg19::load_for(&weights_path, &settings.layers.names(), Purpose::Train)?;
    let mut trainer = if args.resume {
        if !checkpoint_path.exists() {
            bail!(
                "--resume: no checkpoint {} to resume from (a run saves one every --checkpoint-every steps and on \
                 Ctrl-C, beside -o); to start afresh, leave out --resume",
                checkpoint_path.display()
            );
        }
        let checkpoint = ModelFile::read(&checkpoint_path).context("reading the checkpoint to resume from")?;
        let t = Trainer::resume(&vgg, &styles, settings.clone(), metadata, checkpoint)?;
        say(format!("resuming {} at step {} of {}", checkpoint_path.display(), t.step, settings.steps));
        t
    } else if let Some(mut model) = init {
        let t = Trainer::starting_from(&vgg, &styles, settings.clone(), metadata, &mut model)?;
        say(format!(
            "starting from {} (trained {} steps)",
            args.init.as_deref().unwrap_or(""),
            model.meta("train.step").unwrap_or("unknown")
        ));
        t
    } else {
        Trainer::new(&vgg, &styles, settings.clone(), metadata)?
    };
    let rate = match settings.lr_decay {
        0 => format!("rate {}", settings.lr),
        n => format!("rate {}, falling over the last {n}", settings.lr),
    };
    say(format!(
        "training a network ({}, width {}, {} output, {} parameters) on {} photos, {} steps of {} crops of {}x{}, {rate}",
        settings.variant.name(),
        settings.width,
        settings.output.name(),
        trainer.net.num_params(),
        photos.len(),
        settings.steps,
        settings.batch,
        settings.size,
        settings.size
    ));
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = Arc::clone(&interrupted);
        let _ = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst));
    }
    let mut log = match (&args.log, args.resume) {
        (Some(p), true) => Some(Log::resume(p, TRAIN_COLUMNS, trainer.step)?),
        (Some(p), false) => Some(Log::create(p, TRAIN_COLUMNS)?),
        (None, _) => None,
    };
    let progress = Progress::new(settings.steps, args.quiet);
    let preview_crop = photos.batch(&mut Rng::new(settings.seed), 1)?;
    let save_checkpoint = |t: &Trainer| -> Result<()> {
        output::write_bytes_atomic(&checkpoint_path, &t.checkpoint().to_bytes())?;
        Ok(())
    };
    let control = trainer.run(&photos, &mut |t, s| {
        progress.update_train(s);
        if let Some(Err(e)) = log.as_mut().map(|l| l.write_train(s)) {
            progress.warn(&format!("warning: {e:#}; the run goes on without the log"));
            log = None;
        }
        if s.step % args.checkpoint_every == 0 {
            save_checkpoint(t)?;
            // The log holds at least the steps the checkpoint does, whenever the run stops.
            if let Some(Err(e)) = log.as_mut().map(Log::flush) {
                progress.warn(&format!("warning: {e:#}; the run goes on without the log"));
                log = None;
            }
        }
        if args.preview_every.is_some_and(|n| s.step % n == 0) {
            image::save(&t.preview(&preview_crop)?, &preview_path)?;
        }
        Ok(if interrupted.load(Ordering::SeqCst) { Control::Stop } else { Control::Continue })
    });
    progress.finish();
    let control = match control {
        Ok(control) => control,
        // Nothing done is lost: the steps since the last checkpoint are saved before the error.
        Err(e) if trainer.step > 0 && save_checkpoint(&trainer).is_ok() => {
            return Err(anyhow::Error::new(e).context(format!(
                "training stopped after step {}, saved in {} (continue with the same command and --resume once \
                 this is mended)",
                trainer.step,
                checkpoint_path.display()
            )));
        }
        Err(e) => return Err(e.into()),
    };
    save_checkpoint(&trainer)?;
    if let Some(Err(e)) = log.as_mut().map(Log::flush) {
        eprintln!("warning: {e:#}");
    }
    if control == Control::Stop {
        say(format!(
            "interrupted at step {}: saved {}; continue with the same command and --resume",
            trainer.step,
            checkpoint_path.display()
        ));
        return Ok(ExitCode::from(super::run::INTERRUPTED));
    }
    output::write_bytes_atomic(&args.output, &trainer.model().to_bytes())?;
    say(format!("wrote {} after {} steps", args.output.display(), trainer.step));
    Ok(ExitCode::SUCCESS)
}

/// The training steps behind a network a run starts from (`init.steps`): its own, and those
/// behind its own start when it had one, so that a chain of `--init` runs adds up ("unknown"
/// when a file does not say).
fn steps_behind(model: &ModelFile) -> String {
    let own = model.meta("train.step").ok().and_then(|s| s.parse::<u64>().ok());
    match (own, model.meta("init.steps").ok().map(str::parse::<u64>)) {
        (Some(own), None) => own.to_string(),
        (Some(own), Some(Ok(before))) => (own + before).to_string(),
        _ => "unknown".into(),
    }
}
