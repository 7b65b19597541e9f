//! Derived facts kept on ingest: every write stales the streams it can change in its own
//! transaction, a re-derivation is stored only if nothing staled the stream meanwhile, and the
//! metrics read what was stored — never an answer older than the writes before the read.

use dora_core::derive::DEFAULT_FAILURE_WINDOW;
use dora_core::metrics::DeploymentFact;
use dora_core::model::{Commit, Deployment, DeploymentPatch, DeploymentSelector, Failure, Git};
use dora_core::query::Query;
use dora_core::rollup::DayTally;
use dora_core::tier::Tier;
use dora_engine::derivation::{self, Refresher};
use dora_store::{DirtyStream, FactQuery, Store, StreamKey, TallyQuery};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_store, TestApp};

/// 2025-01-01T00:00:00Z.
const JAN1: i64 = 1_735_689_600;
const SECOND: i64 = 1_000_000_000;
const HOUR: i64 = 3600;

fn stream(service: &str, env: Option<&str>) -> StreamKey {
    StreamKey {
        service: service.into(),
        env: env.map(str::to_string),
    }
}

fn deployment(id: &str, service: &str, env: Option<&str>, team: Option<&str>) -> Deployment {
    Deployment {
        id: id.into(),
        service: service.into(),
        env: env.map(str::to_string),
        team: team.map(str::to_string),
        version: None,
        started_at: JAN1 * SECOND,
        finished_at: JAN1 * SECOND + 60 * SECOND,
        git: Some(Git {
            repository_url: "https://github.com/acme/shop".into(),
            repository_id: "github.com/acme/shop".into(),
            commit_sha: "a".repeat(40),
        }),
        custom_tags: vec!["region:eu".into()],
        source: "api".into(),
    }
}

fn failure(id: &str, services: &[&str], team: Option<&str>, env: Option<&str>) -> Failure {
    Failure {
        id: id.into(),
        name: None,
        services: services.iter().map(|s| s.to_string()).collect(),
        team: team.map(str::to_string),
        env: env.map(str::to_string),
        severity: None,
        started_at: JAN1 * SECOND + HOUR * SECOND,
        finished_at: None,
        version: None,
        git: None,
        custom_tags: Vec::new(),
        source: "api".into(),
    }
}

fn fact(id: &str, service: &str, env: Option<&str>, lead_times: Vec<i64>) -> DeploymentFact {
    DeploymentFact {
        id: id.into(),
        finished_at: JAN1 * SECOND + 60 * SECOND,
        service: service.into(),
        team: Some("backend".into()),
        env: env.map(str::to_string),
        tier: Tier::Production,
        project: "acme/shop".into(),
        failed: true,
        rework: false,
        lead_times,
        merge_lead_times: vec![7],
        recovery_time: Some(600 * SECOND),
    }
}

/// The stale streams, without their sequence numbers.
async fn dirty(store: &dyn Store) -> Vec<StreamKey> {
    let mut streams: Vec<StreamKey> = store
        .dirty_streams()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.stream)
        .collect();
    streams.sort();
    streams
}

/// Marks every stream clean by storing no facts for it.
async fn clean(store: &dyn Store) {
    for stale in store.dirty_streams().await.unwrap() {
        assert!(store.replace_stream_facts(stale, Vec::new()).await.unwrap());
    }
    assert!(dirty(store).await.is_empty());
}

