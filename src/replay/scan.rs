//! Splitting a capture into JSON values without reading it whole.
//!
//! A wrangler tail capture is pretty-printed objects back to back, an NDJSON corpus is one
//! object a line, and a HAR file is one object whose `log.entries` array holds the events. The
//! [`Splitter`] reads bytes through a fixed buffer, tracks strings, escapes and nesting, and
//! hands out one value at a time (a top-level value, or an element of `log.entries`), each
//! with the line and byte offset where it starts. Memory is bounded by the largest single
//! value, which is capped ([`MAX_VALUE_BYTES`] unless the caller says otherwise). It owns no
//! meaning of the values: [`super::tail`], [`super::har`] and [`super::corpus`] give them one.

use std::io::BufRead;

/// Largest single event accepted (a HAR entry with a large body), in bytes.
pub const MAX_VALUE_BYTES: usize = 64 << 20;

/// Where a value starts in its file: 1-based line, 0-based byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    /// 1-based line.
    pub line: u64,
    /// Byte offset from the start of the file.
    pub offset: u64,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}, byte {}", self.line, self.offset)
    }
}

/// Which values are handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every top-level value (pretty-printed objects back to back, or NDJSON).
    TopLevel,
    /// The elements of the top-level object's `log.entries` array (HAR).
    HarEntries,
}

/// A capture that is not well-formed JSON where the splitter looked.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// Reading failed.
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    /// Bytes that cannot start or continue a value here.
    #[error("{at}: {message}")]
    Syntax {
        /// Where.
        at: Position,
        /// What was wrong.
        message: String,
    },
}

/// One container being read: an object (and whether a key is expected next) or an array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    Object { want_key: bool },
    Array { entries: bool },
}

/// Hands out values one at a time from a reader.
pub struct Splitter<R> {
    input: R,
    mode: Mode,
    max: usize,
    pos: Position,
    /// Containers open around the current point (outside captured values in HAR mode).
    stack: Vec<Frame>,
    /// The last object key read at each depth (HAR mode, to find `log.entries`).
    keys: Vec<String>,
    done: bool,
}

impl<R: BufRead> Splitter<R> {
    /// A splitter over `input` with the default value cap.
    pub fn new(input: R, mode: Mode) -> Splitter<R> {
        Splitter::with_limit(input, mode, MAX_VALUE_BYTES)
    }

    /// A splitter whose values may be at most `max` bytes.
    pub fn with_limit(input: R, mode: Mode, max: usize) -> Splitter<R> {
        Splitter {
            input,
            mode,
            max,
            pos: Position { line: 1, offset: 0 },
            stack: Vec::new(),
            keys: Vec::new(),
            done: false,
        }
    }

    /// The next value's bytes and where it starts; `None` at the end.
    pub fn next_value(&mut self) -> Result<Option<(Vec<u8>, Position)>, ScanError> {
        if self.done {
            return Ok(None);
        }
        let r = match self.mode {
            Mode::TopLevel => self.next_top(),
            Mode::HarEntries => self.next_entry(),
        };
        if !matches!(r, Ok(Some(_))) {
            self.done = true;
        }
        r
    }

    fn syntax(&self, message: impl Into<String>) -> ScanError {
        ScanError::Syntax {
            at: self.pos,
            message: message.into(),
        }
    }

    fn peek(&mut self) -> Result<Option<u8>, ScanError> {
        Ok(self.input.fill_buf()?.first().copied())
    }

    fn bump(&mut self) -> Result<Option<u8>, ScanError> {
        let Some(b) = self.peek()? else {
            return Ok(None);
        };
        self.input.consume(1);
        self.pos.offset += 1;
        if b == b'\n' {
            self.pos.line += 1;
        }
        Ok(Some(b))
    }

    fn skip_ws(&mut self) -> Result<Option<u8>, ScanError> {
        loop {
            match self.peek()? {
                Some(b' ' | b'\t' | b'\r' | b'\n') => {
                    self.bump()?;
                }
                // A UTF-8 byte order mark at the very start.
                Some(0xEF) if self.pos.offset == 0 => {
                    for _ in 0..3 {
                        self.bump()?;
                    }
                }
                other => return Ok(other),
            }
        }
    }

