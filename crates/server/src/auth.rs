//! API tokens: random secrets shown once, stored as SHA-256 under a non-secret id, accepted from
//! the headers the Datadog and GitLab clients send.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use dora_core::model::Scope;
use dora_core::project::in_group;
use std::sync::Arc;

use dora_core::time::Nanos;
use dora_store::{Restriction, TokenRecord};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::ratelimit::Peer;
use crate::AppState;

const TOKEN_PREFIX: &str = "dora_";
/// Hex digits of a token's id: 8 random bytes.
const ID_DIGITS: usize = 16;
/// Hex digits of a token's secret: 32 random bytes.
const SECRET_DIGITS: usize = 64;

/// A token as issued: the whole token (shown once) and what the store keeps of it.
pub struct IssuedToken {
    pub token: String,
    pub record: TokenRecord,
}

/// A new token, `dora_<id>_<secret>`: the id (16 hex digits) is not secret and is what the
/// token is looked up, listed and revoked by; the secret is 64 random hex digits.
pub fn issue_token(
    name: String,
    scopes: Vec<Scope>,
    restrictions: Vec<Restriction>,
    expires_at: Option<Nanos>,
) -> IssuedToken {
    let id = hex::encode(rand::random::<[u8; ID_DIGITS / 2]>());
    let secret = hex::encode(rand::random::<[u8; SECRET_DIGITS / 2]>());
    let token = format!("{TOKEN_PREFIX}{id}_{secret}");
    IssuedToken {
        record: TokenRecord {
            id,
            name,
            hash: hash_token(&token),
            scopes,
            restrictions,
            created_at: dora_core::time::now(),
            expires_at,
            last_used_at: None,
            revoked_at: None,
        },
        token,
    }
}

/// `now` plus a duration such as `90d` or `12h` (humantime's units); the error completes
/// "expires_in …".
pub fn expiry_after(now: Nanos, text: &str) -> Result<Nanos, String> {
    let duration = humantime::parse_duration(text)
        .map_err(|error| format!("{text:?} is not a duration such as 90d or 12h: {error}"))?;
    if duration.is_zero() {
        return Err("must be longer than zero".into());
    }
    i64::try_from(duration.as_nanos())
        .ok()
        .and_then(|nanos| now.checked_add(nanos))
        .ok_or_else(|| format!("{text:?} reaches past the year 2262"))
}

/// What is shown of a stored token (never its secret or hash): `token list` and
/// `/api/v1/admin/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    pub scopes: Vec<String>,
    /// `project:PATH` and `group:PATH`; empty: every project.
    pub restrictions: Vec<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    /// `active`, `expired` or `revoked`.
    pub status: String,
}

/// `GET /api/v1/admin/tokens` and `token list --json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct TokenList {
    pub tokens: Vec<TokenView>,
}

impl TokenView {
    pub fn of(record: &TokenRecord, now: Nanos) -> Self {
        let status = if record.revoked_at.is_some() {
            "revoked"
        } else if record.is_live(now) {
            "active"
        } else {
            "expired"
        };
        let at = |nanos: Option<Nanos>| nanos.map(dora_core::time::to_rfc3339);
        Self {
            id: record.id.clone(),
            name: record.name.clone(),
            scopes: record
                .scopes
                .iter()
                .map(|s| s.as_str().to_string())
                .collect(),
            restrictions: record
                .restrictions
                .iter()
                .map(ToString::to_string)
                .collect(),
            created_at: dora_core::time::to_rfc3339(record.created_at),
            last_used_at: at(record.last_used_at),
            expires_at: at(record.expires_at),
            revoked_at: at(record.revoked_at),
            status: status.to_string(),
        }
    }
}

/// The only form in which a token is stored.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The id a presented token is looked up by: the one it carries, or for a token issued before
/// ids existed (`dora_` and 64 hex digits) the first 16 hex digits of its hash, which is the id
/// its stored row was given.
fn lookup_id(token: &str) -> String {
    let carried = token
        .strip_prefix(TOKEN_PREFIX)
        .and_then(|rest| rest.split_once('_'))
        .filter(|(id, secret)| {
            id.len() == ID_DIGITS
                && secret.len() == SECRET_DIGITS
                && id
                    .bytes()
                    .chain(secret.bytes())
                    .all(|b| b.is_ascii_hexdigit())
        });
    match carried {
        Some((id, _)) => id.to_string(),
        None => hash_token(token)[..ID_DIGITS].to_string(),
    }
}