async fn every_write_stales_the_streams_it_can_change() {
    let (store, _data) = spawn_store().await;
    let store = store.as_ref();
    assert!(dirty(store).await.is_empty());

    store
        .put_deployment(deployment(
            "d-shop-prod-000001",
            "shop",
            Some("prod"),
            Some("backend"),
        ))
        .await
        .unwrap();
    store
        .put_deployment(deployment(
            "d-shop-none-000001",
            "shop",
            None,
            Some("backend"),
        ))
        .await
        .unwrap();
    store
        .put_deployment(deployment(
            "d-cart-prod-000001",
            "cart",
            Some("prod"),
            Some("web"),
        ))
        .await
        .unwrap();
    assert_eq!(
        dirty(store).await,
        [
            stream("cart", Some("prod")),
            stream("shop", None),
            stream("shop", Some("prod"))
        ]
    );

    // A replacement that moves a deployment stales the stream it left and the one it joined.
    clean(store).await;
    store
        .put_deployment(deployment(
            "d-shop-prod-000001",
            "shop",
            Some("qa"),
            Some("backend"),
        ))
        .await
        .unwrap();
    assert_eq!(
        dirty(store).await,
        [stream("shop", Some("prod")), stream("shop", Some("qa"))]
    );

    // A failure stales its services' streams in its env, or all their envs without one.
    clean(store).await;
    store
        .put_failure(failure("f-shop-000000001", &["shop"], None, Some("qa")))
        .await
        .unwrap();
    assert_eq!(dirty(store).await, [stream("shop", Some("qa"))]);
    clean(store).await;
    store
        .put_failure(failure("f-every-env-0001", &["shop", "cart"], None, None))
        .await
        .unwrap();
    assert_eq!(
        dirty(store).await,
        [
            stream("cart", Some("prod")),
            stream("shop", None),
            stream("shop", Some("qa"))
        ]
    );
    // Naming no service, it stales the streams its team deploys in.
    clean(store).await;
    store
        .put_failure(failure("f-team-web-00001", &[], Some("web"), None))
        .await
        .unwrap();
    assert_eq!(dirty(store).await, [stream("cart", Some("prod"))]);
    // Replacing a failure stales what it concerned before as well as what it concerns now.
    clean(store).await;
    store
        .put_failure(failure("f-team-web-00001", &["shop"], None, Some("qa")))
        .await
        .unwrap();
    assert_eq!(
        dirty(store).await,
        [stream("cart", Some("prod")), stream("shop", Some("qa"))]
    );
    clean(store).await;
    assert!(store.delete_failure("f-team-web-00001").await.unwrap());
    assert_eq!(dirty(store).await, [stream("shop", Some("qa"))]);

    // Commits stale every stream deploying from their repository.
    clean(store).await;
    store
        .put_commits(vec![Commit {
            repository_id: "github.com/acme/shop".into(),
            sha: "a".repeat(40),
            parents: Vec::new(),
            authored_at: JAN1 * SECOND,
            committed_at: JAN1 * SECOND,
            author: None,
            subject: None,
            merge_request: None,
        }])
        .await
        .unwrap();
    assert_eq!(dirty(store).await.len(), 3);
    // Only because that commit was the deployments' own: a commit nothing stored names stales
    // nothing, nor does sending one again; one filling a hole (a parent a stored commit names)
    // or bringing a changed merge request stales every stream of its repository again.
    let commit = |sha: char, parents: &[char], mr: Option<i64>| Commit {
        repository_id: "github.com/acme/shop".into(),
        sha: sha.to_string().repeat(40),
        parents: parents.iter().map(|p| p.to_string().repeat(40)).collect(),
        authored_at: JAN1 * SECOND,
        committed_at: JAN1 * SECOND,
        author: None,
        subject: None,
        merge_request: mr.map(|number| dora_core::model::MergeRequest {
            number,
            created_at: None,
            merged_at: None,
        }),
    };
    for (commits, stales) in [
        (vec![commit('b', &['a'], None)], 0),
        (vec![commit('c', &['e'], Some(7))], 0),
        (vec![commit('c', &['e'], Some(7))], 0),
        (vec![commit('e', &[], None)], 3),
        (vec![commit('c', &['e'], Some(8))], 3),
        // Within one batch, a parent after its child fills the child's hole at once.
        (
            vec![commit('f', &['g'], None), commit('g', &['b'], None)],
            0,
        ),
    ] {
        clean(store).await;
        store.put_commits(commits.clone()).await.unwrap();
        assert_eq!(
            dirty(store).await.len(),
            stales,
            "{commits:?} after {:?}",
            dirty(store).await
        );
    }

    // PATCH, delete and an env's tier.
    clean(store).await;
    let patch = DeploymentPatch {
        change_failure: Some(true),
        remediation: None,
    };
    let selector = DeploymentSelector::Id("d-cart-prod-000001".into());
    assert!(store.patch_deployment(selector, patch).await.unwrap());
    assert_eq!(dirty(store).await, [stream("cart", Some("prod"))]);
    clean(store).await;
    assert!(store.delete_deployment("d-shop-none-000001").await.unwrap());
    assert_eq!(dirty(store).await, [stream("shop", None)]);
    clean(store).await;
    store.set_env_tier("qa", Some(Tier::Testing)).await.unwrap();
    assert_eq!(dirty(store).await, [stream("shop", Some("qa"))]);

    // A changed derivation setting stales everything; the same one nothing.
    clean(store).await;
    store.settle_fact_setting("window", 1).await.unwrap();
    clean(store).await;
    assert!(!store.settle_fact_setting("window", 1).await.unwrap());
    assert!(dirty(store).await.is_empty());
    assert!(store.settle_fact_setting("window", 2).await.unwrap());
    assert_eq!(dirty(store).await.len(), 2);
}

