//! How each provider signs a delivery, checked in constant time. A delivery is a hook's when it
//! verifies with that hook's secret.

use axum::http::HeaderMap;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// How far a Standard Webhooks timestamp may be from now (incident.io's and GitLab's signing
/// token), either way: a replay of an old capture is refused.
pub const TIMESTAMP_TOLERANCE_S: i64 = 5 * 60;

/// Why a delivery did not verify (said in the 401 and kept with the delivery).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unverified {
    #[error("header {0} is missing")]
    Missing(&'static str),
    #[error("header {header} is malformed: {why}")]
    Malformed { header: &'static str, why: String },
    #[error("the signature in {0} matches no hook's secret")]
    Mismatch(&'static str),
    #[error(
        "webhook-timestamp is {0} s from now, more than the {TIMESTAMP_TOLERANCE_S} s allowed"
    )]
    Stale(i64),
}

/// HMAC-SHA256 of `parts` one after the other, keyed by `secret`.
fn hmac_sha256(secret: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

fn equal(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, Unverified> {
    let value = headers.get(name).ok_or(Unverified::Missing(name))?;
    let text = value.to_str().map_err(|_| Unverified::Malformed {
        header: name,
        why: "not ASCII text".into(),
    })?;
    Ok(text.trim())
}

/// A hex signature after `prefix` (`sha256=`, `v1=`).
fn hex_after(text: &str, prefix: &str, name: &'static str) -> Result<Vec<u8>, Unverified> {
    let hex_part = text
        .strip_prefix(prefix)
        .ok_or_else(|| Unverified::Malformed {
            header: name,
            why: format!("expected {prefix}<hex>"),
        })?;
    hex::decode(hex_part).map_err(|e| Unverified::Malformed {
        header: name,
        why: format!("not hex: {e}"),
    })
}

/// GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`.
pub fn github(headers: &HeaderMap, body: &[u8], secret: &str) -> Result<(), Unverified> {
    const NAME: &str = "x-hub-signature-256";
    let signature = hex_after(header(headers, NAME)?, "sha256=", NAME)?;
    match equal(&signature, &hmac_sha256(secret.as_bytes(), &[body])) {
        true => Ok(()),
        false => Err(Unverified::Mismatch(NAME)),
    }
}

/// PagerDuty v3: `X-PagerDuty-Signature: v1=<hex>[,v1=<hex>…]` (several while a secret is
/// rotated): any one matching.
pub fn pagerduty(headers: &HeaderMap, body: &[u8], secret: &str) -> Result<(), Unverified> {
    const NAME: &str = "x-pagerduty-signature";
    let expected = hmac_sha256(secret.as_bytes(), &[body]);
    let mut matched = false;
    for signature in header(headers, NAME)?.split(',').map(str::trim) {
        // Signatures of other versions may come along; only v1 is known.
        if let Ok(signature) = hex_after(signature, "v1=", NAME) {
            matched |= equal(&signature, &expected);
        }
    }
    match matched {
        true => Ok(()),
        false => Err(Unverified::Mismatch(NAME)),
    }
}

/// GitLab's secret token: `X-Gitlab-Token` is the secret itself.
pub fn gitlab_token(headers: &HeaderMap, secret: &str) -> Result<(), Unverified> {
    const NAME: &str = "x-gitlab-token";
    match equal(header(headers, NAME)?.as_bytes(), secret.as_bytes()) {
        true => Ok(()),
        false => Err(Unverified::Mismatch(NAME)),
    }
}

/// Standard Webhooks (incident.io, GitLab's signing token): `webhook-signature: v1,<base64
/// HMAC-SHA256 of "id.timestamp.body">` (space-separated, any one matching), keyed by the
/// secret (`whsec_<base64>`: the decoded bytes; otherwise its text), with `webhook-timestamp`
/// (seconds) within [`TIMESTAMP_TOLERANCE_S`] of `now_s`.
pub fn standard(
    headers: &HeaderMap,
    body: &[u8],
    secret: &str,
    now_s: i64,
) -> Result<(), Unverified> {
    const SIGNATURE: &str = "webhook-signature";
    const TIMESTAMP: &str = "webhook-timestamp";
    let id = header(headers, "webhook-id")?;
    let timestamp = header(headers, TIMESTAMP)?;
    let at: i64 = timestamp.parse().map_err(|_| Unverified::Malformed {
        header: TIMESTAMP,
        why: "not a number of seconds".into(),
    })?;
    if (now_s - at).abs() > TIMESTAMP_TOLERANCE_S {
        return Err(Unverified::Stale(now_s - at));
    }
    let key = standard_key(secret);
    let expected = hmac_sha256(
        &key,
        &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
    );
    let engine = base64::engine::general_purpose::STANDARD;
    let mut matched = false;
    for signature in header(headers, SIGNATURE)?.split_whitespace() {
        let Some(("v1", encoded)) = signature.split_once(',') else {
            continue;
        };
        if let Ok(signature) = engine.decode(encoded) {
            matched |= equal(&signature, &expected);
        }
    }
    match matched {
        true => Ok(()),
        false => Err(Unverified::Mismatch(SIGNATURE)),
    }
}

/// The key a Standard Webhooks secret stands for.
fn standard_key(secret: &str) -> Vec<u8> {
    let engine = base64::engine::general_purpose::STANDARD;
    secret
        .strip_prefix("whsec_")
        .and_then(|encoded| engine.decode(encoded).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec())
}

/// Senders that sign nothing but can set headers (Opsgenie, CDEvents, Argo CD):
/// `Authorization: Bearer <secret>`.
pub fn bearer(headers: &HeaderMap, secret: &str) -> Result<(), Unverified> {
    const NAME: &str = "authorization";
    let value = header(headers, NAME)?;
    let token = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => {
            return Err(Unverified::Malformed {
                header: NAME,
                why: "expected Bearer <secret>".into(),
            })
        }
    };
    match equal(token.as_bytes(), secret.as_bytes()) {
        true => Ok(()),
        false => Err(Unverified::Mismatch(NAME)),
    }
}

/// What a test (or a sender written against this server) puts in the headers.
pub mod sign {
    use super::*;

    /// `sha256=<hex>` as GitHub sends it.
    pub fn github(body: &[u8], secret: &str) -> String {
        format!(
            "sha256={}",
            hex::encode(hmac_sha256(secret.as_bytes(), &[body]))
        )
    }

    /// `v1=<hex>` as PagerDuty sends it.
    pub fn pagerduty(body: &[u8], secret: &str) -> String {
        format!(
            "v1={}",
            hex::encode(hmac_sha256(secret.as_bytes(), &[body]))
        )
    }

    /// `v1,<base64>` over `id.timestamp.body`, as Standard Webhooks senders do.
    pub fn standard(id: &str, timestamp: i64, body: &[u8], secret: &str) -> String {
        let stamp = timestamp.to_string();
        let mac = hmac_sha256(
            &standard_key(secret),
            &[id.as_bytes(), b".", stamp.as_bytes(), b".", body],
        );
        let engine = base64::engine::general_purpose::STANDARD;
        format!("v1,{}", engine.encode(mac))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    /// RFC 4231 test case 2: HMAC-SHA256 with key "Jefe".
    #[test]
    fn hmac_is_the_standard_one() {
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn github_signatures() {
        let body = br#"{"zen":"Keep it logically awesome."}"#;
        let good = headers(&[("x-hub-signature-256", &sign::github(body, "s3cret"))]);
        assert_eq!(github(&good, body, "s3cret"), Ok(()));
        assert_eq!(
            github(&good, body, "other"),
            Err(Unverified::Mismatch("x-hub-signature-256"))
        );
        assert_eq!(
            github(&good, b"{}", "s3cret"),
            Err(Unverified::Mismatch("x-hub-signature-256"))
        );
        assert_eq!(
            github(&HeaderMap::new(), body, "s3cret"),
            Err(Unverified::Missing("x-hub-signature-256"))
        );
        let sha1 = headers(&[("x-hub-signature-256", "sha1=abcd")]);
        assert!(matches!(
            github(&sha1, body, "s3cret"),
            Err(Unverified::Malformed { .. })
        ));
    }

    #[test]
    fn pagerduty_takes_any_of_several_signatures() {
        let body = br#"{"event":{}}"#;
        let rotating = format!(
            "v1={},{}",
            "00".repeat(32),
            sign::pagerduty(body, "new-secret")
        );
        let map = headers(&[("x-pagerduty-signature", &rotating)]);
        assert_eq!(pagerduty(&map, body, "new-secret"), Ok(()));
        assert!(pagerduty(&map, body, "old-secret").is_err());
    }

    #[test]
    fn standard_webhooks_check_the_timestamp() {
        let body = br#"{"event_type":"public_incident.incident_created_v2"}"#;
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let at = 1_764_806_400;
        let signed = |when: i64| {
            headers(&[
                ("webhook-id", "msg_2x"),
                ("webhook-timestamp", &when.to_string()),
                (
                    "webhook-signature",
                    &sign::standard("msg_2x", when, body, secret),
                ),
            ])
        };
        assert_eq!(standard(&signed(at), body, secret, at + 10), Ok(()));
        assert_eq!(
            standard(&signed(at), body, secret, at + 3600),
            Err(Unverified::Stale(3600))
        );
        assert!(standard(&signed(at), body, "whsec_b3RoZXI=", at).is_err());
        // A plain-text secret (GitLab's signing token) keys the HMAC with its own bytes.
        let plain = headers(&[
            ("webhook-id", "1"),
            ("webhook-timestamp", &at.to_string()),
            ("webhook-signature", &sign::standard("1", at, body, "plain")),
        ]);
        assert_eq!(standard(&plain, body, "plain", at), Ok(()));
    }

    #[test]
    fn tokens_and_bearers() {
        let map = headers(&[("x-gitlab-token", "tok"), ("authorization", "Bearer tok")]);
        assert_eq!(gitlab_token(&map, "tok"), Ok(()));
        assert!(gitlab_token(&map, "toke").is_err());
        assert_eq!(bearer(&map, "tok"), Ok(()));
        let basic = headers(&[("authorization", "Basic dG9r")]);
        assert!(matches!(
            bearer(&basic, "tok"),
            Err(Unverified::Malformed { .. })
        ));
    }
}
