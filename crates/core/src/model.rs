//! The events dorametrics stores, and the domain rules every one of them obeys whatever API it
//! arrived through.

use crate::time::Nanos;

/// Git information of an event. The URL never carries credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Git {
    pub repository_url: String,
    pub repository_id: String,
    /// Lowercase hex, 40 or more characters.
    pub commit_sha: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub id: String,
    pub service: String,
    pub env: Option<String>,
    pub team: Option<String>,
    pub version: Option<String>,
    pub started_at: Nanos,
    pub finished_at: Nanos,
    pub git: Option<Git>,
    pub custom_tags: Vec<String>,
    /// Which intake the event came through (`api`, later `gitlab`, `github`, …).
    pub source: String,
}

/// A failure (incident). Resolved once it has `finished_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub id: String,
    pub name: Option<String>,
    pub services: Vec<String>,
    pub team: Option<String>,
    pub env: Option<String>,
    pub severity: Option<String>,
    pub started_at: Nanos,
    pub finished_at: Option<Nanos>,
    pub version: Option<String>,
    pub git: Option<Git>,
    pub custom_tags: Vec<String>,
    pub source: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemediationKind {
    Rollback,
    Rollforward,
}

impl RemediationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rollback => "rollback",
            Self::Rollforward => "rollforward",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "rollback" => Some(Self::Rollback),
            "rollforward" => Some(Self::Rollforward),
            _ => None,
        }
    }
}

/// The deployment that remediated a failed one, named by id or by version (same service and env).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemediationTarget {
    Id(String),
    Version(String),
}