/// Where a credential may arrive, in the order they are tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    DdApiKey,
    DdApplicationKey,
    PrivateToken,
    Bearer,
    QueryPrivateToken,
}

impl Credential {
    const HEADERS: [(Credential, &'static str); 4] = [
        (Credential::DdApiKey, "dd-api-key"),
        (Credential::DdApplicationKey, "dd-application-key"),
        (Credential::PrivateToken, "private-token"),
        (Credential::Bearer, "authorization"),
    ];

    /// How the log names it (never with its value).
    pub fn as_str(self) -> &'static str {
        match self {
            Credential::DdApiKey => "DD-API-KEY",
            Credential::DdApplicationKey => "DD-APPLICATION-KEY",
            Credential::PrivateToken => "PRIVATE-TOKEN",
            Credential::Bearer => "Authorization: Bearer",
            Credential::QueryPrivateToken => "private_token",
        }
    }
}

/// Who is calling: the first presented credential that is a valid token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token_id: String,
    pub credential: Credential,
    scopes: Vec<Scope>,
    restrictions: Vec<Restriction>,
}

impl Caller {
    fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&Scope::Admin) || self.scopes.contains(&scope)
    }

    /// The token has `scope` and no restriction. A restricted token counts only where the
    /// surface checks projects itself ([`Self::require_some`]): elsewhere it would reach
    /// everything.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.allows(scope) && self.restrictions.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }

    /// The token has `scope`, perhaps for some projects only: for surfaces that then check
    /// [`Self::reaches_project`] or [`Self::reaches_group`].
    pub fn require_some(&self, scope: Scope) -> Result<(), ApiError> {
        if self.allows(scope) {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }

    /// Whether the token, with `scope`, reaches the project: unrestricted, restricted to it, or
    /// to a group holding it.
    pub fn reaches_project(&self, scope: Scope, path: &str) -> bool {
        self.reaches(scope, |restriction| match restriction {
            Restriction::Project(project) => project == path,
            Restriction::Group(group) => in_group(path, group),
        })
    }

    /// Whether the token, with `scope`, reaches the group: unrestricted, or restricted to it or
    /// to a group holding it (a project restriction never opens its group).
    pub fn reaches_group(&self, scope: Scope, path: &str) -> bool {
        self.reaches(scope, |restriction| match restriction {
            Restriction::Project(_) => false,
            Restriction::Group(group) => group == path || in_group(path, group),
        })
    }

    fn reaches(&self, scope: Scope, opens: impl Fn(&Restriction) -> bool) -> bool {
        self.allows(scope) && (self.restrictions.is_empty() || self.restrictions.iter().any(&opens))
    }
}

/// Every presented credential, in the order they are tried. Unreadable header values and
/// `Authorization` schemes other than Bearer (a proxy's Basic, say) are not credentials.
fn presented(parts: &Parts) -> Vec<(Credential, String)> {
    let mut found = Vec::new();
    for (credential, name) in Credential::HEADERS {
        for value in parts.headers.get_all(name) {
            let Ok(text) = value.to_str() else { continue };
            let text = text.trim();
            let token = if credential == Credential::Bearer {
                match text.split_once(' ') {
                    Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
                    _ => continue,
                }
            } else {
                text
            };
            if !token.is_empty() {
                found.push((credential, token.to_string()));
            }
        }
    }
    if let Some(query) = parts.uri.query() {
        for (key, value) in form_pairs(query) {
            if key == "private_token" && !value.is_empty() {
                found.push((Credential::QueryPrivateToken, value));
            }
        }
    }
    found
}

/// The stored token `token` is, if it is one and may be used now. The lookup is by id; the
/// secret's hash is then compared in constant time, so no timing tells how much of a guess
/// matched.
async fn valid_token(state: &AppState, token: &str) -> Result<Option<TokenRecord>, ApiError> {
    let Some(record) = state.store.find_token(&lookup_id(token)).await? else {
        return Ok(None);
    };
    let matches = bool::from(record.hash.as_bytes().ct_eq(hash_token(token).as_bytes()));
    Ok((matches && record.is_live(dora_core::time::now())).then_some(record))
}

