//! Error answers: the start of the body of 4xx/5xx responses, kept per request so the report
//! can quote what the Worker said (`KV PUT failed: 429 KV put() limit exceeded for the day.`)
//! rather than only `HTTP 500`. Only error answers are read into memory, and only their first
//! [`BODY_START`] bytes; the rest of the body is counted and dropped as before.
//!
//! Owns the bounded collector the engine threads fill and the recorder merges. Does not own
//! redaction (done once when the summary is built) or rendering (`report::answers`).

use bytes::{Bytes, BytesMut};

/// Body bytes kept per error answer.
pub const BODY_START: usize = 512;
/// Distinct answers (status and body start) kept per request; later new ones are not kept.
pub const PER_REQUEST: usize = 5;

/// The start of one response body while it is read.
#[derive(Default)]
pub struct BodyStart {
    buf: BytesMut,
    cut: bool,
}

impl BodyStart {
    /// Adds a data frame, keeping at most [`BODY_START`] bytes in all.
    pub fn push(&mut self, data: &[u8]) {
        let room = BODY_START - self.buf.len();
        if data.len() > room {
            self.cut = true;
        }
        self.buf.extend_from_slice(&data[..data.len().min(room)]);
    }

    /// The bytes kept and whether the body was longer.
    pub fn finish(self) -> (Bytes, bool) {
        (self.buf.freeze(), self.cut)
    }
}

/// One distinct error answer of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Request index (scenario order).
    pub request: usize,
    /// HTTP status.
    pub status: u16,
    /// Start of the body.
    pub body: Bytes,
    /// Whether the body was longer than `body`.
    pub truncated: bool,
    /// Answers with this status and body start.
    pub count: u64,
}

/// The first distinct error answers per request, bounded by [`PER_REQUEST`].
#[derive(Debug, Default)]
pub struct Answers {
    rows: Vec<Answer>,
}

impl Answers {
    /// Counts one error answer of `request`.
    pub fn add(&mut self, request: usize, status: u16, body: (Bytes, bool)) {
        self.merge(Answer {
            request,
            status,
            body: body.0,
            truncated: body.1,
            count: 1,
        });
    }

    fn merge(&mut self, a: Answer) {
        let same =
            |r: &&mut Answer| r.request == a.request && r.status == a.status && r.body == a.body;
        if let Some(r) = self.rows.iter_mut().find(same) {
            r.count += a.count;
        } else if self.rows.iter().filter(|r| r.request == a.request).count() < PER_REQUEST {
            self.rows.push(a);
        }
    }

    /// Moves every answer into `other` (first seen stay first).
    pub fn drain_into(&mut self, other: &mut Answers) {
        for a in self.rows.drain(..) {
            other.merge(a);
        }
    }

    /// The answers kept, in the order first seen.
    pub fn rows(&self) -> &[Answer] {
        &self.rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_start_is_bounded_and_says_when_it_cut() {
        let mut b = BodyStart::default();
        b.push(&[b'a'; 300]);
        b.push(&[b'b'; 300]);
        let (bytes, cut) = b.finish();
        assert_eq!(bytes.len(), BODY_START);
        assert!(cut);
        let mut b = BodyStart::default();
        b.push(b"KV PUT failed");
        assert_eq!(b.finish(), (Bytes::from_static(b"KV PUT failed"), false));
    }

    #[test]
    fn distinct_answers_are_counted_and_bounded_per_request() {
        let mut a = Answers::default();
        let body = |s: &'static str| (Bytes::from_static(s.as_bytes()), false);
        for _ in 0..3 {
            a.add(0, 500, body("boom"));
        }
        a.add(0, 503, body("boom"));
        for i in 0..10 {
            a.add(1, 500, (Bytes::from(format!("id {i}")), false));
        }
        let mut all = Answers::default();
        a.drain_into(&mut all);
        let rows = all.rows();
        assert_eq!((rows[0].status, rows[0].count), (500, 3));
        assert_eq!(rows[1].status, 503);
        assert_eq!(rows.iter().filter(|r| r.request == 1).count(), PER_REQUEST);
        assert_eq!(
            rows[2].body,
            Bytes::from_static(b"id 0"),
            "first seen stay first"
        );
    }
}
