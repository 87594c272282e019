//! Where in a scenario file a byte offset is: 1-based line and column (in characters), and
//! the field path a user would recognise (`phases[2].rate`, `requests[1].headers.x-api-key`).
//!
//! The path is recovered from the source text around the offset (the enclosing `[table]` or
//! `[[array]]` header and the key on that line), because serde's errors carry only a span.
//! It is a best effort for messages, never used for meaning.

use std::collections::HashMap;

/// 1-based line and column (counted in characters) of byte `offset` in `src`.
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char_boundary(src, offset);
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

fn floor_char_boundary(src: &str, offset: usize) -> usize {
    let mut o = offset.min(src.len());
    while !src.is_char_boundary(o) {
        o -= 1;
    }
    o
}

/// The field path of the value or key at byte `offset`, e.g. `phases[2].rate`.
pub fn field_path_at(src: &str, offset: usize) -> String {
    let offset = floor_char_boundary(src, offset);
    let mut header = String::new();
    let mut counts: HashMap<String, usize> = HashMap::new();
    // The last `key =` seen in the current table, for offsets on continuation lines of a
    // multi-line array.
    let mut last_key: Option<String> = None;
    let mut line_start = 0;
    for line in src.split_inclusive('\n') {
        let line_end = line_start + line.len();
        let at_offset = offset < line_end || line_end == src.len();
        if let Some((name, is_array)) = parse_header(line) {
            header = if is_array {
                let n = counts.entry(name.clone()).or_insert(0);
                *n += 1;
                format!("{name}[{n}]")
            } else {
                name
            };
            last_key = None;
            if at_offset {
                return header;
            }
        } else {
            let keys = keys_at(line, offset.saturating_sub(line_start));
            if at_offset {
                let keys = if keys.is_empty() {
                    last_key.into_iter().collect()
                } else {
                    keys
                };
                return join_path(&header, &keys);
            }
            if let Some(first) = keys.into_iter().next() {
                last_key = Some(first);
            }
        }
        line_start = line_end;
    }
    header
}

fn join_path(header: &str, keys: &[String]) -> String {
    let mut out = header.to_owned();
    for k in keys {
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(k);
    }
    out
}

/// `Some((name, is_array))` when `line` is a `[name]` or `[[name]]` header.
fn parse_header(line: &str) -> Option<(String, bool)> {
    let t = strip_comment(line).trim();
    let (inner, is_array) = if let Some(rest) = t.strip_prefix("[[") {
        (rest.strip_suffix("]]")?, true)
    } else {
        (t.strip_prefix('[')?.strip_suffix(']')?, false)
    };
    let inner = inner.trim();
    let ok = !inner.is_empty()
        && inner
            .chars()
            .all(|c| c.is_alphanumeric() || "_-.\"' ".contains(c));
    ok.then(|| (inner.replace(['"', '\''], ""), is_array))
}

fn strip_comment(line: &str) -> &str {
    // Good enough for header lines, which hold no strings with '#'.
    line.split('#').next().unwrap_or(line)
}

#[derive(Debug, PartialEq)]
enum Tok {
    Word(String),
    Eq,
    Open,
    Close,
    Other,
}

/// Splits one line into tokens with their start byte offsets; strings become words.
fn tokens(line: &str) -> Vec<(usize, Tok)> {
    let mut out = Vec::new();
    let mut it = line.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        match c {
            '#' => break,
            '=' => out.push((i, Tok::Eq)),
            '{' => out.push((i, Tok::Open)),
            '}' => out.push((i, Tok::Close)),
            '"' | '\'' => {
                let mut s = String::new();
                let mut escaped = false;
                for (_, d) in it.by_ref() {
                    if c == '"' && escaped {
                        escaped = false;
                        s.push(d);
                    } else if c == '"' && d == '\\' {
                        escaped = true;
                    } else if d == c {
                        break;
                    } else {
                        s.push(d);
                    }
                }
                out.push((i, Tok::Word(s)));
            }
            c if c.is_alphanumeric() || "_-.".contains(c) => {
                let mut s = String::from(c);
                while let Some(&(_, d)) = it.peek() {
                    if d.is_alphanumeric() || "_-.".contains(d) {
                        s.push(d);
                        it.next();
                    } else {
                        break;
                    }
                }
                out.push((i, Tok::Word(s)));
            }
            c if c.is_whitespace() => {}
            _ => out.push((i, Tok::Other)),
        }
    }
    out
}

/// Keys (outermost first) enclosing byte `at` of `line`, following inline tables.
fn keys_at(line: &str, at: usize) -> Vec<String> {
    let toks = tokens(line);
    let mut keys: Vec<String> = Vec::new();
    let mut depth = 0usize;
    for (idx, (start, tok)) in toks.iter().enumerate() {
        if *start > at {
            break;
        }
        match tok {
            Tok::Word(w) if matches!(toks.get(idx + 1), Some((_, Tok::Eq))) => {
                keys.truncate(depth);
                keys.push(w.clone());
            }
            Tok::Open => depth += 1,
            Tok::Close => {
                depth = depth.saturating_sub(1);
                keys.truncate(depth + 1);
            }
            _ => {}
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based_and_count_characters() {
        let src = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 6), (2, 1));
        let x = src.find("\"x").unwrap_or(0);
        assert_eq!(line_col(src, x), (2, 6));
        assert_eq!(line_col(src, 10_000), (3, 1));
    }

    #[test]
    fn path_follows_headers_array_indices_and_keys() {
        let src = "name = \"x\"\n[target]\nurl = 1\n[[phases]]\nrate = 1\n[[phases]]\nrate = { from = 1, too = 2 }\n[[requests]]\nheaders = { \"x-api-key\" = 3 }\n";
        let at = |needle: &str| field_path_at(src, src.find(needle).unwrap_or(0));
        assert_eq!(at("name"), "name");
        assert_eq!(at("url"), "target.url");
        assert_eq!(at("1\n[[phases]]\nrate = {"), "phases[1].rate");
        assert_eq!(at("too"), "phases[2].rate.too");
        assert_eq!(at("from"), "phases[2].rate.from");
        assert_eq!(at("3 }"), "requests[1].headers.x-api-key");
        assert_eq!(at("[[requests]]"), "requests[1]");
    }

    #[test]
    fn continuation_lines_use_the_last_key() {
        let src = "[thresholds]\nall = [\n  \"p99 < 1s\",\n  \"bad\",\n]\n";
        assert_eq!(
            field_path_at(src, src.find("\"bad").unwrap_or(0)),
            "thresholds.all"
        );
    }
}