async fn a_re_derivation_overtaken_by_a_write_is_not_stored() {
    let (store, _data) = spawn_store().await;
    let store = store.as_ref();
    let shop = stream("shop", Some("prod"));
    store
        .put_deployment(deployment(
            "d-shop-prod-000001",
            "shop",
            Some("prod"),
            Some("backend"),
        ))
        .await
        .unwrap();
    let read: DirtyStream = store.dirty_streams().await.unwrap().remove(0);
    // A write arrives while the stream is being derived from what `read` saw.
    store
        .put_deployment(deployment(
            "d-shop-prod-000002",
            "shop",
            Some("prod"),
            Some("backend"),
        ))
        .await
        .unwrap();
    let stale_facts = vec![fact("d-shop-prod-000001", "shop", Some("prod"), vec![1])];
    assert!(!store
        .replace_stream_facts(read.clone(), stale_facts)
        .await
        .unwrap());
    assert!(store.stream_facts(&shop).await.unwrap().is_empty());
    assert_eq!(dirty(store).await, std::slice::from_ref(&shop));

    let again = store.dirty_streams().await.unwrap().remove(0);
    assert_ne!(again.seq, read.seq);
    let facts = vec![
        fact(
            "d-shop-prod-000001",
            "shop",
            Some("prod"),
            vec![-5, 3, i64::MAX],
        ),
        fact("d-shop-prod-000002", "shop", Some("prod"), Vec::new()),
    ];
    assert!(store
        .replace_stream_facts(again.clone(), facts.clone())
        .await
        .unwrap());
    assert!(dirty(store).await.is_empty());
    // Stored exactly, and replaced (not added to) by the next derivation.
    assert_eq!(store.stream_facts(&shop).await.unwrap(), facts);
    // A second store of the same derivation (another node) is refused: it is clean now.
    assert!(!store.replace_stream_facts(again, facts).await.unwrap());
    store.mark_streams_dirty(vec![shop.clone()]).await.unwrap();
    let third = store.dirty_streams().await.unwrap().remove(0);
    let fewer = vec![fact("d-shop-prod-000002", "shop", Some("prod"), vec![9])];
    assert!(store
        .replace_stream_facts(third, fewer.clone())
        .await
        .unwrap());
    assert_eq!(store.stream_facts(&shop).await.unwrap(), fewer);
}

