//! `stylize bench`: prints what `stylize::bench` measures, as text or JSON.

use anyhow::Result;
use stylize::bench;
use stylize::objective::Layers;
use vgg::Vgg19;

use super::args::BenchArgs;

pub fn bench(args: &BenchArgs) -> Result<()> {
    let weights_path = vgg::resolve_weights_path(args.compute.weights.as_deref())?;
    let vgg = Vgg19::load(&weights_path, &Layers::default().names())?;
    let report = bench::time_steps(&vgg, args.size, args.iters)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{}x{} on {} threads: median {:.3} s per iteration (min {:.3}, max {:.3}), {:.1} GFLOP/s",
            report.size, report.size, report.threads, report.median_s, report.min_s, report.max_s, report.gflops
        );
    }
    Ok(())
}
