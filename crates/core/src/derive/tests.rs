use std::collections::HashMap;

use super::*;
use crate::model::{
    Commit, Deployment, Failure, Git, MergeRequest, Remediation, RemediationKind,
    RemediationTarget, StoredDeployment,
};

const S: i64 = 1_000_000_000;

fn sha(name: &str) -> String {
    format!("{:0>40}", hex(name))
}

fn hex(name: &str) -> String {
    name.bytes().map(|b| format!("{b:02x}")).collect()
}

/// A commit `name` with parents, committed at `t` seconds.
fn commit(name: &str, parents: &[&str], t: i64) -> Commit {
    Commit {
        repository_id: "github.com/acme/shop".into(),
        sha: sha(name),
        parents: parents.iter().map(|p| sha(p)).collect(),
        authored_at: t * S,
        committed_at: t * S,
        author: None,
        subject: Some(name.into()),
        merge_request: None,
    }
}

fn deploy(id: &str, at: &str, finished_s: i64) -> StoredDeployment {
    StoredDeployment {
        deployment: Deployment {
            id: id.into(),
            service: "shop".into(),
            env: Some("prod".into()),
            team: Some("web".into()),
            version: Some(format!("v-{at}")),
            started_at: finished_s * S - S,
            finished_at: finished_s * S,
            git: Some(Git {
                repository_url: "https://github.com/acme/shop".into(),
                repository_id: "github.com/acme/shop".into(),
                commit_sha: sha(at),
            }),
            custom_tags: vec![],
            source: "api".into(),
        },
        change_failure: None,
        remediation: None,
    }
}

fn refs(deployments: &[StoredDeployment]) -> Vec<&StoredDeployment> {
    deployments.iter().collect()
}

