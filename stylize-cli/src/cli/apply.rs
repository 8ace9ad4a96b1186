//! `stylize apply`: repaint photos with a trained network, one file, many, or a folder, in
//! slices for job arrays.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use nn::model_file::ModelFile;
use nn::transformer::Transformer;
use stylize::batch::{self, Shard};
use stylize::{apply, color, image, memory, output};

use super::args::{parse_size, ComputeArgs};

/// Where the shipped models are (a path known at build time, as the VGG weights').
pub const SHIPPED_MODELS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../models");

/// Options of `apply`.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct ApplyArgs {
    /// A model file from `stylize train`, or the name of a shipped model (see --list)
    #[arg(value_name = "MODEL", required_unless_present = "list")]
    pub model: Option<String>,

    /// Images, or folders of images, to repaint
    #[arg(value_name = "INPUT", required_unless_present = "list", num_args = 1..)]
    pub inputs: Vec<PathBuf>,

    /// Output image (one input), or a folder for the results (several inputs, a folder, or a name ending in /; created if missing)
    #[arg(short, long, value_name = "OUT", required_unless_present = "list")]
    pub output: Option<PathBuf>,

    /// Resize each input so its longest side is PX first [default: keep its size]
    #[arg(long, value_name = "PX", value_parser = parse_size)]
    pub size: Option<usize>,

    /// Keep each photo's colours: the network's luminance with the photo's chroma
    #[arg(long)]
    pub preserve_colors: bool,

    /// Process only slice K of N of the inputs (K from 0), e.g. $SLURM_ARRAY_TASK_ID/16
    #[arg(long, value_name = "K/N")]
    pub shard: Option<Shard>,

    /// Pictures with more pixels than a PX x PX square go through in overlapping tiles of at most PX a side, so memory stays bounded: a pass needs about 340 bytes a pixel at half width, 630 at full width (at least 64) [default: the side of a 1.4 GiB pass, or of three quarters of the free memory if less: 2108 at half width and 1548 at full width, where a 1920x1080 photo goes whole]
    #[arg(long, value_name = "PX", value_parser = parse_tile)]
    pub tile: Option<usize>,

    /// List the shipped models and exit
    #[arg(long)]
    pub list: bool,

    #[command(flatten)]
    pub compute: ComputeArgs,

    /// Print nothing but errors
    #[arg(short, long)]
    pub quiet: bool,
}

/// The shipped models' names (file stems in `models/`), sorted.
fn shipped() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(SHIPPED_MODELS)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
                .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// What a model file says of itself, for `--list`: "  (style_x.jpg, width 16, 1400 steps)",
/// "  (style_x.jpg, width 16, 1600 steps after 4000)" for a model trained further from another
/// (`train --init`; 4000 counts every step behind its start, through a chain of starts), or
/// why it cannot be read.
fn describe(path: &Path) -> String {
    match ModelFile::read(path) {
        Ok(m) => {
            let get = |k: &str| m.meta(k).unwrap_or("?").to_string();
            let before = m.meta("init.steps").map(|s| format!(" after {s}")).unwrap_or_default();
            format!("  ({}, width {}, {} steps{before})", get("style.0.file"), get("width"), get("train.step"))
        }
        Err(e) => format!("  (unreadable: {e})"),
    }
}

/// A model path as given, or a shipped model's by name.
pub(super) fn resolve(model: &str) -> Result<PathBuf> {
    let path = PathBuf::from(model);
    if path.is_file() {
        // `stylize apply photo.jpg more.jpg -o out/` (the model forgotten) reads a photo as the model.
        if image::is_picture(&path) {
            let names = shipped().join(", ");
            bail!(
                "{model}: a picture, not a model; the first argument is the model, a .safetensors file from \
                 `stylize train` or a shipped model's name ({names}), then the pictures"
            );
        }
        return Ok(path);
    }
    let named = Path::new(SHIPPED_MODELS).join(format!("{model}.safetensors"));
    if named.is_file() {
        return Ok(named);
    }
    let names = shipped();
    let known = if names.is_empty() { "none are shipped yet".to_string() } else { names.join(", ") };
    bail!("{model}: no such model file, and not the name of a shipped model ({known}); train one with `stylize train`")
}

pub fn apply(args: &ApplyArgs) -> Result<ExitCode> {
    if args.list {
        let names = shipped();
        if names.is_empty() {
            super::print("no models are shipped yet; train one with `stylize train`")?;
        }
        for n in names {
            super::print(format_args!("{n}{}", describe(&Path::new(SHIPPED_MODELS).join(format!("{n}.safetensors")))))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (Some(model), Some(out)) = (&args.model, &args.output) else { unreachable!("clap requires them") };
    let path = resolve(model)?;
    let mut file = ModelFile::read(&path)?;
    let net = Transformer::from_model_file(&mut file)?;
    let tile = args.tile.unwrap_or_else(|| apply::default_tile(net.width, memory::available_bytes()));
    let jobs = batch::jobs(&args.inputs, out, args.shard)?;
    // Every output is checked before the first picture: a folder made, then probed.
    for job in &jobs {
        let dir = output::parent_dir(&job.output);
        if !dir.exists() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating the output folder {}", dir.display()))?;
        }
        image::check_output_path(&job.output)?;
    }
    // Ctrl-C finishes the picture being painted (a fraction of a second; seconds at 4K), so no
    // half-written file is left beside the others, then stops; a second Ctrl-C stops at once.
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = Arc::clone(&interrupted);
        // A handler exists already if this process ran before (tests): keep that one.
        let _ = ctrlc::set_handler(move || {
            if flag.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        });
    }
    let mut failed = 0;
    for (done, job) in jobs.iter().enumerate() {
        if interrupted.load(Ordering::SeqCst) {
            eprintln!(
                "interrupted: {} of {} pictures done ({failed} failed); the rest were not started",
                done,
                jobs.len()
            );
            return Ok(ExitCode::from(130));
        }
        let result = (|| -> Result<()> {
            // Reading and saving errors name their file; the rest are about the input's picture.
            let photo = image::load_rgb(&job.input)?;
            let (w, h) = image::size(&photo);
            let (w, h) = apply::size_at(w, h, args.size);
            let styled = (|| -> Result<_> {
                apply::check_memory(net.width, w, h, tile, memory::available_bytes())?;
                let rgb = apply::at_size(&photo, args.size);
                drop(photo);
                let styled = apply::stylize(&net, &rgb, tile)?;
                Ok(if args.preserve_colors { color::preserve_colors(&rgb, &styled) } else { styled })
            })()
            .with_context(|| job.input.display().to_string())?;
            image::save_or_rescue(&styled, &job.output)?;
            Ok(())
        })();
        match result {
            Ok(()) if !args.quiet => eprintln!("wrote {}", job.output.display()),
            Ok(()) => {}
            Err(e) => {
                failed += 1;
                eprintln!("error: {e:#}");
            }
        }
    }
    match (failed, jobs.len()) {
        (0, _) => {}
        (_, 1) => return Ok(ExitCode::FAILURE), // its error is the message
        (failed, n) => bail!("{failed} of {n} pictures failed (see above); the others were written"),
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_tile(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(t) if t >= apply::MIN_TILE => Ok(t),
        _ => Err(format!("'{s}' is not a tile size; use a whole number of pixels, at least {}", apply::MIN_TILE)),
    }
}
