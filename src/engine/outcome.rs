//! Per-request outcomes. A failed request is data, counted per class, never an `Err`.

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A response arrived with this status and its body was read completely.
    Status(u16),
    /// The TCP (or TLS) connection could not be established.
    Connect,
    /// The request's timeout passed first.
    Timeout,
    /// The connection was reset or closed before the response was complete.
    Reset,
    /// The response head arrived but the body could not be read, or the response was malformed.
    Body,
    /// A 4xx or 5xx status the request lists in `expect`: not an error.
    Expected(u16),
    /// A 2xx or 3xx status the request's `expect` list leaves out: an error.
    Unexpected(u16),
}

/// Outcome classes, in report order. The index is stable within a build (used for arrays).
pub const CLASSES: [&str; 11] = [
    "2xx",
    "3xx",
    "4xx",
    "429",
    "5xx",
    "connect",
    "timeout",
    "reset",
    "body",
    "expected",
    "unexpected",
];

/// Index of the `expected` class, the one class past 3xx that is not an error.
const EXPECTED: usize = 9;

impl Outcome {
    /// Index into [`CLASSES`].
    pub fn class(self) -> usize {
        match self {
            Outcome::Status(429) => 3,
            Outcome::Status(s) if (200..300).contains(&s) => 0,
            Outcome::Status(s) if (300..400).contains(&s) => 1,
            Outcome::Status(s) if (400..500).contains(&s) => 2,
            // 1xx never reaches us as a final status; anything else odd counts with 5xx.
            Outcome::Status(_) => 4,
            Outcome::Connect => 5,
            Outcome::Timeout => 6,
            Outcome::Reset => 7,
            Outcome::Body => 8,
            Outcome::Expected(_) => EXPECTED,
            Outcome::Unexpected(_) => 10,
        }
    }

    /// Whether the outcome counts as an error (anything but 2xx and 3xx).
    pub fn is_error(self) -> bool {
        class_is_error(self.class())
    }
}

/// Whether a class index counts as an error.
pub fn class_is_error(class: usize) -> bool {
    class >= 2 && class != EXPECTED
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        let name = |o: Outcome| CLASSES[o.class()];
        assert_eq!(name(Outcome::Status(204)), "2xx");
        assert_eq!(name(Outcome::Status(301)), "3xx");
        assert_eq!(name(Outcome::Status(404)), "4xx");
        assert_eq!(name(Outcome::Status(429)), "429");
        assert_eq!(name(Outcome::Status(503)), "5xx");
        assert_eq!(name(Outcome::Reset), "reset");
        assert!(!Outcome::Status(302).is_error());
        assert!(Outcome::Status(429).is_error());
        assert!(Outcome::Timeout.is_error());
        assert_eq!(name(Outcome::Expected(404)), "expected");
        assert!(!Outcome::Expected(404).is_error());
        assert_eq!(name(Outcome::Unexpected(200)), "unexpected");
        assert!(Outcome::Unexpected(200).is_error());
    }
}