async fn stored_facts_are_read_by_range_tier_project_group_and_query() {
    let (store, _data) = spawn_store().await;
    let store = store.as_ref();
    // Facts of deployments that exist (the query filter joins them).
    let mut facts = Vec::new();
    for (n, (service, env, project, tier)) in [
        ("shop", "prod", "acme/shop", Tier::Production),
        ("shop", "staging", "acme/shop", Tier::Staging),
        ("api", "prod", "acme/platform/api", Tier::Production),
        ("web", "prod", "acme-labs/web", Tier::Production),
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("d-{service}-{env}-00000{n}");
        let mut d = deployment(&id, service, Some(env), Some("backend"));
        d.finished_at += n as i64 * HOUR * SECOND;
        if env == "staging" {
            // A custom tag of a column's key: the query sees both values.
            d.custom_tags.push("env:prod".into());
        }
        store.put_deployment(d.clone()).await.unwrap();
        let mut f = fact(&id, service, Some(env), vec![n as i64]);
        f.finished_at = d.finished_at;
        f.project = project.into();
        f.tier = tier;
        facts.push(f);
    }
    for stale in store.dirty_streams().await.unwrap() {
        let own: Vec<DeploymentFact> = facts
            .iter()
            .filter(|f| f.service == stale.stream.service && f.env == stale.stream.env)
            .cloned()
            .collect();
        assert!(store.replace_stream_facts(stale, own).await.unwrap());
    }
    let ids =
        |found: Vec<DeploymentFact>| -> Vec<String> { found.into_iter().map(|f| f.id).collect() };
    let everything = FactQuery {
        from: None,
        to: None,
        tiers: Vec::new(),
        project: None,
        group: None,
        filter: Query::All,
    };
    assert_eq!(store.read_facts(&everything).await.unwrap(), facts);
    let start = facts[1].finished_at;
    let ranged = FactQuery {
        from: Some(start),
        to: Some(facts[3].finished_at),
        ..everything.clone()
    };
    assert_eq!(
        ids(store.read_facts(&ranged).await.unwrap()),
        ["d-shop-staging-000001", "d-api-prod-000002"]
    );
    let production = FactQuery {
        tiers: vec![Tier::Production],
        ..everything.clone()
    };
    assert_eq!(store.read_facts(&production).await.unwrap().len(), 3);
    // A group holds the projects below it, not a sibling sharing its prefix.
    let acme = FactQuery {
        group: Some("acme".into()),
        ..everything.clone()
    };
    assert_eq!(
        ids(store.read_facts(&acme).await.unwrap()),
        [
            "d-shop-prod-000000",
            "d-shop-staging-000001",
            "d-api-prod-000002"
        ]
    );
    let project = FactQuery {
        project: Some("acme/platform/api".into()),
        ..everything.clone()
    };
    assert_eq!(
        ids(store.read_facts(&project).await.unwrap()),
        ["d-api-prod-000002"]
    );
    let query = FactQuery {
        filter: Query::And(vec![
            Query::field("env", "prod"),
            Query::Not(Box::new(Query::field("service", "web"))),
        ]),
        ..everything.clone()
    };
    assert_eq!(
        ids(store.read_facts(&query).await.unwrap()),
        [
            "d-shop-prod-000000",
            "d-shop-staging-000001",
            "d-api-prod-000002"
        ]
    );
    let untagged = FactQuery {
        filter: Query::Not(Box::new(Query::field("env", "prod"))),
        ..everything.clone()
    };
    assert!(store.read_facts(&untagged).await.unwrap().is_empty());
    let mut streams = store.fact_streams(&acme).await.unwrap();
    streams.sort();
    assert_eq!(
        streams,
        [
            (stream("api", Some("prod")), Some("backend".into())),
            (stream("shop", Some("prod")), Some("backend".into())),
            (stream("shop", Some("staging")), Some("backend".into())),
        ]
    );
}

async fn change_failure_rate(app: &TestApp, service: &str) -> Value {
    totals(app, &format!("query=service:{service}")).await["change_failure_rate"].clone()
}

/// The totals of 2025-01-01 for a selection (`""`: everything, counted from the day tallies).
async fn totals(app: &TestApp, selection: &str) -> Value {
    let reply = app
        .get(&format!(
            "/api/v1/metrics?{selection}&from=2025-01-01&to=2025-01-01&interval=all"
        ))
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    reply.body["totals"].clone()
}

/// Deployments and failed deployments of everything, from the day tallies.
async fn everything_failed(app: &TestApp) -> (Value, Value) {
    let totals = totals(app, "tiers=all").await;
    (
        totals["deployments"].clone(),
        totals["failed_deployments"].clone(),
    )
}

