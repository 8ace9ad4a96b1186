//! stylize