    fn next_top(&mut self) -> Result<Option<(Vec<u8>, Position)>, ScanError> {
        match self.skip_ws()? {
            None => Ok(None),
            Some(b'{' | b'[') => {
                let at = self.pos;
                let mut buf = Vec::new();
                self.capture(&mut buf)?;
                Ok(Some((buf, at)))
            }
            Some(b) => Err(self.syntax(format!(
                "expected '{{' to start an event, found {}",
                show(b)
            ))),
        }
    }

    /// Copies one whole object or array (the next byte opens it) into `buf`.
    fn capture(&mut self, buf: &mut Vec<u8>) -> Result<(), ScanError> {
        let start = self.pos;
        let mut depth = 0usize;
        let mut in_str = false;
        let mut escaped = false;
        loop {
            let Some(b) = self.bump()? else {
                return Err(ScanError::Syntax {
                    at: start,
                    message: "the event starting here never ends (truncated capture?)".into(),
                });
            };
            if buf.len() >= self.max {
                return Err(ScanError::Syntax {
                    at: start,
                    message: format!("event is larger than {} bytes", self.max),
                });
            }
            buf.push(b);
            if in_str {
                match (escaped, b) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => in_str = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => in_str = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                _ => {}
            }
        }
    }

    /// Reads a string token (the next byte is its opening quote), unescaping nothing: keys of
    /// interest (`log`, `entries`) contain no escapes.
    fn string(&mut self, keep: bool) -> Result<String, ScanError> {
        let start = self.pos;
        self.bump()?;
        let mut out = Vec::new();
        let mut escaped = false;
        loop {
            let Some(b) = self.bump()? else {
                return Err(ScanError::Syntax {
                    at: start,
                    message: "unterminated string".into(),
                });
            };
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => break,
                _ => {}
            }
            if keep && out.len() < 64 {
                out.push(b);
            }
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Skips a scalar (number, true, false, null); at least one byte, so the walk always moves.
    fn scalar(&mut self) -> Result<(), ScanError> {
        match self.peek()? {
            Some(b) if b.is_ascii_alphanumeric() || b == b'-' => {}
            Some(b) => return Err(self.syntax(format!("unexpected {}", show(b)))),
            None => return Ok(()),
        }
        while let Some(b) = self.peek()? {
            if matches!(b, b',' | b'}' | b']' | b':') || b.is_ascii_whitespace() {
                break;
            }
            if !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.')) {
                return Err(self.syntax(format!("unexpected {}", show(b))));
            }
            self.bump()?;
        }
        Ok(())
    }

    /// HAR mode: walks the outer structure and captures each element of `log.entries`.
    fn next_entry(&mut self) -> Result<Option<(Vec<u8>, Position)>, ScanError> {
        loop {
            let Some(b) = self.skip_ws()? else {
                if self.stack.is_empty() {
                    return Ok(None);
                }
                return Err(self.syntax("the HAR file ends inside its top-level object"));
            };
            let top = self.stack.last().copied();
            match (top, b) {
                (Some(Frame::Array { entries: true }), b'{') => {
                    let at = self.pos;
                    let mut buf = Vec::new();
                    self.capture(&mut buf)?;
                    return Ok(Some((buf, at)));
                }
                (Some(Frame::Object { want_key: true, .. }), b'"') => {
                    let k = self.string(true)?;
                    self.set_key(k);
                    if self.skip_ws()? != Some(b':') {
                        return Err(self.syntax("expected ':' after an object key"));
                    }
                    self.bump()?;
                    self.set_want_key(false);
                }
                (_, b',') => {
                    self.bump()?;
                    self.set_want_key(true);
                }
                (_, b'}' | b']') => {
                    self.bump()?;
                    self.stack.pop();
                    self.keys.pop();
                    if self.stack.is_empty() {
                        return Ok(None);
                    }
                }
                (Some(Frame::Object { want_key: true, .. }), _) => {
                    return Err(self.syntax(format!("expected an object key, found {}", show(b))));
                }
                (_, b'{' | b'[') => self.open(b)?,
                (None, _) => {
                    return Err(self.syntax(format!(
                        "expected '{{' to start the HAR file, found {}",
                        show(b)
                    )));
                }
                (_, b'"') => {
                    self.string(false)?;
                }
                _ => self.scalar()?,
            }
        }
    }

