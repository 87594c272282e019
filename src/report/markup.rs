//! Escaping for the XML-family formats kvchaos writes (the HTML report and comparison, their
//! inline SVG, JUnit XML). Owns how text becomes markup-safe; not the markup itself.

/// Escapes text for XML attributes and content; control characters other than tab and line
/// feed (not allowed in XML 1.0) become U+FFFD.
pub(crate) fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' => out.push_str("&#9;"),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}
