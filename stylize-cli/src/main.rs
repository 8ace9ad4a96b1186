//! The `stylize` binary: parse the command line, run it, print errors with their causes.
//! Everything it does is in the `stylize` library; `cli/` only presents it.

mod cli;

use std::process::ExitCode;

/// Large tensors on 2 MiB pages: a fifth off a Gatys step (see `tensor::huge_pages`).
#[global_allocator]
static ALLOCATOR: tensor::HugePages = tensor::HugePages;

fn main() -> ExitCode {
    let census = std::env::var_os("STYLIZE_MEMORY_CENSUS").is_some_and(|v| v == "1");
    if census {
        tensor::huge_pages::census::start();
    }
    let args = cli::args::Cli::parse_checked();
    let code = match cli::execute(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    };
    if census {
        eprintln!("memory census: {}", tensor::huge_pages::census::report());
    }
    code
}
