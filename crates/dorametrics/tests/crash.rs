//! Every write that got a 2xx survives a SIGKILL of the server, and none is half-written.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use support::{create_token, Server};

const WRITERS: usize = 16;
/// Each writer stops here so that one list call (limit 1000) sees all of its events.
const MAX_PER_WRITER: usize = 900;

fn attributes(writer: usize, seq: usize) -> Value {
    let finished = 1_735_689_600 + (writer * MAX_PER_WRITER + seq) as i64;
    json!({
        "id": format!("crash-{writer:02}-{seq:07}"),
        "service": format!("svc-{writer}"),
        "env": "production",
        "team": "durability",
        "version": format!("v{seq}"),
        "started_at": finished - 10,
        "finished_at": finished,
        "git": {"repository_url": "https://github.com/acme/crash", "commit_sha": format!("{:040x}", writer * 1_000_000 + seq)},
        "custom_tags": [format!("writer:{writer}"), format!("seq:{seq}"), "suite:crash"]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("crash.db").display());
    let token = create_token(&database, "admin");
    let server = Server::start(&database);
    let base = server.base.clone();
    let client = reqwest::Client::new();
    let acknowledged: Arc<Mutex<Vec<(usize, usize)>>> = Arc::default();

    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let (client, base, token, acknowledged) = (
            client.clone(),
            base.clone(),
            token.clone(),
            Arc::clone(&acknowledged),
        );
        writers.push(tokio::spawn(async move {
            for seq in 0..MAX_PER_WRITER {
                let sent = client
                    .post(format!("{base}/api/v2/dora/deployment"))
                    .header("DD-API-KEY", &token)
                    .json(&json!({"data": {"attributes": attributes(writer, seq)}}))
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status().is_success() => {
                        acknowledged.lock().unwrap().push((writer, seq))
                    }
                    Ok(response) => panic!(
                        "unexpected status {}: {:?}",
                        response.status(),
                        response.text().await
                    ),
                    Err(_) => return, // the server is gone
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill();
    for writer in writers {
        writer.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 100,
        "only {} writes before the kill",
        acknowledged.len()
    );
    assert!(
        acknowledged.len() < WRITERS * MAX_PER_WRITER,
        "the kill came after the last write"
    );

    let server = Server::start(&database);
    let mut present: HashMap<usize, HashSet<usize>> = HashMap::new();
    for writer in 0..WRITERS {
        let reply: Value = client
            .post(format!("{}/api/v2/dora/deployments", server.base))
            .header("DD-API-KEY", &token)
            .json(&json!({"data": {"type": "dora_deployments_list_request",
                "attributes": {"query": format!("writer:{writer} suite:crash"), "limit": 1000}}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for event in reply["data"].as_array().unwrap() {
            // Whatever is there is whole: every attribute as sent.
            let seq: usize = event["id"].as_str().unwrap()[9..].parse().unwrap();
            let sent = attributes(writer, seq);
            let got = &event["attributes"];
            assert_eq!(got["service"], sent["service"]);
            assert_eq!(got["version"], sent["version"]);
            assert_eq!(got["team"], sent["team"]);
            assert_eq!(got["custom_tags"], sent["custom_tags"]);
            assert_eq!(got["git"]["commit_sha"], sent["git"]["commit_sha"]);
            present.entry(writer).or_default().insert(seq);
        }
    }
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|(writer, seq)| !present.get(writer).is_some_and(|seqs| seqs.contains(seq)))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    let total: usize = present.values().map(HashSet::len).sum();
    println!(
        "acknowledged {} writes before SIGKILL; {} present after restart (the rest were in flight)",
        acknowledged.len(),
        total
    );
}
