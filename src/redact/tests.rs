use std::borrow::Cow;

use base64::Engine as _;

use super::*;

fn with(secrets: &[&str]) -> Redactor {
    let mut r = Redactor::default();
    for s in secrets {
        r.add(*s);
    }
    r
}

#[test]
fn masks_every_occurrence_and_longest_first() {
    let r = with(&["abc", "abcdef", ""]);
    assert_eq!(r.redact("x abcdef y abc"), "x *** y ***");
    assert!(matches!(r.redact("nothing here"), Cow::Borrowed(_)));
}

#[test]
fn every_encoding_of_a_secret_is_masked() {
    let secret = "s3cr\u{e9}t/to ken+\"q'";
    let r = with(&[secret]);
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let b64url = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let texts = [
        secret.to_owned(),
        "s3cr%C3%A9t%2Fto%20ken%2B%22q'".to_owned(),
        "s3cr%c3%a9t%2fto%20ken%2b%22q%27".to_owned(),
        "s3cr%C3%A9t%2Fto+ken%2B%22q%27".to_owned(),
        serde_json::to_string(secret).expect("json"),
        "s3cr\\u00e9t/to ken+\\\"q'".to_owned(),
        "'s3cr\u{e9}t/to ken+\"q\\''".to_owned(),
        format!("Basic {}", b64(&format!("user:{secret}"))),
        format!("Basic {}", b64(&format!("us:{secret}"))),
        format!("Basic {}", b64(&format!("u:{secret}"))),
        format!("Basic {}", b64(secret)),
        format!("jwt {}", b64url(&format!("{{\"k\":\"{secret}"))),
    ];
    for t in &texts {
        let out = r.redact(t);
        assert!(out.contains(MASK), "not masked: {t} -> {out}");
        // No fragment of 8 or more characters of any masked form survives.
        for form in super::encodings::forms(secret) {
            let form = String::from_utf8_lossy(&form);
            if form.len() >= 12 {
                assert!(!out.contains(form.as_ref()), "{form} left in {out}");
            }
        }
    }
}

#[test]
fn debug_never_prints_a_secret() {
    let r = with(&["hunter2-token"]);
    let d = format!("{r:?}");
    assert!(!d.contains("hunter2"), "{d}");
}

#[test]
fn json_values_are_masked_keys_included_and_stay_valid() {
    let r = with(&["\",\""]);
    let mut v = serde_json::json!({"a\",\"b": ["x\",\"y", 1], "n": null});
    r.redact_json(&mut v);
    let text = serde_json::to_string(&v).expect("json");
    assert_eq!(text, r#"{"a***b":["x***y",1],"n":null}"#);
    let pretty = r
        .to_json_pretty(&serde_json::json!({"k": "\",\""}))
        .expect("json");
    assert!(pretty.contains("\"***\""), "{pretty}");
}
