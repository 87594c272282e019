//! Routes: many recorded URLs grouped under one name for reports (`GET /items/:id`).
//!
//! A path is matched against the user's `group` patterns first (`/api/:tenant/items/:id`,
//! `:name` matches one segment, a final `*` the rest); when none matches, segments that look
//! like identifiers are collapsed to `:id`: numbers, UUIDs, hex digests and long tokens mixing
//! letters and digits. The query string never makes a new route.

/// A validated `group` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param,
    Rest,
}

impl Pattern {
    /// Parses a pattern; the message says what is wrong.
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err("a group pattern starts with '/', e.g. \"/items/:id\"".into());
        };
        let parts: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('/').collect()
        };
        let mut segments = Vec::with_capacity(parts.len());
        for (i, p) in parts.iter().enumerate() {
            segments.push(match *p {
                "*" if i + 1 == parts.len() => Segment::Rest,
                "*" => return Err("'*' may only end a group pattern".into()),
                p if p.starts_with(':') && p.len() > 1 => Segment::Param,
                p if p.contains(['?', '*', ':']) => {
                    return Err(format!("segment \"{p}\" mixes text with ':' '*' or '?'"));
                }
                p => Segment::Literal(p.to_owned()),
            });
        }
        Ok(Pattern {
            text: text.to_owned(),
            segments,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn matches(&self, parts: &[&str]) -> bool {
        let mut i = 0;
        for s in &self.segments {
            match s {
                Segment::Rest => return true,
                Segment::Param if i < parts.len() && !parts[i].is_empty() => i += 1,
                Segment::Literal(l) if parts.get(i) == Some(&l.as_str()) => i += 1,
                _ => return false,
            }
        }
        i == parts.len()
    }
}

/// The route of `method` + `path` (a path, optionally with a query).
pub fn route(method: &str, path: &str, groups: &[Pattern]) -> String {
    let path = path.split(['?', '#']).next().unwrap_or("/");
    let rest = path.strip_prefix('/').unwrap_or(path);
    let parts: Vec<&str> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split('/').collect()
    };
    if let Some(p) = groups.iter().find(|p| p.matches(&parts)) {
        return format!("{method} {}", p.text);
    }
    let mut out = String::with_capacity(path.len() + method.len() + 1);
    out.push_str(method);
    out.push(' ');
    if parts.is_empty() {
        out.push('/');
    }
    for p in parts {
        out.push('/');
        out.push_str(if looks_like_id(p) { ":id" } else { p });
    }
    out
}

/// Whether a path segment is an identifier rather than a name.
fn looks_like_id(s: &str) -> bool {
    if s.is_empty() {
        return false;
    }
    let digits = s.bytes().filter(u8::is_ascii_digit).count();
    if digits == s.len() {
        return true;
    }
    let hexish = s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    if hexish && s.len() >= 8 && digits > 0 {
        return true;
    }
    // Long opaque tokens (base64url ids, ULIDs, nanoids): letters and digits mixed.
    let tokenish = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    tokenish && s.len() >= 16 && digits > 0 && digits < s.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_collapse_and_names_stay() {
        let r = |p| route("GET", p, &[]);
        assert_eq!(r("/items/42"), "GET /items/:id");
        assert_eq!(r("/items/42?x=1"), "GET /items/:id");
        assert_eq!(
            r("/items/0b6f3c1e-8a54-4c1e-9f1e-3a1c2b3d4e5f/log"),
            "GET /items/:id/log"
        );
        assert_eq!(r("/blob/9f86d081884c7d659a2feaa0c55ad015"), "GET /blob/:id");
        assert_eq!(r("/u/01HZX3K9Q8V7YB2C4D5E6F7G8H"), "GET /u/:id");
        assert_eq!(r("/api/v1/health"), "GET /api/v1/health");
        assert_eq!(r("/cron-status"), "GET /cron-status");
        assert_eq!(r("/"), "GET /");
        assert_eq!(
            r("/deadbeef"),
            "GET /deadbeef",
            "hex words without digits stay"
        );
    }

    #[test]
    fn group_patterns_win_over_collapsing() {
        let g = vec![
            Pattern::parse("/t/:tenant/items/:id").expect("pattern"),
            Pattern::parse("/static/*").expect("pattern"),
        ];
        assert_eq!(
            route("PUT", "/t/acme/items/7", &g),
            "PUT /t/:tenant/items/:id"
        );
        assert_eq!(route("GET", "/static/a/b.css", &g), "GET /static/*");
        assert_eq!(route("GET", "/t/acme/items", &g), "GET /t/acme/items");
        assert!(Pattern::parse("items").is_err());
        assert!(Pattern::parse("/a/*/b").is_err());
        assert!(Pattern::parse("/a:b").is_err());
    }
}