impl RemediationTarget {
    /// `(id, version)`, exactly one of them set: how stores keep the target in two columns.
    pub fn id_and_version(&self) -> (Option<&str>, Option<&str>) {
        match self {
            Self::Id(id) => (Some(id), None),
            Self::Version(version) => (None, Some(version)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remediation {
    pub kind: RemediationKind,
    pub target: RemediationTarget,
}

/// What a client may say about a deployment after the fact (Datadog's PATCH).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeploymentPatch {
    pub change_failure: Option<bool>,
    pub remediation: Option<Remediation>,
}

/// A stored deployment with what clients said about it afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDeployment {
    pub deployment: Deployment,
    pub change_failure: Option<bool>,
    pub remediation: Option<Remediation>,
}

/// Which deployment a PATCH addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeploymentSelector {
    Id(String),
    /// The most recently finished deployment of this service, env and version.
    Version {
        service: String,
        env: String,
        version: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    StartedAt,
    FinishedAt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub field: SortField,
    pub descending: bool,
}

impl Sort {
    /// `started_at`, `finished_at`, optionally prefixed with `-` for descending.
    pub fn parse(text: &str) -> Option<Self> {
        let (descending, name) = match text.strip_prefix('-') {
            Some(name) => (true, name),
            None => (false, text),
        };
        let field = match name {
            "started_at" => SortField::StartedAt,
            "finished_at" => SortField::FinishedAt,
            _ => return None,
        };
        Some(Self { field, descending })
    }
}

/// A list request, already validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    /// Inclusive lower bound on the time field (`finished_at` of deployments, `started_at` of failures).
    pub from: Option<Nanos>,
    /// Inclusive upper bound on the same field.
    pub to: Option<Nanos>,
    pub limit: u32,
    pub filter: crate::query::Query,
    pub sort: Sort,
}

pub const MAX_LIST_LIMIT: u32 = 1000;
pub const DEFAULT_LIST_LIMIT: u32 = 10;
pub const MAX_CUSTOM_TAGS: usize = 100;
pub const MAX_TEXT_LEN: usize = 1024;

/// A broken domain rule, worded to follow the field's name ("id must …").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RuleError(pub String);

/// Event ids: 16–128 characters of `[A-Za-z0-9._:-]`.
/// Free text from elsewhere (a commit's author or subject) as it is kept: trimmed, cut to
/// [`MAX_TEXT_LEN`] bytes at a character boundary; `None` when nothing is left.
pub fn clipped_text(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    let mut end = trimmed.len().min(MAX_TEXT_LEN);
    while !trimmed.is_char_boundary(end) {
        end -= 1;
    }
    let cut = trimmed[..end].trim_end();
    (!cut.is_empty() && cut != "<>").then(|| cut.to_string())
}

pub fn check_event_id(id: &str) -> Result<(), RuleError> {
    let len = id.chars().count();
    if !(16..=128).contains(&len) {
        return Err(RuleError(format!(
            "must be 16 to 128 characters long, got {len}"
        )));
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
    {
        return Err(RuleError(format!(
            "contains {bad:?}; only letters, digits, '-', '_', '.' and ':' are allowed"
        )));
    }
    Ok(())
}

/// Commit SHAs: 40 or more hex digits (SHA-1 or SHA-256), stored lowercase.
pub fn normalise_commit_sha(sha: &str) -> Result<String, RuleError> {
    if sha.len() < 40 {
        return Err(RuleError(format!(
            "must be at least 40 hex digits, got {} characters",
            sha.len()
        )));
    }
    if let Some(bad) = sha.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(RuleError(format!(
            "contains {bad:?}; only hex digits are allowed"
        )));
    }
    Ok(sha.to_ascii_lowercase())
}

/// Custom tags must look like `key:value` with a non-empty key and value.
pub fn check_custom_tag(tag: &str) -> Result<(), RuleError> {
    match tag.split_once(':') {
        Some((key, value)) if !key.trim().is_empty() && !value.is_empty() => Ok(()),
        _ => Err(RuleError(format!(
            "{tag:?} does not follow the key:value pattern"
        ))),
    }
}

/// The attributes of an event as (key, value) pairs: what the query language matches against.
/// Custom tags contribute their own keys; a failure contributes one `service` pair per service.
pub fn deployment_attributes(d: &Deployment) -> Vec<(String, String)> {
    let mut attrs = deployment_fields(d);
    attrs.extend(tag_attributes(&d.custom_tags));
    attrs
}

/// The attributes of a deployment's own fields: [`deployment_attributes`] without its custom
/// tags.
pub fn deployment_fields(d: &Deployment) -> Vec<(String, String)> {
    let mut attrs = vec![
        ("service".to_string(), d.service.clone()),
        ("source".to_string(), d.source.clone()),
    ];
    push_optional(&mut attrs, "env", &d.env);
    push_optional(&mut attrs, "team", &d.team);
    push_optional(&mut attrs, "version", &d.version);
    push_git(&mut attrs, &d.git);
    attrs
}

/// The attributes custom tags (`key:value`) give; a tag without `:` gives none.
pub fn tag_attributes(tags: &[String]) -> Vec<(String, String)> {
    let mut attrs = Vec::new();
    push_tags(&mut attrs, tags);
    attrs
}

pub fn failure_attributes(f: &Failure) -> Vec<(String, String)> {
    let mut attrs = vec![("source".to_string(), f.source.clone())];
    attrs.extend(
        f.services
            .iter()
            .map(|s| ("service".to_string(), s.clone())),
    );
    push_optional(&mut attrs, "name", &f.name);
    push_optional(&mut attrs, "team", &f.team);
    push_optional(&mut attrs, "env", &f.env);
    push_optional(&mut attrs, "severity", &f.severity);
    push_optional(&mut attrs, "version", &f.version);
    push_git(&mut attrs, &f.git);
    push_tags(&mut attrs, &f.custom_tags);
    attrs
}

fn push_optional(attrs: &mut Vec<(String, String)>, key: &str, value: &Option<String>) {
    if let Some(value) = value {
        attrs.push((key.to_string(), value.clone()));
    }
}

fn push_git(attrs: &mut Vec<(String, String)>, git: &Option<Git>) {
    if let Some(git) = git {
        attrs.push(("repository_id".to_string(), git.repository_id.clone()));
        attrs.push(("commit_sha".to_string(), git.commit_sha.clone()));
    }
}

fn push_tags(attrs: &mut Vec<(String, String)>, tags: &[String]) {
    for tag in tags {
        if let Some((key, value)) = tag.split_once(':') {
            attrs.push((key.to_string(), value.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_trimmed_and_capped() {
        assert_eq!(clipped_text("  fix: it  "), Some("fix: it".to_string()));
        assert_eq!(clipped_text("   "), None);
        assert_eq!(clipped_text(" <>"), None);
        let long = "é".repeat(MAX_TEXT_LEN);
        let cut = clipped_text(&long).unwrap();
        assert!(cut.len() <= MAX_TEXT_LEN && cut.len() >= MAX_TEXT_LEN - 1);
        assert!(cut.chars().all(|c| c == 'é'));
    }

    #[test]
    fn ids() {
        assert!(check_event_id("4242fcdd31586083").is_ok());
        assert!(check_event_id("deploy:2025-01-01_v1.2-rc").is_ok());
        assert_eq!(
            check_event_id("short").unwrap_err().0,
            "must be 16 to 128 characters long, got 5"
        );
        assert!(check_event_id(&"a".repeat(129)).is_err());
        assert!(check_event_id("has space in it here")
            .unwrap_err()
            .0
            .contains("' '"));
    }

    #[test]
    fn shas() {
        let sha = "66ADC9350F2CC9B250B69ABDDAB733DD55E1A588";
        assert_eq!(normalise_commit_sha(sha).unwrap(), sha.to_lowercase());
        assert!(normalise_commit_sha(&"a".repeat(64)).is_ok());
        assert!(normalise_commit_sha("66adc93").is_err());
        assert!(normalise_commit_sha(&"g".repeat(40)).is_err());
    }

    #[test]
    fn tags() {
        assert!(check_custom_tag("language:java").is_ok());
        assert!(check_custom_tag("url:http://x").is_ok());
        assert!(check_custom_tag("language").is_err());
        assert!(check_custom_tag(":java").is_err());
        assert!(check_custom_tag("language:").is_err());
    }

    #[test]
    fn sort() {
        assert_eq!(
            Sort::parse("-finished_at"),
            Some(Sort {
                field: SortField::FinishedAt,
                descending: true
            })
        );
        assert_eq!(
            Sort::parse("started_at"),
            Some(Sort {
                field: SortField::StartedAt,
                descending: false
            })
        );
        assert_eq!(Sort::parse("service"), None);
        assert_eq!(Sort::parse("--started_at"), None);
    }
}

/// A commit of a repository's history, as imported from git or pushed by CI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// The normalised repository id (`github.com/acme/shop`), as deployments name it.
    pub repository_id: String,
    /// Lowercase hex.
    pub sha: String,
    /// Lowercase hex; two or more for a merge commit.
    pub parents: Vec<String>,
    pub authored_at: Nanos,
    pub committed_at: Nanos,
    pub author: Option<String>,
    pub subject: Option<String>,
    /// The merge request / pull request the commit belongs to, when known.
    pub merge_request: Option<MergeRequest>,
}

impl Commit {
    pub fn is_merge(&self) -> bool {
        self.parents.len() > 1
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeRequest {
    pub number: i64,
    pub created_at: Option<Nanos>,
    pub merged_at: Option<Nanos>,
}

/// What a token may do. `admin` may do everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    Read,
    Write,
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Write, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "dora_metrics_read",
            Self::Write => "dora_metrics_write",
            Self::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}