    fn open(&mut self, b: u8) -> Result<(), ScanError> {
        let path_is = |keys: &[String], want: &[&str]| {
            keys.len() == want.len() && keys.iter().zip(want).all(|(k, w)| k == w)
        };
        let entries = b == b'[' && path_is(&self.keys, &["log", "entries"]);
        if self.stack.len() > 64 {
            return Err(self.syntax("nesting deeper than 64 levels"));
        }
        self.bump()?;
        self.stack.push(if b == b'{' {
            Frame::Object { want_key: true }
        } else {
            Frame::Array { entries }
        });
        self.keys.push(String::new());
        Ok(())
    }

    fn set_key(&mut self, k: String) {
        // keys[i] is the key under which frame i+1 was opened: the key of frame i's member.
        if let Some(last) = self.keys.last_mut() {
            *last = k;
        }
    }

    fn set_want_key(&mut self, want: bool) {
        if let Some(Frame::Object { want_key, .. }) = self.stack.last_mut() {
            *want_key = want;
        }
    }
}

fn show(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}'", b as char)
    } else {
        format!("byte 0x{b:02x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &str, mode: Mode) -> Result<Vec<(String, Position)>, ScanError> {
        let mut s = Splitter::new(text.as_bytes(), mode);
        let mut out = Vec::new();
        while let Some((v, at)) = s.next_value()? {
            out.push((String::from_utf8(v).expect("utf8"), at));
        }
        Ok(out)
    }

    #[test]
    fn pretty_printed_objects_back_to_back_split_with_positions() {
        let text = "{\n  \"a\": \"}{\\\"\",\n  \"b\": [1]\n}\n{\n  \"c\": {}\n}{\"d\":1}\n";
        let v = all(text, Mode::TopLevel).expect("split");
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].0, "{\n  \"a\": \"}{\\\"\",\n  \"b\": [1]\n}");
        assert_eq!(
            v[1].1,
            Position {
                line: 5,
                offset: 30
            }
        );
        assert_eq!(v[2].0, "{\"d\":1}");
        assert_eq!(v[2].1.line, 7);
    }

    #[test]
    fn har_entries_are_handed_out_one_by_one() {
        let text = r#"{"log": {"version": "1.2", "creator": {"name": "x", "n": [1, {"entries": []}]},
 "entries": [{"a": 1}, {"b": {"c": "]"}}], "pages": [{"p": 1}]}}"#;
        let v = all(text, Mode::HarEntries).expect("split");
        let vals: Vec<&str> = v.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(vals, vec![r#"{"a": 1}"#, r#"{"b": {"c": "]"}}"#]);
        assert_eq!(v[0].1.line, 2);
    }

    #[test]
    fn truncated_and_garbage_input_is_an_error_with_its_position() {
        let e = all("{\"a\": 1}\n{\"b\": ", Mode::TopLevel).expect_err("truncated");
        assert_eq!(
            e.to_string(),
            "line 2, byte 9: the event starting here never ends (truncated capture?)"
        );
        let e = all("{}\n\nhello", Mode::TopLevel).expect_err("garbage");
        assert!(
            e.to_string().starts_with("line 3, byte 4: expected '{'"),
            "{e}"
        );
        let e = all("[1,2]", Mode::HarEntries);
        assert!(e.is_ok(), "an array top level is walked, not an error");
        let e = all("{\"log\": {\"x\": [:]}}", Mode::HarEntries).expect_err("colon");
        assert!(e.to_string().contains("unexpected ':'"), "{e}");
        let e = all("{\"log\": {\"entries\": [{\"a\":1}", Mode::HarEntries).expect_err("cut");
        assert!(e.to_string().contains("ends inside"), "{e}");
    }

    #[test]
    fn values_over_the_cap_are_refused_without_reading_on() {
        let big = format!("{{\"a\": \"{}\"}}", "x".repeat(1000));
        let mut s = Splitter::with_limit(big.as_bytes(), Mode::TopLevel, 100);
        let e = s.next_value().expect_err("too big");
        assert!(e.to_string().contains("larger than 100 bytes"), "{e}");
    }
}
