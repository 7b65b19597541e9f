//! The load driver: requests over an exact number of keep-alive connections, with each
//! request's latency.

use std::io::{BufRead, BufReader};
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use reqwest::{Client, Method};
use serde_json::Value;
use tokio::sync::{mpsc, Mutex};

/// A client that keeps at most one idle connection: one task using it sequentially holds
/// exactly one keep-alive connection.
pub fn client(timeout: Duration) -> Result<Client> {
    Client::builder()
        .pool_max_idle_per_host(1)
        .no_proxy()
        .tcp_nodelay(true)
        .timeout(timeout)
        .build()
        .context("cannot build the HTTP client")
}

/// Where the server is and the token to use.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub token: String,
}

/// What one intake phase measured.
pub struct Intake {
    pub events: usize,
    pub elapsed: Duration,
    /// One per request, in microseconds.
    pub latencies: Vec<u64>,
}

impl Intake {
    pub fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// One request of a phase: where it goes and its body.
pub struct Item {
    pub path: Arc<str>,
    pub body: Bytes,
}

/// Sends `items[range]` once each, as `connections` tasks with one connection each, taking the
/// next item as soon as their previous answer arrived. Any answer but 2xx stops the phase.
pub async fn send_each(
    api: &Api,
    method: Method,
    items: Arc<Vec<Item>>,
    range: Range<usize>,
    connections: usize,
) -> Result<Intake> {
    let next = Arc::new(AtomicUsize::new(range.start));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections.max(1) {
        let (api, method, items, next) = (api.clone(), method.clone(), items.clone(), next.clone());
        let end = range.end;
        tasks.push(tokio::spawn(async move {
            let client = client(Duration::from_secs(600))?;
            let mut latencies = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= end {
                    return Ok::<_, anyhow::Error>(latencies);
                }
                let item = &items[index];
                let sent = Instant::now();
                let response = client
                    .request(method.clone(), format!("{}{}", api.base, item.path))
                    .header("DD-API-KEY", &api.token)
                    .header("Content-Type", "application/json")
                    .body(item.body.clone())
                    .send()
                    .await?;
                let status = response.status();
                let text = response.bytes().await?;
                latencies.push(sent.elapsed().as_micros() as u64);
                if !status.is_success() {
                    bail!(
                        "{method} {} answered {status}: {}",
                        item.path,
                        String::from_utf8_lossy(&text)
                    );
                }
            }
        }));
    }
    let mut latencies = Vec::with_capacity(range.len());
    for task in tasks {
        latencies.extend(task.await??);
    }
    Ok(Intake {
        events: range.len(),
        elapsed: started.elapsed(),
        latencies,
    })
}

/// Reads an NDJSON file into one request per line.
pub fn read_lines(path: &Path, url_path: &str) -> Result<Vec<Item>> {
    let url_path: Arc<str> = Arc::from(url_path);
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut items = Vec::new();
    for line in BufReader::with_capacity(1 << 20, file).lines() {
        let line = line?;
        if !line.trim().is_empty() {
            items.push(Item {
                path: url_path.clone(),
                body: Bytes::from(line),
            });
        }
    }
    Ok(items)
}

/// Posts an NDJSON file, from its line `skip` on, in batches of `batch` lines over
/// `connections` connections (bulk intake); events are lines, latencies are per batch.
pub async fn post_ndjson_file(
    api: &Api,
    path: &Path,
    skip: usize,
    url_path: &str,
    batch: usize,
    connections: usize,
) -> Result<Intake> {
    let (sender, receiver) = mpsc::channel::<(usize, Bytes)>(connections * 2);
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let started = Instant::now();
    let reader = std::thread::spawn(move || -> Result<()> {
        let mut lines = BufReader::with_capacity(1 << 20, file).lines().skip(skip);
        loop {
            let mut body = Vec::with_capacity(batch * 320);
            let mut count = 0;
            for line in lines.by_ref().take(batch) {
                body.extend_from_slice(line?.as_bytes());
                body.push(b'\n');
                count += 1;
            }
            if count == 0 {
                return Ok(());
            }
            if sender.blocking_send((count, Bytes::from(body))).is_err() {
                return Ok(());
            }
        }
    });
    let receiver = Arc::new(Mutex::new(receiver));
    let mut tasks = Vec::new();
    for _ in 0..connections.max(1) {
        let (api, receiver) = (api.clone(), receiver.clone());
        let url = format!("{}{url_path}", api.base);
        tasks.push(tokio::spawn(async move {
            let client = client(Duration::from_secs(3600))?;
            let (mut events, mut latencies) = (0usize, Vec::new());
            loop {
                let Some((count, body)) = receiver.lock().await.recv().await else {
                    return Ok::<_, anyhow::Error>((events, latencies));
                };
                let sent = Instant::now();
                let response = client
                    .post(&url)
                    .header("DD-API-KEY", &api.token)
                    .header("Content-Type", "application/x-ndjson")
                    .body(body)
                    .send()
                    .await?;
                let status = response.status();
                let text = response.text().await?;
                latencies.push(sent.elapsed().as_micros() as u64);
                if !status.is_success() {
                    bail!("POST {url} answered {status}: {text}");
                }
                events += count;
            }
        }));
    }
    let (mut events, mut latencies) = (0, Vec::new());
    for task in tasks {
        let (e, l) = task.await??;
        events += e;
        latencies.extend(l);
    }
    reader
        .join()
        .map_err(|_| anyhow::anyhow!("the file reader panicked"))??;
    Ok(Intake {
        events,
        elapsed: started.elapsed(),
        latencies,
    })
}

/// Whether a request failed because it took longer than the client's timeout.
pub fn is_timeout(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<reqwest::Error>()
            .is_some_and(reqwest::Error::is_timeout)
    })
}

/// One read request's JSON answer and how long it took.
pub async fn fetch(
    client: &Client,
    api: &Api,
    method: Method,
    path_and_query: &str,
    body: Option<&Value>,
) -> Result<(Value, Duration)> {
    let sent = Instant::now();
    let mut request = client
        .request(method.clone(), format!("{}{path_and_query}", api.base))
        .header("DD-API-KEY", &api.token);
    if let Some(body) = body {
        request = request
            .header("Content-Type", "application/json")
            .body(serde_json::to_vec(body)?);
    }
    let response = request.send().await?;
    let status = response.status();
    let bytes = response.bytes().await?;
    let elapsed = sent.elapsed();
    if !status.is_success() {
        bail!(
            "{method} {path_and_query} answered {status}: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
    let value = serde_json::from_slice(&bytes)
        .with_context(|| format!("{method} {path_and_query} did not answer JSON"))?;
    Ok((value, elapsed))
}