/// A failure naming two services is blamed on one deployment: when a deployment of the other
/// service arrives closer to it, the blame moves — and the first stream, which no write
/// touched, is re-derived too.
async fn a_failure_moves_to_the_deployment_closer_to_it() {
    let app = spawn_app().await;
    let deploy = |id: &str, service: &str, finished: i64| {
        json!({"id": id, "service": service, "env": "production",
               "started_at": finished - 60, "finished_at": finished})
    };
    app.deploy(deploy("shop-deploy-000001", "shop", JAN1 + HOUR))
        .await;
    app.fail(
        json!({"id": "outage-00000000001", "services": ["shop", "cart"],
        "env": "production", "started_at": JAN1 + 3 * HOUR}),
    )
    .await;
    assert_eq!(change_failure_rate(&app, "shop").await, json!(1.0));
    assert_eq!(change_failure_rate(&app, "cart").await, Value::Null);
    assert_eq!(everything_failed(&app).await, (json!(1), json!(1)));

    app.deploy(deploy("cart-deploy-000001", "cart", JAN1 + 2 * HOUR))
        .await;
    assert_eq!(change_failure_rate(&app, "cart").await, json!(1.0));
    assert_eq!(change_failure_rate(&app, "shop").await, json!(0.0));
    assert_eq!(everything_failed(&app).await, (json!(2), json!(1)));

    // And back, when that deployment goes away.
    let reply = app
        .call(
            reqwest::Method::DELETE,
            "/api/v2/dora/deployment/cart-deploy-000001",
            Some(&app.write),
            None,
        )
        .await;
    assert!(reply.status.is_success(), "{:?}", reply.body);
    assert_eq!(change_failure_rate(&app, "shop").await, json!(1.0));
    assert_eq!(everything_failed(&app).await, (json!(1), json!(1)));
}

/// The day tallies follow the facts: a re-derivation marks the days of the facts it changed
/// (before and after), and a refresh tallies exactly those again from all the day's facts.
async fn day_tallies_follow_the_facts() {
    let (store, _data) = spawn_store().await;
    let store = store.as_ref();
    let day = dora_core::rollup::day_number(JAN1 * SECOND);
    let in_group = |group: &str, from_day: i64, to_day: i64| TallyQuery {
        group: group.into(),
        tiers: vec![Tier::Production],
        from_day,
        to_day,
    };
    let summary = |tallies: Vec<DayTally>| -> Vec<(i64, u64, u64, Vec<i64>)> {
        tallies
            .into_iter()
            .map(|t| (t.day - day, t.deployments, t.failed, t.lead_times))
            .collect()
    };
    for (id, service) in [
        ("d-shop-prod-000001", "shop"),
        ("d-api-prod-0000001", "api"),
    ] {
        store
            .put_deployment(deployment(id, service, Some("prod"), Some("backend")))
            .await
            .unwrap();
    }
    let mut shop = fact("d-shop-prod-000001", "shop", Some("prod"), vec![5, 9]);
    let mut api = fact("d-api-prod-0000001", "api", Some("prod"), vec![7]);
    api.project = "acme/platform/api".into();
    api.failed = false;
    let derive = async |facts: Vec<DeploymentFact>| {
        store
            .mark_streams_dirty(vec![stream(&facts[0].service, Some("prod"))])
            .await
            .unwrap();
        for stale in store.dirty_streams().await.unwrap() {
            let mine = stale.stream.service == facts[0].service;
            let facts = if mine { facts.clone() } else { Vec::new() };
            assert!(store.replace_stream_facts(stale, facts).await.unwrap());
        }
        let mut tallied = 0;
        loop {
            match store.refresh_day_tallies(1).await.unwrap() {
                0 => return tallied,
                n => tallied += n,
            }
        }
    };
    assert_eq!(derive(vec![shop.clone()]).await, 1);
    assert_eq!(derive(vec![api.clone()]).await, 1);
    let all = store
        .read_day_tallies(&in_group("", day - 5, day + 5))
        .await
        .unwrap();
    assert_eq!(summary(all), [(0, 2, 1, vec![5, 7, 9])]);
    let acme_platform = in_group("acme/platform", day, day + 1);
    assert_eq!(
        summary(store.read_day_tallies(&acme_platform).await.unwrap()),
        [(0, 1, 0, vec![7])]
    );
    // The same facts again: nothing to tally.
    assert_eq!(derive(vec![shop.clone()]).await, 0);
    // The shop deployment moves two days on and stops failing: both days are tallied again.
    shop.finished_at += 2 * 86_400 * SECOND;
    shop.failed = false;
    assert_eq!(derive(vec![shop.clone()]).await, 2);
    let acme = store
        .read_day_tallies(&in_group("acme", day, day + 3))
        .await
        .unwrap();
    assert_eq!(summary(acme), [(0, 1, 0, vec![7]), (2, 1, 0, vec![5, 9])]);
    // Other tiers and the day range are kept apart.
    let staging = TallyQuery {
        tiers: vec![Tier::Staging],
        ..in_group("acme", day, day + 3)
    };
    assert!(store.read_day_tallies(&staging).await.unwrap().is_empty());
    assert_eq!(
        store
            .read_day_tallies(&in_group("acme", day + 1, day + 2))
            .await
            .unwrap(),
        []
    );
}

