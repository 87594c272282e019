//! Per-request outcomes and their classes. A failed request is data, counted per class, never
//! an `Err`. A leaf: the engine produces outcomes, the recorder counts them per [`Class`], the
//! live view and the reports name the classes; none of them keeps its own table of names.

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

/// An outcome class; the order of [`Class::ALL`] is the order of per-class arrays. Its [`Class::name`] is what reports and JSON show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// A 2xx status.
    Success,
    /// A 3xx status.
    Redirect,
    /// A 4xx status other than 429.
    ClientError,
    /// 429 Too Many Requests, apart from the other 4xx because rate limiting is its own story.
    TooManyRequests,
    /// A 5xx status, or any other final status that is not 2xx–4xx.
    ServerError,
    /// The connection could not be established.
    Connect,
    /// The request's timeout passed first.
    Timeout,
    /// The connection was reset or closed early.
    Reset,
    /// The body could not be read or the response was malformed.
    Body,
    /// A 4xx/5xx status the request expects (`expect = [...]`): not an error.
    Expected,
    /// A 2xx/3xx status the request's `expect` list leaves out: an error.
    Unexpected,
}

impl Class {
    /// How many classes there are (the length of per-class arrays).
    pub const COUNT: usize = 11;

    /// Every class, in report order; `ALL[c.index()] == c`.
    pub const ALL: [Class; Class::COUNT] = [
        Class::Success,
        Class::Redirect,
        Class::ClientError,
        Class::TooManyRequests,
        Class::ServerError,
        Class::Connect,
        Class::Timeout,
        Class::Reset,
        Class::Body,
        Class::Expected,
        Class::Unexpected,
    ];

    /// The class's name as reports and JSON show it: `2xx`, `429`, `timeout`, ...
    pub fn name(self) -> &'static str {
        match self {
            Class::Success => "2xx",
            Class::Redirect => "3xx",
            Class::ClientError => "4xx",
            Class::TooManyRequests => "429",
            Class::ServerError => "5xx",
            Class::Connect => "connect",
            Class::Timeout => "timeout",
            Class::Reset => "reset",
            Class::Body => "body",
            Class::Expected => "expected",
            Class::Unexpected => "unexpected",
        }
    }

    /// The class with this [`Class::name`], if this build knows it.
    pub fn from_name(name: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Position in [`Class::ALL`]: the index into per-class arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether the class counts as an error (anything but 2xx, 3xx and expected statuses).
    pub fn is_error(self) -> bool {
        !matches!(self, Class::Success | Class::Redirect | Class::Expected)
    }
}

impl Outcome {
    /// The outcome's class.
    pub fn class(self) -> Class {
        match self {
            Outcome::Status(429) => Class::TooManyRequests,
            Outcome::Status(s) if (200..300).contains(&s) => Class::Success,
            Outcome::Status(s) if (300..400).contains(&s) => Class::Redirect,
            Outcome::Status(s) if (400..500).contains(&s) => Class::ClientError,
            // 1xx never reaches us as a final status; anything else odd counts with 5xx.
            Outcome::Status(_) => Class::ServerError,
            Outcome::Connect => Class::Connect,
            Outcome::Timeout => Class::Timeout,
            Outcome::Reset => Class::Reset,
            Outcome::Body => Class::Body,
            Outcome::Expected(_) => Class::Expected,
            Outcome::Unexpected(_) => Class::Unexpected,
        }
    }

    /// Whether the outcome counts as an error (anything but 2xx and 3xx).
    pub fn is_error(self) -> bool {
        self.class().is_error()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        let name = |o: Outcome| o.class().name();
        assert_eq!(name(Outcome::Status(204)), "2xx");
        assert_eq!(name(Outcome::Status(301)), "3xx");
        assert_eq!(name(Outcome::Status(404)), "4xx");
        assert_eq!(name(Outcome::Status(429)), "429");
        assert_eq!(name(Outcome::Status(503)), "5xx");
        assert_eq!(name(Outcome::Status(600)), "5xx");
        assert_eq!(name(Outcome::Reset), "reset");
        assert!(!Outcome::Status(302).is_error());
        assert!(Outcome::Status(429).is_error());
        assert!(Outcome::Timeout.is_error());
        assert_eq!(name(Outcome::Expected(404)), "expected");
        assert!(!Outcome::Expected(404).is_error());
        assert_eq!(name(Outcome::Unexpected(200)), "unexpected");
        assert!(Outcome::Unexpected(200).is_error());
    }

    #[test]
    fn names_indices_and_order_are_stable() {
        // The serialised names are part of the JSON report: they must never change.
        let names: Vec<&str> = Class::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(
            names,
            [
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
                "unexpected"
            ]
        );
        for (i, c) in Class::ALL.into_iter().enumerate() {
            assert_eq!(c.index(), i);
            assert_eq!(Class::from_name(c.name()), Some(c));
        }
        assert_eq!(Class::from_name("418"), None);
        let errors: Vec<&str> = Class::ALL
            .iter()
            .filter(|c| c.is_error())
            .map(|c| c.name())
            .collect();
        assert_eq!(errors.len(), 8);
        assert!(!errors.contains(&"2xx") && !errors.contains(&"3xx"));
    }
}
