//! Validation of the `[[notify]]` and `[[mute]]` tables: webhook URLs from the environment
//! only, UTC mute windows.

use toml::Spanned;

use super::raw::{RawMute, RawNotify};
use super::{Res, Validator};
use crate::redact::Redactor;
use crate::watch::plan::{MuteWindow, Notifier, NotifierKind};

impl Validator<'_> {
    pub(super) fn notifier(
        &self,
        n: &Spanned<RawNotify>,
        redactor: &mut Redactor,
    ) -> Res<Notifier> {
        let r = n.get_ref();
        if let Some(u) = &r.url {
            return Err(self.err(u.span().start, "webhook URLs are secrets and come only from the environment: remove url and write url_env = \"SLACK_WEBHOOK_URL\" (the variable holding the URL)".to_owned()));
        }
        let kind = match r.kind.get_ref().as_str() {
            "slack" => NotifierKind::Slack,
            "discord" => NotifierKind::Discord,
            "webhook" => NotifierKind::Webhook,
            other => {
                return Err(self.err(r.kind.span().start, format!("unknown notifier kind \"{other}\": expected \"slack\", \"discord\" or \"webhook\"")));
            }
        };
        let Some(var) = &r.url_env else {
            return Err(self.err(r.kind.span().start, "a notifier needs url_env, the environment variable holding its webhook URL, e.g. url_env = \"SLACK_WEBHOOK_URL\"".to_owned()));
        };
        let name = var.get_ref();
        let url = (self.env)(name).filter(|u| !u.trim().is_empty()).ok_or_else(|| {
            self.err(var.span().start, format!("environment variable \"{name}\" is not set: export the webhook URL in it (in CI: a repository secret)"))
        })?;
        let ok = url::Url::parse(url.trim())
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if !ok {
            return Err(self.err(var.span().start, format!("environment variable \"{name}\" does not hold an http(s) URL: set it to the webhook URL, e.g. https://hooks.slack.com/services/...")));
        }
        redactor.add(url.trim().to_owned());
        Ok(Notifier {
            kind,
            url_env: name.clone(),
            url: url.trim().to_owned(),
        })
    }

    pub(super) fn mute(&self, m: &Spanned<RawMute>) -> Res<MuteWindow> {
        let r = m.get_ref();
        let from_min = self.clock(&r.from, false)?;
        let to_min = self.clock(&r.to, true)?;
        if from_min == to_min {
            return Err(self.err(r.to.span().start, "a mute window from and to the same time is empty: for a whole day write from = \"00:00\", to = \"24:00\"".to_owned()));
        }
        let mut days = 0u8;
        match &r.days {
            None => days = 0x7f,
            Some(list) => {
                const NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
                for d in list.get_ref() {
                    let key = d.get_ref().trim().to_ascii_lowercase();
                    let i = NAMES.iter().position(|n| key.starts_with(n) && key.len() >= 3).ok_or_else(|| {
                        self.err(d.span().start, format!("invalid day \"{}\": expected mon, tue, wed, thu, fri, sat or sun", d.get_ref()))
                    })?;
                    days |= 1 << i;
                }
                if days == 0 {
                    return Err(self.err(list.span().start, "an empty days list mutes nothing: remove days (every day) or list some, e.g. days = [\"sat\", \"sun\"]".to_owned()));
                }
            }
        }
        Ok(MuteWindow {
            days,
            from_min,
            to_min,
        })
    }

    /// Minutes after midnight of an `HH:MM` UTC time; `24:00` only as an end.
    fn clock(&self, v: &Spanned<String>, end: bool) -> Res<u32> {
        let t = v.get_ref().trim();
        let parsed = t.split_once(':').and_then(|(h, m)| {
            let (h, m) = (h.parse::<u32>().ok()?, m.parse::<u32>().ok()?);
            (m < 60 && (h < 24 || (end && h == 24 && m == 0)) && t.len() == 5).then_some(h * 60 + m)
        });
        parsed.ok_or_else(|| {
            self.err(
                v.span().start,
                format!("invalid time \"{t}\": expected HH:MM in UTC, e.g. from = \"22:00\""),
            )
        })
    }
}
