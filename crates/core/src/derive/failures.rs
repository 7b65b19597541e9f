//! Change failures and remediation: which deployments failed, by which rule, with what
//! evidence, and what remediated them. DESIGN.md "Metric definitions" 3 and 4.

use std::collections::HashMap;

use crate::model::{Failure, RemediationKind, RemediationTarget, StoredDeployment};
use crate::time::Nanos;

/// Failures starting this long after a deployment (default) are blamed on it.
pub const DEFAULT_FAILURE_WINDOW: Nanos = 24 * 3600 * 1_000_000_000;

/// The rules of DESIGN.md, in the order they are tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureRule {
    /// (a) a client marked it (PATCH `change_failure` or a `remediation`).
    Marked,
    /// (b) a later deployment rolled back past it.
    Rollback,
    /// (c) a failure event names its commit sha.
    FailureNamesSha,
    /// (c) a failure event names its version.
    FailureNamesVersion,
    /// (d) a failure started within the window after it, with no deployment in between.
    FailureWindow,
}

impl FailureRule {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Marked => "marked",
            Self::Rollback => "rollback",
            Self::FailureNamesSha => "failure_names_sha",
            Self::FailureNamesVersion => "failure_names_version",
            Self::FailureWindow => "failure_window",
        }
    }
}

/// The deployment that remediated a failed one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemediationLink {
    pub deployment_id: String,
    pub kind: RemediationKind,
    /// Failed deployment recovery time: remediation finish − failed deployment finish.
    pub recovery_time: Nanos,
}

/// Everything known about whether one deployment failed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    pub deployment_id: String,
    pub failed: bool,
    /// The rule that decided `failed` (the first that applies); `None` when not failed.
    pub rule: Option<FailureRule>,
    /// A client said it did not fail (`change_failure: false`), which overrides every rule.
    pub marked_stable: bool,
    /// Failure events attributed to this deployment.
    pub failure_ids: Vec<String>,
    /// The later deployment that rolled back past this one.
    pub rolled_back_by: Option<String>,
    pub remediation: Option<RemediationLink>,
    /// Deployments this one remediated: it is rework.
    pub remediates: Vec<String>,
}

impl Verdict {
    pub fn is_rework(&self) -> bool {
        !self.remediates.is_empty()
    }
}

/// A failure event blamed on one deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribution {
    pub deployment_id: String,
    pub rule: FailureRule,
}

/// Whom a failure names: the services it lists, or, listing none, its team.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Named<'a> {
    Services(&'a [String]),
    Team(&'a str),
    /// Neither: the failure concerns no deployment.
    Nobody,
}

/// The one rule of which deployments a failure can concern at all: those of the services it
/// names (or, naming none, of its team), in its env when it names one. Everything that finds,
/// marks or filters the failures of a deployment asks this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureScope<'a> {
    pub named: Named<'a>,
    /// `None`: every env.
    pub env: Option<&'a str>,
}

impl<'a> FailureScope<'a> {
    /// The scope of a failure with these fields (as a store row holds them).
    pub fn new(services: &'a [String], team: Option<&'a str>, env: Option<&'a str>) -> Self {
        let named = match (services.is_empty(), team) {
            (false, _) => Named::Services(services),
            (true, Some(team)) => Named::Team(team),
            (true, None) => Named::Nobody,
        };
        Self { named, env }
    }

    pub fn of(failure: &'a Failure) -> Self {
        Self::new(
            &failure.services,
            failure.team.as_deref(),
            failure.env.as_deref(),
        )
    }

    /// Whether it concerns a deployment of `service` to `env` by a team `team` accepts.
    pub fn concerns(&self, service: &str, env: Option<&str>, team: impl Fn(&str) -> bool) -> bool {
        let in_env = |wanted: Option<&str>| wanted.is_none() || wanted == env;
        self.concerns_any(
            |s, e| s == service && in_env(e),
            |t, e| team(t) && in_env(e),
        )
    }

    /// Whether it concerns any deployment of a set, asked by name through look-ups:
    /// `service(name, env)` and `team(name, env)` say whether the set holds a deployment of
    /// that service or team in `env` (`None`: in any env).
    pub fn concerns_any(
        &self,
        service: impl Fn(&str, Option<&str>) -> bool,
        team: impl Fn(&str, Option<&str>) -> bool,
    ) -> bool {
        match self.named {
            Named::Services(services) => services.iter().any(|s| service(s, self.env)),
            Named::Team(t) => team(t, self.env),
            Named::Nobody => false,
        }
    }

    /// Whether it concerns this deployment.
    pub fn concerns_deployment(&self, stored: &StoredDeployment) -> bool {
        let d = &stored.deployment;
        self.concerns(&d.service, d.env.as_deref(), |t| {
            d.team.as_deref() == Some(t)
        })
    }
}

/// Could this failure be about this deployment at all ([`FailureScope`]).
pub fn concerns(failure: &Failure, stored: &StoredDeployment) -> bool {
    FailureScope::of(failure).concerns_deployment(stored)
}

