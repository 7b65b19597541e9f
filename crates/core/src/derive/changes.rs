//! Change sets: which commits each deployment of one service to one env ships, and their lead
//! times. DESIGN.md "Metric definitions" 2.

use super::graph::CommitGraph;
use crate::model::{Commit, StoredDeployment};
use crate::time::Nanos;

/// A commit a deployment ships, with its lead times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShippedCommit {
    pub sha: String,
    pub committed_at: Nanos,
    /// Deployment finish − committer time.
    pub lead_time: Nanos,
    /// Deployment finish − merge time of the commit's MR/PR, when known.
    pub merge_lead_time: Option<Nanos>,
    pub merge_request: Option<i64>,
    pub subject: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeSet {
    pub deployment_id: String,
    /// The previous deployment with git info of the same service and env.
    pub baseline_id: Option<String>,
    /// The first deployment of its service and env: its commits are kept but flagged, and
    /// excluded from lead time.
    pub no_baseline: bool,
    /// The deployment names a commit the graph does not (yet) hold: its change set is unknown.
    pub tip_missing: bool,
    /// Non-merge commits first shipped by this deployment, newest commit first.
    pub commits: Vec<ShippedCommit>,
}

/// What one deployment's walk reached first: the commits of its change set, as positions in the
/// graph walked (merge commits included), before any is copied out of the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Walk<'s> {
    pub deployment: &'s StoredDeployment,
    /// As [`ChangeSet::baseline_id`].
    pub baseline_id: Option<&'s str>,
    /// As [`ChangeSet::no_baseline`].
    pub no_baseline: bool,
    /// As [`ChangeSet::tip_missing`].
    pub tip_missing: bool,
    pub positions: Vec<u32>,
}

impl Walk<'_> {
    /// The non-merge commits it shipped first.
    pub fn shipped<'a>(&'a self, graph: &'a CommitGraph) -> impl Iterator<Item = &'a Commit> {
        self.positions
            .iter()
            .map(|p| graph.at(*p))
            .filter(|commit| !commit.is_merge())
    }

    /// Its change set, the commits copied out of the graph.
    pub fn change_set(&self, graph: &CommitGraph) -> ChangeSet {
        let d = &self.deployment.deployment;
        let mut commits: Vec<ShippedCommit> = self
            .shipped(graph)
            .map(|commit| ShippedCommit {
                sha: commit.sha.clone(),
                committed_at: commit.committed_at,
                lead_time: d.finished_at - commit.committed_at,
                merge_lead_time: merged_at(commit).map(|merged| d.finished_at - merged),
                merge_request: commit.merge_request.as_ref().map(|mr| mr.number),
                subject: commit.subject.clone(),
            })
            .collect();
        commits.sort_by(|a, b| b.committed_at.cmp(&a.committed_at).then(a.sha.cmp(&b.sha)));
        ChangeSet {
            deployment_id: d.id.clone(),
            baseline_id: self.baseline_id.map(str::to_string),
            no_baseline: self.no_baseline,
            tip_missing: self.tip_missing,
            commits,
        }
    }
}

/// When the commit's MR/PR merged, if known.
pub fn merged_at(commit: &Commit) -> Option<Nanos> {
    commit.merge_request.as_ref().and_then(|mr| mr.merged_at)
}

/// Change sets of one stream: the deployments of one service to one env, in finish order.
/// Deployments without git info ship no commits and are not baselines.
pub fn change_sets(stream: &[StoredDeployment], graph: &CommitGraph) -> Vec<ChangeSet> {
    let (walks, _) = appended_walks(stream, graph, |_| false, None);
    walks.iter().map(|walk| walk.change_set(graph)).collect()
}

/// The walks of deployments appended (in finish order) to a stream whose earlier deployments
/// reached every commit `shipped` says (given its ordinal), the last of them with git info
/// being `baseline`; with the ordinals of every commit the new ones reached. [`change_sets`] is
/// this over a whole stream.
///
/// What was reached is closed under parents, so walking a new tip and stopping at it yields
/// exactly "reachable from this and from no earlier deployment": `rev-list prev..this` minus
/// what an older deployment already shipped (redeploys, rollbacks then roll-forwards) — in time
/// proportional to the new commits, not to the history.
pub fn appended_walks<'s>(
    appended: &'s [StoredDeployment],
    graph: &CommitGraph,
    shipped: impl Fn(u32) -> bool,
    mut baseline: Option<&'s str>,
) -> (Vec<Walk<'s>>, Vec<u32>) {
    let mut reached = graph.nothing_reached();
    let mut reached_ordinals = Vec::new();
    let mut walks = Vec::with_capacity(appended.len());
    for stored in appended {
        let d = &stored.deployment;
        let Some(git) = &d.git else {
            walks.push(Walk {
                deployment: stored,
                baseline_id: None,
                no_baseline: false,
                tip_missing: false,
                positions: Vec::new(),
            });
            continue;
        };
        let tip = git.commit_sha.as_str();
        let positions = graph.walk(tip, &mut reached, |p| shipped(graph.ordinal_at(p)));
        reached_ordinals.extend(positions.iter().map(|p| graph.ordinal_at(*p)));
        walks.push(Walk {
            deployment: stored,
            baseline_id: baseline,
            no_baseline: baseline.is_none(),
            tip_missing: !graph.contains(tip),
            positions,
        });
        baseline = Some(d.id.as_str());
    }
    (walks, reached_ordinals)
}
