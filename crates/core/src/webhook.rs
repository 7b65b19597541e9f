//! Webhooks in: the providers dorametrics takes deliveries from, the hooks an admin made for
//! them, and what is kept of each delivery.

use crate::time::Nanos;

/// A tool that sends webhooks, by the name its endpoint carries (`/api/v1/webhooks/<name>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Provider {
    Github,
    Gitlab,
    Pagerduty,
    Opsgenie,
    Incidentio,
    Cdevents,
    Argocd,
}

impl Provider {
    pub const ALL: [Provider; 7] = [
        Self::Github,
        Self::Gitlab,
        Self::Pagerduty,
        Self::Opsgenie,
        Self::Incidentio,
        Self::Cdevents,
        Self::Argocd,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Github => "github",
            Self::Gitlab => "gitlab",
            Self::Pagerduty => "pagerduty",
            Self::Opsgenie => "opsgenie",
            Self::Incidentio => "incidentio",
            Self::Cdevents => "cdevents",
            Self::Argocd => "argocd",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == text)
    }

    /// Every name, for messages: `github, gitlab, …`.
    pub fn names() -> String {
        let names: Vec<&str> = Self::ALL.iter().map(|p| p.as_str()).collect();
        names.join(", ")
    }
}

/// A hook an admin made: deliveries to its provider's endpoint that verify with its secret
/// are its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// Unique among all hooks.
    pub name: String,
    pub provider: Provider,
    /// What the provider signs with (or sends as a bearer token).
    pub secret: String,
    /// GitHub: the workflow whose successful runs are deployments too (`workflow_run`).
    pub deploy_workflow: Option<String>,
    /// GitHub: the env those runs deploy to (default `production`).
    pub deploy_env: Option<String>,
    /// GitHub: issues carrying this label are incidents (default [`DEFAULT_INCIDENT_LABEL`]).
    pub incident_label: Option<String>,
    pub created_at: Nanos,
}

/// The label that makes a GitHub issue an incident unless a hook names another.
pub const DEFAULT_INCIDENT_LABEL: &str = "incident";

impl Hook {
    pub fn incident_label(&self) -> &str {
        self.incident_label
            .as_deref()
            .unwrap_or(DEFAULT_INCIDENT_LABEL)
    }
}

/// What became of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Its events were stored.
    Stored,
    /// Verified, but nothing in it counts (another event type, a state that is not a success,
    /// a tag push, …).
    Ignored,
    /// Not verified, or not what the provider sends: nothing stored.
    Refused,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stored => "stored",
            Self::Ignored => "ignored",
            Self::Refused => "refused",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Stored, Self::Ignored, Self::Refused]
            .into_iter()
            .find(|o| o.as_str() == text)
    }
}

/// What is kept of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub provider: Provider,
    /// The provider's own id of the delivery, what a replay is known by; `None` when it sent
    /// none (or the delivery was refused before it was read).
    pub delivery_id: Option<String>,
    /// The hook it verified with.
    pub hook: Option<String>,
    /// The provider's event type (`deployment_status`, `Push Hook`, `incident.triggered`, …).
    pub event: String,
    pub received_at: Nanos,
    pub outcome: Outcome,
    /// What was stored (event ids), or why it was ignored or refused.
    pub detail: String,
}

/// A name a provider uses (a repository, a PagerDuty service, …) and the dorametrics service it
/// stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    pub provider: Provider,
    pub name: String,
    pub service: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for provider in Provider::ALL {
            assert_eq!(Provider::parse(provider.as_str()), Some(provider));
        }
        assert_eq!(Provider::parse("jenkins"), None);
        for outcome in [Outcome::Stored, Outcome::Ignored, Outcome::Refused] {
            assert_eq!(Outcome::parse(outcome.as_str()), Some(outcome));
        }
        assert!(Provider::names().starts_with("github, gitlab"));
    }
}
