//! Two `dorametrics serve` processes on one PostgreSQL database behave as one server: what one
//! node acknowledges the other reads at once, tokens work on both, racing writes of one id end
//! as one whole event, and losing a node mid-intake loses no acknowledged write.
//!
//! Runs when `DORA_TEST_POSTGRES_URL` names a PostgreSQL server (each test creates a fresh
//! database there and drops it afterwards); without it every test passes without running.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use support::postgres::{server_url, TestDatabase};
use support::{create_token, Server};

/// A fresh database on the test server, or `None` (and a note) when there is none.
async fn fresh_database() -> Option<TestDatabase> {
    match server_url() {
        Some(server) => Some(TestDatabase::create(&server).await),
        None => None,
    }
}

/// Starts two nodes on `database` at the same moment (so both migrate a fresh database at once).
fn start_two(database: &str) -> (Server, Server) {
    std::thread::scope(|scope| {
        let a = scope.spawn(|| Server::start(database));
        let b = scope.spawn(|| Server::start(database));
        (
            a.join().expect("node A starts"),
            b.join().expect("node B starts"),
        )
    })
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// One node as a client sees it.
#[derive(Clone)]
struct Node {
    name: &'static str,
    base: String,
    client: reqwest::Client,
}

impl Node {
    fn new(name: &'static str, server: &Server) -> Node {
        Node {
            name,
            base: server.base.clone(),
            client: client(),
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value), reqwest::Error> {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("DD-API-KEY", token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.send(method.clone(), path, token, body)
            .await
            .unwrap_or_else(|e| panic!("node {}: {method} {path}: {e}", self.name))
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, token, None).await
    }

    /// Posts a deployment; asserts the 202.
    async fn deploy(&self, token: &str, attributes: Value) {
        let (status, body) = self
            .post(
                "/api/v2/dora/deployment",
                token,
                json!({"data": {"attributes": attributes}}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "node {}: {body}", self.name);
    }

    /// The events a list (`kind`: `deployments` or `failures`) returns for `query`.
    async fn list(&self, kind: &str, token: &str, query: &str) -> Vec<Value> {
        let (status, body) = self
            .post(
                &format!("/api/v2/dora/{kind}"),
                token,
                json!({"data": {"type": format!("dora_{kind}_list_request"),
                    "attributes": {"query": query, "limit": 1000}}}),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "node {}: {query}: {body}",
            self.name
        );
        body["data"].as_array().unwrap().clone()
    }

    async fn list_ids(&self, kind: &str, token: &str, query: &str) -> Vec<String> {
        self.list(kind, token, query)
            .await
            .iter()
            .map(|event| event["id"].as_str().unwrap().to_string())
            .collect()
    }
}

/// A deployment finishing `minutes` after 2025-01-01T00:00:00Z.
fn deployment(id: &str, service: &str, version: &str, minutes: i64, tags: &[String]) -> Value {
    let finished = 1_735_689_600 + minutes * 60;
    json!({
        "id": id, "service": service, "env": "production", "team": "multinode", "version": version,
        "started_at": finished - 30, "finished_at": finished,
        "git": {"repository_url": "https://github.com/acme/multinode",
                "commit_sha": format!("{:040x}", minutes)},
        "custom_tags": tags,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_one_node_writes_the_other_reads_at_once() {
    let Some(database) = fresh_database().await else {
        return;
    };
    let (server_a, server_b) = start_two(&database.url);
    let (a, b) = (Node::new("A", &server_a), Node::new("B", &server_b));
    let first_tokens = [&server_a, &server_b]
        .iter()
        .filter(|server| {
            server
                .startup
                .join("\n")
                .contains("Created the first admin token")
        })
        .count();
    println!("nodes that printed a first admin token: {first_tokens}");
    assert!(first_tokens >= 1, "no node created the first admin token");

    // Tokens created by the CLI while both nodes run work on both at once.
    let admin = create_token(&database.url, "admin");
    let read = create_token(&database.url, "dora_metrics_read");
    let write = create_token(&database.url, "dora_metrics_write");
    for node in [&a, &b] {
        node.list_ids("deployments", &read, "").await;
        node.list_ids("deployments", &admin, "").await;
        let list = json!({"data": {"type": "dora_deployments_list_request", "attributes": {}}});
        let (status, _) = node.post("/api/v2/dora/deployments", &write, list).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "node {}", node.name);
        let id = format!("token-check-{}-0001", node.name);
        let attributes = deployment(&id, "token-check", "v1", 0, &[]);
        let (status, _) = node
            .post(
                "/api/v2/dora/deployment",
                &read,
                json!({"data": {"attributes": attributes}}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "node {}", node.name);
        node.deploy(&write, attributes).await;
        let (status, _) = node
            .get(&format!("/api/v2/dora/deployments/{id}"), &admin)
            .await;
        assert_eq!(status, StatusCode::OK, "node {}", node.name);
    }

    // Deployments: written through one node, read (get and list) through the other right away.
    for round in 0..20_i64 {
        let (writer, reader) = if round % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let id = format!("cross-node-{round:06}");
        let service = format!("cross-{round}");
        let tags = [format!("writer:{}", writer.name)];
        writer
            .deploy(&write, deployment(&id, &service, "v1", round, &tags))
            .await;
        let (status, body) = reader
            .get(&format!("/api/v2/dora/deployments/{id}"), &read)
            .await;
        assert_eq!(status, StatusCode::OK, "{id} via {}: {body}", reader.name);
        assert_eq!(body["data"]["attributes"]["service"], service.as_str());
        assert_eq!(
            reader
                .list_ids("deployments", &read, &format!("service:{service}"))
                .await,
            std::slice::from_ref(&id),
            "{id} listed via {}",
            reader.name
        );
        // Replaced through the reader: the writer sees the new version, and only it.
        reader
            .deploy(&write, deployment(&id, &service, "v2", round, &tags))
            .await;
        let (_, body) = writer
            .get(&format!("/api/v2/dora/deployments/{id}"), &read)
            .await;
        assert_eq!(body["data"]["attributes"]["version"], "v2");
        assert!(writer
            .list_ids(
                "deployments",
                &read,
                &format!("service:{service} version:v1")
            )
            .await
            .is_empty());
    }
    for node in [&a, &b] {
        assert_eq!(
            node.list_ids("deployments", &admin, "service:cross-*")
                .await
                .len(),
            20
        );
    }

    // A PATCH through B of a deployment written through A, seen through A.
    a.deploy(
        &write,
        deployment("patched-on-b-0001", "patch", "v1", 100, &[]),
    )
    .await;
    let (status, body) = b
        .call(
            reqwest::Method::PATCH,
            "/api/v2/dora/deployments/patched-on-b-0001",
            &write,
            Some(json!({"data": {"type": "dora_deployment_patch_request",
                "attributes": {"change_failure": true}}})),
        )
        .await;
    assert!(status.is_success(), "{status}: {body}");
    // Reads do not show PATCH data: ask the database itself.
    let store = dora_store::open(&database.url).await.unwrap();
    let patched = store.get_deployment("patched-on-b-0001").await.unwrap();
    assert_eq!(patched.unwrap().change_failure, Some(true));
    drop(store);

    // A failure opened through A, resolved through B, read resolved through A.
    let failure = json!({"id": "incident-multinode-1", "name": "split brain", "services": ["cross"],
        "env": "production", "started_at": 1_735_689_600});
    let (status, _) = a
        .post(
            "/api/v2/dora/failure",
            &write,
            json!({"data": {"attributes": failure}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let mut resolved = failure.clone();
    resolved["finished_at"] = json!(1_735_693_200);
    let (status, _) = b
        .post(
            "/api/v2/dora/failure",
            &write,
            json!({"data": {"attributes": resolved}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, body) = a
        .get("/api/v2/dora/failures/incident-multinode-1", &read)
        .await;
    assert_eq!(
        body["data"]["attributes"]["finished_at"], "2025-01-01T01:00:00Z",
        "{body}"
    );
    assert_eq!(
        b.list_ids("failures", &read, "service:cross").await,
        ["incident-multinode-1"]
    );

    // Deleted through one node: gone through the other.
    for (deleter, other, id) in [(&a, &b, "cross-node-000001"), (&b, &a, "cross-node-000002")] {
        let (status, _) = deleter
            .call(
                reqwest::Method::DELETE,
                &format!("/api/v2/dora/deployment/{id}"),
                &write,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let (status, _) = other
            .get(&format!("/api/v2/dora/deployments/{id}"), &read)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{id} via {}", other.name);
        assert_eq!(
            other
                .list_ids("deployments", &read, "service:cross-*")
                .await
                .iter()
                .filter(|listed| *listed == id)
                .count(),
            0
        );
    }
    let (status, _) = b
        .call(
            reqwest::Method::DELETE,
            "/api/v2/dora/failure/incident-multinode-1",
            &write,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(a.list_ids("failures", &read, "").await.is_empty());
    drop((server_a, server_b));
    drop(database);
}

/// Nodes of a fresh installation started together: the first admin token is created once, not
/// once per node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_through_one_node_is_refused_by_the_other_at_once() {
    let Some(database) = fresh_database().await else {
        return;
    };
    let (server_a, server_b) = start_two(&database.url);
    let (a, b) = (Node::new("A", &server_a), Node::new("B", &server_b));
    let admin = create_token(&database.url, "admin");
    let (status, created) = a
        .post(
            "/api/v1/admin/tokens",
            &admin,
            json!({"name": "short-lived", "scopes": ["dora_metrics_read"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let token = created["token"].as_str().unwrap();
    let id = created["id"].as_str().unwrap();
    assert_eq!(b.get("/api/v1/projects", token).await.0, StatusCode::OK);
    let (status, _) = a
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/admin/tokens/{id}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for node in [&b, &a] {
        assert_eq!(
            node.get("/api/v1/projects", token).await.0,
            StatusCode::UNAUTHORIZED,
            "node {}",
            node.name
        );
    }
    drop((server_a, server_b));
    drop(database);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_create_one_first_admin_token() {
    for _ in 0..5 {
        let Some(database) = fresh_database().await else {
            return;
        };
        let (server_a, server_b) = start_two(&database.url);
        let printed = [&server_a, &server_b]
            .iter()
            .filter(|server| {
                server
                    .startup
                    .join("\n")
                    .contains("Created the first admin token")
            })
            .count();
        assert_eq!(
            printed, 1,
            "first admin tokens created by two nodes at once"
        );
        drop((server_a, server_b));
        drop(database);
    }
}

const RACE_ROUNDS: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writes_of_one_id_through_both_nodes_end_as_one_event() {
    let Some(database) = fresh_database().await else {
        return;
    };
    let (server_a, server_b) = start_two(&database.url);
    let (a, b) = (Node::new("A", &server_a), Node::new("B", &server_b));
    let token = create_token(&database.url, "admin");

    let version = |round: usize, node: &str| format!("race-{round}-{node}");
    let attributes = |round: usize, node: &str| {
        deployment(
            &format!("race-multinode-{round:04}"),
            "race",
            &version(round, node),
            round as i64,
            &["suite:race".to_string(), format!("node:{node}")],
        )
    };
    for round in 0..RACE_ROUNDS {
        // Both nodes get a different version of the same id at the same moment.
        tokio::join!(
            a.deploy(&token, attributes(round, "A")),
            b.deploy(&token, attributes(round, "B")),
        );
    }

    let events = a.list("deployments", &token, "suite:race").await;
    let ids: BTreeSet<&str> = events
        .iter()
        .map(|event| event["id"].as_str().unwrap())
        .collect();
    assert_eq!(events.len(), RACE_ROUNDS, "one event per id");
    assert_eq!(ids.len(), RACE_ROUNDS, "one event per id");
    let mut losers = Vec::new();
    let mut winners = BTreeMap::<&str, usize>::new();
    for round in 0..RACE_ROUNDS {
        let id = format!("race-multinode-{round:04}");
        let (_, through_a) = a
            .get(&format!("/api/v2/dora/deployments/{id}"), &token)
            .await;
        let (_, through_b) = b
            .get(&format!("/api/v2/dora/deployments/{id}"), &token)
            .await;
        assert_eq!(through_a, through_b, "{id}: the nodes disagree");
        let stored = &through_a["data"]["attributes"];
        let winner = if stored["version"] == version(round, "A") {
            "A"
        } else {
            "B"
        };
        let loser = if winner == "A" { "B" } else { "A" };
        *winners.entry(winner).or_default() += 1;
        // Whole: every attribute from the winner's version.
        let sent = attributes(round, winner);
        assert_eq!(stored["version"], sent["version"], "{id}");
        assert_eq!(stored["custom_tags"], sent["custom_tags"], "{id}");
        // Searchable by the winner's attributes, through either node.
        for node in [&a, &b] {
            assert_eq!(
                node.list_ids(
                    "deployments",
                    &token,
                    &format!("version:{} node:{winner}", version(round, winner))
                )
                .await,
                std::slice::from_ref(&id),
                "{id} via {}",
                node.name
            );
        }
        losers.push(version(round, loser));
    }
    // By no loser's version: one query for all of them, on each node.
    let stale = format!("version:({})", losers.join(" OR "));
    for node in [&a, &b] {
        assert!(node
            .list_ids("deployments", &token, &stale)
            .await
            .is_empty());
        let by_tag = node.list_ids("deployments", &token, "node:A").await.len()
            + node.list_ids("deployments", &token, "node:B").await.len();
        assert_eq!(by_tag, RACE_ROUNDS, "stale node: tags via {}", node.name);
    }
    println!("race winners: {winners:?}");
    drop((server_a, server_b));
    drop(database);
}

const KILL_WRITERS: usize = 8;
/// Events per `chunk:` tag, so that one list call (limit 1000) returns a whole chunk.
const CHUNK: usize = 500;

fn kill_attributes(writer: usize, seq: usize) -> Value {
    let tags = [
        "suite:kill".to_string(),
        format!("writer:{writer}"),
        format!("chunk:{}", seq / CHUNK),
    ];
    deployment(
        &format!("multinode-kill-{writer:02}-{seq:07}"),
        &format!("svc-{writer}"),
        &format!("v{seq}"),
        (writer * 1_000_000 + seq) as i64,
        &tags,
    )
}

/// Writes node A acknowledges before it is killed.
const KILL_BEFORE: usize = 50;

/// Polls the intake until `done` holds; a test timeout (not this) bounds a stuck run.
async fn wait_for(intake: &Mutex<Intake>, what: &str, done: impl Fn(&Intake) -> bool) {
    let mut polls = 0u64;
    loop {
        if done(&intake.lock().unwrap_or_else(PoisonError::into_inner)) {
            return;
        }
        polls += 1;
        if polls.is_multiple_of(1000) {
            eprintln!("still waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[derive(Default)]
struct Intake {
    /// `(writer, seq)` of every write a node answered with a 2xx.
    acknowledged: Vec<(usize, usize)>,
    /// When (since the start) the survivor (B) acknowledged a write, and for which writer.
    survivor_acks: Vec<(Duration, usize)>,
    /// Anything but a 2xx from the survivor.
    survivor_failures: Vec<String>,
    /// Writes node A acknowledged.
    acknowledged_by_a: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_killed_mid_intake_loses_no_acknowledged_write() {
    let Some(database) = fresh_database().await else {
        return;
    };
    let (server_a, server_b) = start_two(&database.url);
    let (a, b) = (Node::new("A", &server_a), Node::new("B", &server_b));
    let token = create_token(&database.url, "admin");
    let intake: Arc<Mutex<Intake>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();

    // Writers spread over both nodes; those on A move to B (as a load balancer would) once A
    // stops answering.
    let mut writers = Vec::new();
    for writer in 0..KILL_WRITERS {
        let (a, b, token, intake, stop) = (
            a.clone(),
            b.clone(),
            token.clone(),
            Arc::clone(&intake),
            Arc::clone(&stop),
        );
        writers.push(tokio::spawn(async move {
            let mut on_a = writer % 2 == 0;
            let mut seq = 0;
            while !stop.load(Ordering::Relaxed) {
                let node = if on_a { &a } else { &b };
                let sent = node
                    .send(
                        reqwest::Method::POST,
                        "/api/v2/dora/deployment",
                        &token,
                        Some(json!({"data": {"attributes": kill_attributes(writer, seq)}})),
                    )
                    .await;
                let mut intake = intake.lock().unwrap_or_else(PoisonError::into_inner);
                match sent {
                    Ok((status, _)) if status.is_success() => {
                        intake.acknowledged.push((writer, seq));
                        if on_a {
                            intake.acknowledged_by_a += 1;
                        } else {
                            intake.survivor_acks.push((start.elapsed(), writer));
                        }
                    }
                    Ok((status, body)) if !on_a => intake
                        .survivor_failures
                        .push(format!("writer {writer} seq {seq}: {status} {body}")),
                    Ok((status, body)) => panic!("node A answered {status}: {body}"),
                    Err(_) if on_a => on_a = false, // A is gone: over to B
                    Err(error) => intake
                        .survivor_failures
                        .push(format!("writer {writer} seq {seq}: {error}")),
                }
                seq += 1;
            }
        }));
    }
    // Counts, not time: kill A once it has acknowledged writes, stop once B has acknowledged
    // writes from every writer after the kill (those moved over from A included).
    wait_for(&intake, "node A to acknowledge writes", |i| {
        i.acknowledged_by_a >= KILL_BEFORE
    })
    .await;
    let killed_at = start.elapsed();
    server_a.kill();
    wait_for(
        &intake,
        "node B to acknowledge every writer after the kill",
        |i| {
            (0..KILL_WRITERS).all(|w| {
                i.survivor_acks
                    .iter()
                    .any(|(at, by)| *by == w && *at > killed_at)
            })
        },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    let intake = std::mem::take(&mut *intake.lock().unwrap());

    assert!(
        intake.survivor_failures.is_empty(),
        "the surviving node failed {} writes, e.g. {:?}",
        intake.survivor_failures.len(),
        &intake.survivor_failures[..intake.survivor_failures.len().min(5)]
    );
    let after_kill = intake
        .survivor_acks
        .iter()
        .filter(|(at, _)| *at > killed_at)
        .count();

    // Every acknowledged write is there, whole, read through the survivor.
    let mut expected: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    for (writer, seq) in &intake.acknowledged {
        expected.entry(*writer).or_default().insert(*seq);
    }
    let mut present = 0;
    let mut lost = Vec::new();
    for (writer, seqs) in &expected {
        let last_chunk = seqs.iter().max().unwrap() / CHUNK;
        let mut found = BTreeSet::new();
        for chunk in 0..=last_chunk {
            let query = format!("suite:kill writer:{writer} chunk:{chunk}");
            for event in b.list("deployments", &token, &query).await {
                let id = event["id"].as_str().unwrap();
                let seq: usize = id.rsplit('-').next().unwrap().parse().unwrap();
                let sent = kill_attributes(*writer, seq);
                let got = &event["attributes"];
                for key in ["service", "version", "team", "custom_tags"] {
                    assert_eq!(got[key], sent[key], "{id}: {key}");
                }
                assert_eq!(got["git"]["commit_sha"], sent["git"]["commit_sha"], "{id}");
                found.insert(seq);
            }
        }
        present += found.len();
        lost.extend(seqs.difference(&found).map(|seq| (*writer, *seq)));
    }
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    println!(
        "acknowledged {} writes ({} by A before its SIGKILL at {killed_at:?}, {after_kill} by B \
         after it); {present} present afterwards",
        intake.acknowledged.len(),
        intake.acknowledged_by_a,
    );
    drop(server_b);
    drop(database);
}
