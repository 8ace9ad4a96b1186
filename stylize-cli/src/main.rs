//! The `stylize` binary: parse the command line, run it, print errors with their causes.

use std::process::ExitCode;

use stylize_cli::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse_checked();
    match stylize_cli::execute(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
