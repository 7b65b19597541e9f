//! API tokens: random secrets shown once, stored as SHA-256, accepted from the headers the
//! Datadog and GitLab clients send.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use dora_core::model::Scope;
use dora_core::project::in_group;
use dora_store::Restriction;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::AppState;

const TOKEN_PREFIX: &str = "dora_";

/// A new random token: `dora_` and 64 hex digits (32 random bytes).
pub fn generate_token() -> String {
    let secret: [u8; 32] = rand::random();
    format!("{TOKEN_PREFIX}{}", hex::encode(secret))
}

/// The only form in which a token is stored.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The headers (in this order) a token may arrive in; `private_token` may also be a query parameter.
const TOKEN_HEADERS: [&str; 4] = [
    "dd-api-key",
    "dd-application-key",
    "private-token",
    "authorization",
];

/// Who is calling, established from the request's token(s). Every credential presented must be
/// valid; the caller may do what any of them allows.
#[derive(Debug, Clone)]
pub struct Caller {
    /// One per token: scopes and restrictions are kept together so that one token's scope never
    /// lends itself to another token's projects.
    grants: Vec<Grant>,
}

#[derive(Debug, Clone)]
struct Grant {
    scopes: Vec<Scope>,
    restrictions: Vec<Restriction>,
}

impl Grant {
    fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&Scope::Admin) || self.scopes.contains(&scope)
    }
}

impl Caller {
    /// Some unrestricted token has `scope`. Restricted tokens count only where the surface
    /// checks projects itself ([`Self::require_some`]): elsewhere they would reach everything.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self
            .grants
            .iter()
            .any(|g| g.allows(scope) && g.restrictions.is_empty())
        {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }

    /// Some token has `scope`, perhaps for some projects only: for surfaces that then check
    /// [`Self::reaches_project`] or [`Self::reaches_group`].
    pub fn require_some(&self, scope: Scope) -> Result<(), ApiError> {
        if self.grants.iter().any(|g| g.allows(scope)) {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }

    /// Whether some token with `scope` reaches the project: unrestricted, restricted to it, or
    /// to a group holding it.
    pub fn reaches_project(&self, scope: Scope, path: &str) -> bool {
        self.reaches(scope, |restriction| match restriction {
            Restriction::Project(project) => project == path,
            Restriction::Group(group) => in_group(path, group),
        })
    }

    /// Whether some token with `scope` reaches the group: unrestricted, or restricted to it or
    /// to a group holding it (a project restriction never opens its group).
    pub fn reaches_group(&self, scope: Scope, path: &str) -> bool {
        self.reaches(scope, |restriction| match restriction {
            Restriction::Project(_) => false,
            Restriction::Group(group) => group == path || in_group(path, group),
        })
    }

    fn reaches(&self, scope: Scope, opens: impl Fn(&Restriction) -> bool) -> bool {
        self.grants.iter().any(|g| {
            g.allows(scope) && (g.restrictions.is_empty() || g.restrictions.iter().any(&opens))
        })
    }
}

fn presented_tokens(parts: &Parts) -> Vec<String> {
    let mut tokens = Vec::new();
    for name in TOKEN_HEADERS {
        for value in parts.headers.get_all(name) {
            let Ok(text) = value.to_str() else {
                tokens.push(String::new()); // unreadable: counts as an invalid credential
                continue;
            };
            let text = text.trim();
            let token = if name == "authorization" {
                match text.split_once(' ') {
                    Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
                    _ => text,
                }
            } else {
                text
            };
            tokens.push(token.to_string());
        }
    }
    if let Some(query) = parts.uri.query() {
        for (key, value) in form_pairs(query) {
            if key == "private_token" {
                tokens.push(value);
            }
        }
    }
    tokens
}

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
        let tokens = presented_tokens(parts);
        if tokens.is_empty() {
            return Err(ApiError::Unauthorized);
        }
        let mut grants = Vec::new();
        for token in tokens {
            let hash = hash_token(&token);
            let record = state
                .store
                .find_token(&hash)
                .await?
                .ok_or(ApiError::Unauthorized)?;
            // The lookup is by hash; compare again in constant time so no timing reveals how
            // much of a guess matched.
            if !bool::from(record.hash.as_bytes().ct_eq(hash.as_bytes())) {
                return Err(ApiError::Unauthorized);
            }
            grants.push(Grant {
                scopes: record.scopes,
                restrictions: record.restrictions,
            });
        }
        Ok(Caller { grants })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashed() {
        let a = generate_token();
        let b = generate_token();
        assert_ne!(a, b);
        assert!(a.starts_with("dora_") && a.len() == 5 + 64);
        assert_eq!(hash_token(&a).len(), 64);
        assert_ne!(hash_token(&a), hash_token(&b));
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