/// The one deployment a failure is blamed on (never several), among `candidates`: deployments
/// of the services the failure names, in any order.
pub fn attribute_failure(
    failure: &Failure,
    candidates: &[&StoredDeployment],
    window: Nanos,
) -> Option<Attribution> {
    let scope = FailureScope::of(failure);
    let relevant: Vec<&StoredDeployment> = candidates
        .iter()
        .copied()
        .filter(|d| scope.concerns_deployment(d))
        .collect();
    // The latest finished at or before the failure's start, else the earliest after it.
    let pick = |matching: Vec<&StoredDeployment>| -> Option<String> {
        let before = matching
            .iter()
            .filter(|d| d.deployment.finished_at <= failure.started_at)
            .max_by(|a, b| order(a, b));
        let after = || matching.iter().min_by(|a, b| order(a, b));
        before.or_else(after).map(|d| d.deployment.id.clone())
    };
    if let Some(git) = &failure.git {
        let matching = relevant
            .iter()
            .copied()
            .filter(|d| d.deployment.git.as_ref().map(|g| &g.commit_sha) == Some(&git.commit_sha))
            .collect();
        if let Some(deployment_id) = pick(matching) {
            return Some(Attribution {
                deployment_id,
                rule: FailureRule::FailureNamesSha,
            });
        }
    }
    if let Some(version) = &failure.version {
        let matching = relevant
            .iter()
            .copied()
            .filter(|d| d.deployment.version.as_ref() == Some(version))
            .collect();
        if let Some(deployment_id) = pick(matching) {
            return Some(Attribution {
                deployment_id,
                rule: FailureRule::FailureNamesVersion,
            });
        }
    }
    // The most recent deployment before the failure, across its services: the latest of its
    // own stream too, so "no later deployment in between" holds.
    relevant
        .iter()
        .filter(|d| d.deployment.finished_at <= failure.started_at)
        .max_by(|a, b| order(a, b))
        .filter(|d| failure.started_at - d.deployment.finished_at <= window)
        .map(|d| Attribution {
            deployment_id: d.deployment.id.clone(),
            rule: FailureRule::FailureWindow,
        })
}

/// Finish order, ties broken by id: which of two deployments came later.
fn order(a: &StoredDeployment, b: &StoredDeployment) -> std::cmp::Ordering {
    (a.deployment.finished_at, &a.deployment.id).cmp(&(b.deployment.finished_at, &b.deployment.id))
}

/// What a rollback compares: the commit sha, or the version when there is no git info.
fn rollback_key(stored: &StoredDeployment) -> Option<&str> {
    let d = &stored.deployment;
    d.git
        .as_ref()
        .map(|g| g.commit_sha.as_str())
        .or(d.version.as_deref())
}

/// Verdicts for one stream (one service to one env, in finish order), given the failure events
/// attributed to its deployments (deployment id → (failure id, rule)).
pub fn stream_verdicts(
    stream: &[StoredDeployment],
    attributed: &HashMap<String, Vec<(String, FailureRule)>>,
) -> Vec<Verdict> {
    let mut verdicts: Vec<Verdict> = stream
        .iter()
        .map(|d| Verdict {
            deployment_id: d.deployment.id.clone(),
            ..Verdict::default()
        })
        .collect();
    let finished = |i: usize| stream[i].deployment.finished_at;

    // (b) Rollbacks: deployment k ships what j < k-1 shipped, and k-1 shipped something else:
    // every deployment between j and k failed, and k remediated them.
    let mut rollback_of: Vec<Option<usize>> = vec![None; stream.len()];
    for k in 2..stream.len() {
        let Some(key) = rollback_key(&stream[k]) else {
            continue;
        };
        if rollback_key(&stream[k - 1]) == Some(key) {
            continue;
        }
        if let Some(j) = (0..k - 1)
            .rev()
            .find(|&j| rollback_key(&stream[j]) == Some(key))
        {
            for slot in &mut rollback_of[j + 1..k] {
                if slot.is_none() {
                    *slot = Some(k);
                }
            }
        }
    }

    // Remediations a client named, resolved inside the stream: by id, or by version (the first
    // deployment of that version after the failed one).
    let position: HashMap<&str, usize> = stream
        .iter()
        .enumerate()
        .map(|(i, d)| (d.deployment.id.as_str(), i))
        .collect();
    for (i, stored) in stream.iter().enumerate() {
        let Some(remediation) = &stored.remediation else {
            continue;
        };
        let target = match &remediation.target {
            RemediationTarget::Id(id) => position.get(id.as_str()).copied(),
            RemediationTarget::Version(version) => (i + 1..stream.len())
                .find(|&k| stream[k].deployment.version.as_ref() == Some(version)),
        };
        if let Some(k) = target {
            verdicts[i].remediation = Some(RemediationLink {
                deployment_id: stream[k].deployment.id.clone(),
                kind: remediation.kind,
                recovery_time: finished(k) - finished(i),
            });
            verdicts[k].remediates.push(stored.deployment.id.clone());
        }
    }

    for (i, stored) in stream.iter().enumerate() {
        if let Some(k) = rollback_of[i] {
            verdicts[i].rolled_back_by = Some(stream[k].deployment.id.clone());
            if verdicts[i].remediation.is_none() {
                verdicts[i].remediation = Some(RemediationLink {
                    deployment_id: stream[k].deployment.id.clone(),
                    kind: RemediationKind::Rollback,
                    recovery_time: finished(k) - finished(i),
                });
                verdicts[k].remediates.push(stored.deployment.id.clone());
            }
        }
        let failures = attributed
            .get(&stored.deployment.id)
            .cloned()
            .unwrap_or_default();
        let verdict = &mut verdicts[i];
        verdict.failure_ids = failures.iter().map(|(id, _)| id.clone()).collect();
        verdict.marked_stable = stored.change_failure == Some(false);
        verdict.rule = if verdict.marked_stable {
            None
        } else if stored.change_failure == Some(true) || stored.remediation.is_some() {
            Some(FailureRule::Marked)
        } else if verdict.rolled_back_by.is_some() {
            Some(FailureRule::Rollback)
        } else {
            // The strongest evidence among the failures: naming a sha, then a version, then time.
            failures
                .iter()
                .map(|(_, rule)| *rule)
                .min_by_key(|rule| *rule as u8)
        };
        verdict.failed = verdict.rule.is_some();
    }
    for verdict in &mut verdicts {
        verdict.remediates.sort();
        verdict.remediates.dedup();
    }
    verdicts
}
