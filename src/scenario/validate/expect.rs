//! `[[requests]] expect = [200, 404]`: the statuses a request expects.

use super::*;

impl Validator<'_> {
    /// The `expect` list of request `base`; `None` inside when absent (status classes decide).
    pub(super) fn expect(
        &mut self,
        list: Option<&Spanned<Vec<RawValue>>>,
        base: &str,
    ) -> Option<Option<Vec<u16>>> {
        let Some(list) = list else {
            return Some(None);
        };
        let field = format!("{base}.expect");
        if list.get_ref().is_empty() {
            self.err(list.span().start, field, "an empty expect list would make every answer an error: list the statuses this request expects, e.g. expect = [200, 404], or remove expect (2xx and 3xx are fine then)");
            return None;
        }
        let mut out = Vec::new();
        for v in list.get_ref() {
            match v.get_ref() {
                Value::Integer(s) if (100..=599).contains(s) => out.push(*s as u16),
                other => {
                    self.err(
                        v.span().start,
                        field,
                        format!(
                            "invalid status {} in expect: expected an HTTP status from 100 to 599, e.g. expect = [200, 404]",
                            show(other)
                        ),
                    );
                    return None;
                }
            }
        }
        Some(Some(out))
    }
}