/// What the request log says of its authentication; the extractor fills it in.
#[derive(Debug, Clone, Default)]
pub struct AuthNote(pub Arc<std::sync::OnceLock<String>>);

/// Decodes `a=b&c=d` (percent-encoding and `+`).
pub fn form_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_component(key), decode_component(value))
        })
        .collect()
}

fn decode_component(text: &str) -> String {
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let credentials = presented(parts);
        let note = |text: String| {
            if let Some(slot) = parts.extensions.get::<AuthNote>() {
                let _ = slot.0.set(text);
            }
        };
        for (credential, token) in &credentials {
            if let Some(record) = valid_token(state, token).await? {
                note(format!("{} token {}", credential.as_str(), record.id));
                state
                    .limiters
                    .token(&record.id)
                    .map_err(ApiError::RateLimited)?;
                touch(state, &record);
                return Ok(Caller {
                    token_id: record.id,
                    credential: *credential,
                    scopes: record.scopes,
                    restrictions: record.restrictions,
                });
            }
        }
        let tried: Vec<&str> = credentials.iter().map(|(c, _)| c.as_str()).collect();
        note(if tried.is_empty() {
            "no credential".to_string()
        } else {
            format!("no valid token in {}", tried.join(", "))
        });
        // Only refused credentials count (each cost a look-up); a request without any does not.
        if let (false, Some(Peer(peer))) = (tried.is_empty(), parts.extensions.get::<Peer>()) {
            state
                .limiters
                .failed_auth(*peer)
                .map_err(ApiError::RateLimited)?;
        }
        Err(ApiError::Unauthorized)
    }
}

/// Keeps the token's last use (to the minute) without holding up the request.
fn touch(state: &AppState, record: &TokenRecord) {
    let now = dora_core::time::now();
    if record
        .last_used_at
        .is_some_and(|used| used >= now - dora_store::TOKEN_USE_GRAIN)
    {
        return;
    }
    let (store, id) = (Arc::clone(&state.store), record.id.clone());
    tokio::spawn(async move {
        if let Err(error) = store.touch_token(&id, now).await {
            tracing::warn!(%error, token = %id, "cannot record the token's last use");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issue() -> IssuedToken {
        issue_token("t".into(), vec![Scope::Read], Vec::new(), None)
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, b) = (issue(), issue());
        assert_ne!(a.token, b.token);
        assert_ne!(a.record.id, b.record.id);
        assert!(a.token.starts_with("dora_") && a.token.len() == 5 + 16 + 1 + 64);
        assert_eq!(a.record.hash, hash_token(&a.token));
        assert!(!a.token.contains(&a.record.hash));
    }

    #[test]
    fn a_token_is_looked_up_by_the_id_it_carries() {
        let a = issue();
        assert_eq!(lookup_id(&a.token), a.record.id);
        // A token from before ids: the id its row was given by the migration.
        let legacy = format!("dora_{}", "ab".repeat(32));
        assert_eq!(lookup_id(&legacy), hash_token(&legacy)[..16]);
        // Anything else is looked up by its hash prefix too, and so matches nothing real.
        assert_eq!(lookup_id("dora_x_y"), hash_token("dora_x_y")[..16]);
    }

    #[test]
    fn expired_and_revoked_tokens_are_not_live() {
        let mut record = issue().record;
        assert!(record.is_live(record.created_at));
        record.expires_at = Some(record.created_at + 10);
        assert!(record.is_live(record.created_at + 9));
        assert!(!record.is_live(record.created_at + 10));
        record.expires_at = None;
        record.revoked_at = Some(record.created_at);
        assert!(!record.is_live(record.created_at));
    }

    #[test]
    fn query_pairs_are_decoded() {
        assert_eq!(
            form_pairs("private_token=a%2Bb&x=1+2&flag"),
            vec![
                ("private_token".to_string(), "a+b".to_string()),
                ("x".to_string(), "1 2".to_string()),
                ("flag".to_string(), String::new())
            ]
        );
    }
}