/// What is still to derive is counted: stale streams, how long the oldest mark waited, stale
/// days; and `GET /api/v1/status` (read scope) says so, and nothing once a read derived it.
async fn status_counts_what_is_still_to_derive() {
    let (store, _data) = spawn_store().await;
    let store = store.as_ref();
    let none = store.staleness().await.unwrap();
    assert_eq!(
        (none.streams, none.oldest_mark_age, none.days),
        (0, None, 0)
    );
    for (id, env) in [
        ("d-shop-prod-000001", "prod"),
        ("d-shop-stag-000001", "staging"),
    ] {
        store
            .put_deployment(deployment(id, "shop", Some(env), Some("backend")))
            .await
            .unwrap();
    }
    // A second write to one stream: still two streams.
    store
        .put_deployment(deployment("d-shop-prod-000002", "shop", Some("prod"), None))
        .await
        .unwrap();
    let stale = store.staleness().await.unwrap();
    assert_eq!(stale.streams, 2);
    let age = stale.oldest_mark_age.expect("an age while marks wait");
    // By the database's clock, since the first write: never negative, never a day.
    assert!((-SECOND..86_400 * SECOND).contains(&age), "{age}");
    let mut facts = vec![fact("d-shop-prod-000001", "shop", Some("prod"), vec![5])];
    for stale in store.dirty_streams().await.unwrap() {
        let facts = std::mem::take(&mut facts);
        assert!(store.replace_stream_facts(stale, facts).await.unwrap());
    }
    let derived = store.staleness().await.unwrap();
    assert_eq!((derived.streams, derived.oldest_mark_age), (0, None));
    assert_eq!(derived.days, 1, "the day of the stored fact is to tally");

    let app = spawn_app().await;
    let expected_store = match app.store.kind() {
        "sqlite" | "postgres" => app.store.kind(),
        other => panic!("unknown store kind {other}"),
    };
    app.deploy(crate::helpers::deployment("shop", "prod", 10))
        .await;
    let status = app
        .call(
            reqwest::Method::GET,
            "/api/v1/status",
            Some(&app.read),
            None,
        )
        .await;
    assert_eq!(status.status, 200, "{}", status.body);
    let status: dora_server::native::status::Status = serde_json::from_value(status.body).unwrap();
    assert_eq!(status.store, expected_store);
    // The background refresh may have derived it already; a metric read surely has.
    assert!(status.stale_streams <= 1, "{status:?}");
    assert_eq!(
        status.oldest_stale_write_age_s.is_some(),
        status.stale_streams > 0
    );
    let metrics = app.get("/api/v1/metrics?service=shop").await;
    assert_eq!(metrics.status, 200, "{}", metrics.body);
    let status: dora_server::native::status::Status =
        serde_json::from_value(app.get("/api/v1/status").await.body).unwrap();
    assert_eq!(
        (
            status.stale_streams,
            status.oldest_stale_write_age_s,
            status.stale_days
        ),
        (0, None, 0),
        "{status:?}"
    );
    // Read scope: no token is 401.
    let anonymous = app
        .client
        .get(format!("{}/api/v1/status", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

/// Which of a stream's deployments the stored facts say failed.
async fn failed_ids(store: &dyn Store, stream: &StreamKey) -> Vec<String> {
    let facts = store.stream_facts(stream).await.unwrap();
    facts
        .into_iter()
        .filter(|f| f.failed)
        .map(|f| f.id)
        .collect()
}

async fn a_new_failure_is_blamed_by_look_ups() {
    let (store, _data) = spawn_store().await;
    let store = store.as_ref();
    let refresher = Refresher::default();
    let refresh = || derivation::refresh(store, DEFAULT_FAILURE_WINDOW, &refresher);
    let shop = stream("shop", Some("prod"));
    let at = |hours: i64, id: &str, version: &str| Deployment {
        version: Some(version.into()),
        finished_at: (JAN1 + hours * HOUR) * SECOND,
        ..deployment(id, "shop", Some("prod"), Some("backend"))
    };
    for d in [at(0, "d1", "v1"), at(2, "d2", "v2"), at(4, "d3", "v3")] {
        store.put_deployment(d).await.unwrap();
    }
    refresh().await.unwrap();
    let derived = refresher.derivations();
    assert!(failed_ids(store, &shop).await.is_empty());

    // An hour after d1 (in its window): blamed on d1, with no derivation.
    store
        .put_failure(failure("f1", &["shop"], None, Some("prod")))
        .await
        .unwrap();
    let marks = store.dirty_streams().await.unwrap();
    assert!(
        marks.iter().all(|m| m.only_failures && !m.history),
        "{marks:?}"
    );
    assert_eq!(store.marked_failures(&marks[0]).await.unwrap(), ["f1"]);
    refresh().await.unwrap();
    assert_eq!(refresher.blamed(), 1);
    assert_eq!(failed_ids(store, &shop).await, ["d1"]);
    // Naming v3 but starting before it: the earliest deployment of v3 after it.
    let names_v3 = Failure {
        version: Some("v3".into()),
        ..failure("f2", &["shop"], None, Some("prod"))
    };
    store.put_failure(names_v3).await.unwrap();
    // Before d1: no deployment in its window, so nothing fails.
    let before = Failure {
        started_at: JAN1 * SECOND - HOUR * SECOND,
        ..failure("f3", &["shop"], None, Some("prod"))
    };
    store.put_failure(before).await.unwrap();
    refresh().await.unwrap();
    assert_eq!(refresher.blamed(), 2);
    assert_eq!(failed_ids(store, &shop).await, ["d1", "d3"]);
    assert_eq!(refresher.derivations(), derived, "no stream was derived");

    // A replacement may move the failure away from where it was blamed: that stream is
    // derived again.
    let moved = Failure {
        started_at: (JAN1 + 3 * HOUR) * SECOND,
        ..failure("f1", &["shop"], None, Some("prod"))
    };
    store.put_failure(moved).await.unwrap();
    assert!(!store.dirty_streams().await.unwrap()[0].only_failures);
    refresh().await.unwrap();
    assert_eq!(failed_ids(store, &shop).await, ["d2", "d3"]);
    assert_ne!(refresher.derivations(), derived);

    // Blames read before a write that changed the stream's past are not stored.
    store
        .put_failure(failure("f4", &["shop"], None, Some("prod")))
        .await
        .unwrap();
    let read = store.dirty_streams().await.unwrap().remove(0);
    store.delete_deployment("d1").await.unwrap();
    assert!(!store
        .store_blames(read, vec!["d1".to_string()])
        .await
        .unwrap());
    refresh().await.unwrap();
    assert_eq!(failed_ids(store, &shop).await, ["d2", "d3"]);
    assert!(store.dirty_streams().await.unwrap().is_empty());
}

conformance!(
    a_new_failure_is_blamed_by_look_ups,
    every_write_stales_the_streams_it_can_change,
    a_re_derivation_overtaken_by_a_write_is_not_stored,
    stored_facts_are_read_by_range_tier_project_group_and_query,
    a_failure_moves_to_the_deployment_closer_to_it,
    day_tallies_follow_the_facts,
    status_counts_what_is_still_to_derive,
);
