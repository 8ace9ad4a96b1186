//! `stylize bench`: prints what `stylize::bench` measures, as text or JSON: a Gatys step, or
//! with `--apply` a feed-forward pass, or with `--train` a training step.

use anyhow::Result;
use nn::model_file::ModelFile;
use nn::transformer::Transformer;
use stylize::bench;
use stylize::objective::Layers;
use stylize::photos::Photos;
use vgg::Vgg19;

use super::args::BenchArgs;

pub fn bench(args: &BenchArgs) -> Result<()> {
    let report = if let Some(model) = &args.apply {
        let mut file = ModelFile::read(&super::apply::resolve(model)?)?;
        bench::time_apply(&Transformer::from_model_file(&mut file)?, args.size, args.iters)?
    } else {
        let vgg =
            Vgg19::load(&vgg::resolve_weights_path(args.compute.weights.as_deref())?, &Layers::default().names())?;
        if args.train {
            let (photos, _) = Photos::open(&args.photos, args.size)?;
            bench::time_train(&vgg, &photos, args.width, args.iters)?
        } else {
            bench::time_steps(&vgg, args.size, args.iters)?
        }
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let what = match (&args.apply, args.train) {
            (Some(_), _) => "forward pass",
            (None, true) => "training step",
            (None, false) => "iteration",
        };
        println!(
            "{}x{} on {} threads: median {:.3} s per {what} (min {:.3}, max {:.3}), {:.1} GFLOP/s",
            report.size, report.size, report.threads, report.median_s, report.min_s, report.max_s, report.gflops
        );
    }
    Ok(())
}
