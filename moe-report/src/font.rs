//! The font for plot text. plotters' `ab_glyph` feature renders text with no system library
//! (its `ttf` feature would need fontconfig), but only with fonts registered at run time; the
//! crate embeds DejaVu Sans (`assets/DejaVuSans.ttf`, license beside it) and registers it as
//! plotters' `sans-serif` family, which every plot uses. SVG files name the family
//! `sans-serif` and are drawn by the viewer's own font; the embedded one only sizes their
//! labels.

use std::sync::OnceLock;

use plotters::style::{register_font, FontStyle};

use crate::error::ReportError;

/// The family every plot's text uses.
pub(crate) const FAMILY: &str = "sans-serif";

/// DejaVu Sans 2.37 (Bitstream Vera license with the Arev additions; free to redistribute).
static DEJAVU_SANS: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Registers the embedded font once per process.
pub(crate) fn ensure_registered() -> Result<(), ReportError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok =
        *REGISTERED.get_or_init(|| register_font(FAMILY, FontStyle::Normal, DEJAVU_SANS).is_ok());
    if ok {
        Ok(())
    } else {
        Err(ReportError::Font)
    }
}
