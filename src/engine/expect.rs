//! A request's `expect` list applied to an answer: a listed 4xx/5xx is not an error, an
//! unlisted 2xx/3xx is. Without a list, the status classes decide (2xx and 3xx are fine).

use crate::outcome::Outcome;

/// `outcome` as judged against `expect` (`None`: the default, by status class).
pub fn judge(outcome: Outcome, expect: Option<&[u16]>) -> Outcome {
    let (Outcome::Status(s), Some(list)) = (outcome, expect) else {
        return outcome;
    };
    let listed = list.contains(&s);
    match (listed, (200..400).contains(&s)) {
        (true, false) => Outcome::Expected(s),
        (false, true) => Outcome::Unexpected(s),
        _ => outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_statuses_are_fine_and_others_are_errors() {
        let list: &[u16] = &[200, 404];
        assert_eq!(
            judge(Outcome::Status(404), Some(list)),
            Outcome::Expected(404)
        );
        assert_eq!(
            judge(Outcome::Status(200), Some(list)),
            Outcome::Status(200)
        );
        assert_eq!(
            judge(Outcome::Status(201), Some(list)),
            Outcome::Unexpected(201)
        );
        assert_eq!(
            judge(Outcome::Status(500), Some(list)),
            Outcome::Status(500)
        );
        assert!(judge(Outcome::Status(401), Some(list)).is_error());
        assert_eq!(judge(Outcome::Timeout, Some(list)), Outcome::Timeout);
    }

    #[test]
    fn without_a_list_the_class_decides() {
        assert_eq!(judge(Outcome::Status(404), None), Outcome::Status(404));
        assert!(judge(Outcome::Status(404), None).is_error());
        assert!(!judge(Outcome::Status(302), None).is_error());
    }
}
