//! `stylize bench`: prints what `stylize::bench` measures, as text or JSON: a Gatys step, or
//! with `--apply` a feed-forward pass, or with `--train` a training step.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use nn::model_file::ModelFile;
use nn::transformer::Transformer;
use stylize::objective::Layers;
use stylize::photos::Photos;
use stylize::{bench, memory};
use vgg::{Purpose, Vgg19};

use super::args::{parse_positive, parse_size, ComputeArgs};

/// Options of `bench`.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct BenchArgs {
    /// Side of the square random image in pixels
    #[arg(long, value_name = "PX", default_value_t = 512, value_parser = parse_size)]
    pub size: usize,

    /// Timed steps, after one untimed warm-up step; the median is reported
    #[arg(long, value_name = "K", default_value_t = 5, value_parser = parse_positive)]
    pub iters: usize,

    /// Print one JSON object instead of text
    #[arg(long)]
    pub json: bool,

    /// Time one forward pass of this feed-forward model (a file or a shipped model's name) instead
    #[arg(long, value_name = "MODEL", conflicts_with = "train")]
    pub apply: Option<String>,

    /// Time one training step instead (--batch crops of --size from --photos, a fresh network of --width)
    #[arg(long)]
    pub train: bool,

    /// With --train: crops per step (`stylize train` takes 4 by default)
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = parse_positive, requires = "train")]
    pub batch: usize,

    /// With --train: the network's width
    #[arg(long, value_name = "C", default_value_t = stylize::train::TrainSettings::default().width, value_parser = parse_positive)]
    pub width: usize,

    /// With --train: the photos to crop
    #[arg(long, value_name = "DIR", default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/photos"))]
    pub photos: PathBuf,

    #[command(flatten)]
    pub compute: ComputeArgs,
}

pub fn bench(args: &BenchArgs) -> Result<()> {
    let report = if let Some(model) = &args.apply {
        let mut file = ModelFile::read(&super::apply::resolve(model)?)?;
        let net = Transformer::from_model_file(&mut file)?;
        stylize::apply::check_memory(net.width, args.size, args.size, usize::MAX, memory::available_bytes())?;
        bench::time_apply(&net, args.size, args.iters)?
    } else {
        // Built as `stylize train` or `stylize run` builds it.
        if !args.train {
            memory::check_evaluation(args.size, args.size, &Layers::default(), 1, memory::available_bytes())?;
        }
        let purpose = if args.train { Purpose::Train } else { Purpose::Optimise };
        let path = vgg::resolve_weights_path(args.compute.weights.as_deref())?;
        let vgg = Vgg19::load_for(&path, &Layers::default().names(), purpose)?;
        if args.train {
            let (photos, _) = Photos::open(&args.photos, args.size)?;
            bench::time_train(&vgg, &photos, args.width, args.batch, args.iters)?
        } else {
            bench::time_steps(&vgg, args.size, args.iters)?
        }
    };
    if args.json {
        super::print(serde_json::to_string(&report)?)?;
    } else {
        let what = match (&args.apply, args.train) {
            (Some(_), _) => "forward pass".to_string(),
            (None, true) if args.batch > 1 => format!("training step of {} crops", args.batch),
            (None, true) => "training step".to_string(),
            (None, false) => "iteration".to_string(),
        };
        super::print(format_args!(
            "{}x{} on {} threads: median {:.3} s per {what} (min {:.3}, max {:.3}), {:.1} GFLOP/s",
            report.size, report.size, report.threads, report.median_s, report.min_s, report.max_s, report.gflops
        ))?;
    }
    Ok(())
}