fn shas(set: &ChangeSet) -> Vec<String> {
    let mut names: Vec<String> = set
        .commits
        .iter()
        .map(|c| c.subject.clone().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn linear_history_redeploys_and_the_first_deployment() {
    let graph = CommitGraph::new(vec![
        commit("c1", &[], 100),
        commit("c2", &["c1"], 200),
        commit("c3", &["c2"], 300),
        commit("c4", &["c3"], 400),
    ]);
    let stream = [
        deploy("d1", "c2", 1000),
        deploy("d2", "c4", 2000),
        deploy("d3", "c4", 3000),
    ];
    let sets = change_sets(&stream, &graph);
    assert_eq!(shas(&sets[0]), ["c1", "c2"]);
    assert!(sets[0].no_baseline);
    assert_eq!(sets[0].baseline_id, None);
    assert_eq!(shas(&sets[1]), ["c3", "c4"]);
    assert!(!sets[1].no_baseline);
    assert_eq!(sets[1].baseline_id.as_deref(), Some("d1"));
    let lead: Vec<i64> = sets[1].commits.iter().map(|c| c.lead_time / S).collect();
    assert_eq!(lead, [1600, 1700]); // newest first: c4 (2000-400), c3 (2000-300)
    assert!(sets[2].commits.is_empty(), "a redeploy ships nothing new");
}

#[test]
fn merges_are_walked_through_but_not_counted() {
    let graph = CommitGraph::new(vec![
        commit("c1", &[], 100),
        commit("b1", &["c1"], 150),
        commit("b2", &["b1"], 160),
        commit("c2", &["c1"], 170),
        commit("m", &["c2", "b2"], 180),
    ]);
    let stream = [deploy("d1", "c1", 1000), deploy("d2", "m", 2000)];
    let sets = change_sets(&stream, &graph);
    assert_eq!(shas(&sets[1]), ["b1", "b2", "c2"]);
}

#[test]
fn merge_request_times_give_merge_lead_time() {
    let mut c2 = commit("c2", &["c1"], 200);
    c2.merge_request = Some(MergeRequest {
        number: 7,
        created_at: Some(150 * S),
        merged_at: Some(900 * S),
    });
    let graph = CommitGraph::new(vec![commit("c1", &[], 100), c2]);
    let sets = change_sets(&[deploy("d1", "c1", 500), deploy("d2", "c2", 1000)], &graph);
    let shipped = &sets[1].commits[0];
    assert_eq!(
        (
            shipped.lead_time / S,
            shipped.merge_lead_time.map(|t| t / S)
        ),
        (800, Some(100))
    );
    assert_eq!(shipped.merge_request, Some(7));
}

#[test]
fn force_push_and_missing_commits() {
    let graph = CommitGraph::new(vec![
        commit("a1", &[], 100),
        commit("a2", &["a1"], 200),
        commit("b2", &["a1"], 300), // a2 rewritten
    ]);
    let stream = [
        deploy("d1", "a2", 1000),
        deploy("d2", "b2", 2000),
        deploy("d3", "zz", 3000),
    ];
    let sets = change_sets(&stream, &graph);
    assert_eq!(shas(&sets[1]), ["b2"]);
    assert!(sets[2].tip_missing);
    assert!(sets[2].commits.is_empty());
}

#[test]
fn rollback_to_an_older_sha_fails_the_deployments_in_between_once() {
    let graph = CommitGraph::new(vec![
        commit("c1", &[], 100),
        commit("c2", &["c1"], 200),
        commit("c3", &["c2"], 300),
        commit("c4", &["c3"], 400),
    ]);
    let stream = [
        deploy("d1", "c1", 1000),
        deploy("d2", "c2", 2000),
        deploy("d3", "c3", 3000),
        deploy("d4", "c1", 4000), // rollback
        deploy("d5", "c4", 5000), // roll forward past the bad commits
    ];
    let verdicts = stream_verdicts(&stream, &HashMap::new());
    let failed: Vec<bool> = verdicts.iter().map(|v| v.failed).collect();
    assert_eq!(failed, [false, true, true, false, false]);
    assert_eq!(verdicts[1].rule, Some(FailureRule::Rollback));
    assert_eq!(verdicts[1].rolled_back_by.as_deref(), Some("d4"));
    assert_eq!(
        verdicts[1].remediation.as_ref().unwrap().recovery_time,
        2000 * S
    );
    assert_eq!(
        verdicts[2].remediation.as_ref().unwrap().recovery_time,
        1000 * S
    );
    assert_eq!(verdicts[3].remediates, ["d2", "d3"]);
    assert!(verdicts[3].is_rework());
    // c2 and c3 were shipped by d2 and d3: d5 ships c4 alone.
    let sets = change_sets(&stream, &graph);
    assert!(sets[3].commits.is_empty());
    assert_eq!(shas(&sets[4]), ["c4"]);
}

#[test]
fn rollback_by_version_when_there_is_no_git() {
    let mut stream = vec![
        deploy("d1", "x", 1),
        deploy("d2", "y", 2),
        deploy("d3", "x", 3),
    ];
    for d in &mut stream {
        d.deployment.git = None;
    }
    let verdicts = stream_verdicts(&stream, &HashMap::new());
    assert_eq!(verdicts[1].rule, Some(FailureRule::Rollback));
    // A plain redeploy is not a rollback.
    let redeploy = [deploy("d1", "x", 1), deploy("d2", "x", 2)];
    assert!(stream_verdicts(&redeploy, &HashMap::new())
        .iter()
        .all(|v| !v.failed));
}

#[test]
fn marks_and_named_remediations() {
    let mut stream = vec![
        deploy("d1", "c1", 1000),
        deploy("d2", "c2", 2000),
        deploy("d3", "c3", 2600),
    ];
    stream[0].change_failure = Some(true);
    stream[0].remediation = Some(Remediation {
        kind: RemediationKind::Rollforward,
        target: RemediationTarget::Version("v-c3".into()),
    });
    stream[1].change_failure = Some(false);
    let mut attributed = HashMap::new();
    attributed.insert(
        "d2".to_string(),
        vec![("f1".to_string(), FailureRule::FailureWindow)],
    );
    let verdicts = stream_verdicts(&stream, &attributed);
    assert_eq!(verdicts[0].rule, Some(FailureRule::Marked));
    let link = verdicts[0].remediation.as_ref().unwrap();
    assert_eq!(
        (link.deployment_id.as_str(), link.recovery_time),
        ("d3", 1600 * S)
    );
    assert!(verdicts[2].is_rework());
    // Marked stable beats a failure in the window; the evidence is still shown.
    assert!(!verdicts[1].failed && verdicts[1].marked_stable);
    assert_eq!(verdicts[1].failure_ids, ["f1"]);
}

fn failure(started_s: i64) -> Failure {
    Failure {
        id: "f1".into(),
        name: None,
        services: vec!["shop".into()],
        team: None,
        env: Some("prod".into()),
        severity: None,
        started_at: started_s * S,
        finished_at: None,
        version: None,
        git: None,
        custom_tags: vec![],
        source: "api".into(),
    }
}

#[test]
fn a_failure_in_the_window_blames_the_latest_deployment_only() {
    let candidates = [deploy("d1", "c1", 1000), deploy("d2", "c2", 2000)];
    let found =
        attribute_failure(&failure(2500), &refs(&candidates), DEFAULT_FAILURE_WINDOW).unwrap();
    assert_eq!(
        (found.deployment_id.as_str(), found.rule),
        ("d2", FailureRule::FailureWindow)
    );
    // Outside the window.
    assert_eq!(
        attribute_failure(
            &failure(2000 + 25 * 3600),
            &refs(&candidates),
            DEFAULT_FAILURE_WINDOW
        ),
        None
    );
    // A configurable window.
    assert_eq!(
        attribute_failure(&failure(2500), &refs(&candidates), 100 * S),
        None
    );
    // Before any deployment.
    assert_eq!(
        attribute_failure(&failure(10), &refs(&candidates), DEFAULT_FAILURE_WINDOW),
        None
    );
    // Another env.
    let mut staging = failure(2500);
    staging.env = Some("staging".into());
    assert_eq!(
        attribute_failure(&staging, &refs(&candidates), DEFAULT_FAILURE_WINDOW),
        None
    );
    // Another service.
    let mut other = failure(2500);
    other.services = vec!["cart".into()];
    assert_eq!(
        attribute_failure(&other, &refs(&candidates), DEFAULT_FAILURE_WINDOW),
        None
    );
}

#[test]
fn a_failure_naming_a_version_or_sha_blames_that_deployment() {
    let candidates = [
        deploy("d1", "c1", 1000),
        deploy("d2", "c2", 2000),
        deploy("d3", "c3", 3000),
    ];
    let mut named = failure(3500);
    named.version = Some("v-c2".into());
    let found = attribute_failure(&named, &refs(&candidates), DEFAULT_FAILURE_WINDOW).unwrap();
    assert_eq!(
        (found.deployment_id.as_str(), found.rule),
        ("d2", FailureRule::FailureNamesVersion)
    );
    let mut by_sha = failure(3500);
    by_sha.git = Some(Git {
        repository_url: String::new(),
        repository_id: String::new(),
        commit_sha: sha("c1"),
    });
    let found = attribute_failure(&by_sha, &refs(&candidates), DEFAULT_FAILURE_WINDOW).unwrap();
    assert_eq!(
        (found.deployment_id.as_str(), found.rule),
        ("d1", FailureRule::FailureNamesSha)
    );
    // A version nobody deployed falls back to the window rule.
    let mut unknown = failure(3500);
    unknown.version = Some("v-none".into());
    assert_eq!(
        attribute_failure(&unknown, &refs(&candidates), DEFAULT_FAILURE_WINDOW)
            .unwrap()
            .deployment_id,
        "d3"
    );
}

#[test]
fn a_multi_service_failure_blames_one_deployment() {
    let mut cart = deploy("cart-1", "k1", 2400);
    cart.deployment.service = "cart".into();
    let candidates = [deploy("shop-1", "c1", 2000), cart];
    let mut both = failure(2500);
    both.services = vec!["shop".into(), "cart".into()];
    let found = attribute_failure(&both, &refs(&candidates), DEFAULT_FAILURE_WINDOW).unwrap();
    assert_eq!(found.deployment_id, "cart-1");
}

/// A failure naming services concerns their deployments only; naming none, its team's; in
/// its env when it names one — asked of one deployment or of a set by look-ups, alike.
#[test]
fn a_failure_scope_names_services_else_its_team_in_its_env() {
    let shop = deploy("d1", "a", 10);
    let mut cart = deploy("d2", "a", 10);
    cart.deployment.service = "cart".into();
    cart.deployment.team = Some("checkout".into());
    cart.deployment.env = Some("staging".into());
    let cases = [
        (vec!["shop"], None, None, [true, false]),
        (vec!["shop", "cart"], None, None, [true, true]),
        (vec!["shop", "cart"], None, Some("prod"), [true, false]),
        (vec![], Some("checkout"), None, [false, true]),
        (vec![], Some("checkout"), Some("prod"), [false, false]),
        // Services win over the team.
        (vec!["shop"], Some("checkout"), None, [true, false]),
        (vec![], None, None, [false, false]),
    ];
    for (services, team, env, expected) in cases {
        let mut f = failure(20);
        f.services = services.iter().map(|s| s.to_string()).collect();
        f.team = team.map(str::to_string);
        f.env = env.map(str::to_string);
        let scope = FailureScope::of(&f);
        let deployments = [&shop, &cart];
        for (d, expected) in deployments.iter().zip(expected) {
            assert_eq!(concerns(&f, d), expected, "{f:?} {d:?}");
        }
        // The set of both, asked by name.
        let has = |name: &str, env: Option<&str>, by_team: bool| {
            deployments.iter().any(|d| {
                let d = &d.deployment;
                let who = if by_team {
                    d.team.as_deref()
                } else {
                    Some(d.service.as_str())
                };
                who == Some(name) && (env.is_none() || env == d.env.as_deref())
            })
        };
        assert_eq!(
            scope.concerns_any(|s, e| has(s, e, false), |t, e| has(t, e, true)),
            expected.contains(&true),
            "{f:?}"
        );
    }
}
