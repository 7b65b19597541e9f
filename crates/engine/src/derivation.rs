//! Loads what the pure derivations of `dora_core::derive` need for one deployment — its stream
//! (same service and env), its repository's commits, the failures that may concern it — and
//! runs them. Derived on read, so the answer never depends on the order events arrived in.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dora_core::derive::{
    attribute_failure, change_sets, concerns, stream_verdicts, ChangeSet, CommitGraph, FailureRule,
    FailureScope, Named, Verdict,
};
use dora_core::metrics::Counted;
use dora_core::metrics::{DeploymentFact, FailureFact};
use dora_core::model::{Failure, ListQuery, Sort, SortField, StoredDeployment};
use dora_core::project;
use dora_core::query::Query;
use dora_core::rollup;
use dora_core::tier::{self, EnvTiers, Tier};
use dora_core::time::Nanos;
use dora_store::{DirtyStream, FactQuery, Store, StoreResult, StreamHead, StreamKey, TallyQuery};

use crate::changes::{self, GraphCache, LeadTimes};

/// Every event a selection matches, oldest first.
fn everything(filter: Query, field: SortField) -> ListQuery {
    ListQuery {
        from: None,
        to: None,
        limit: u32::MAX,
        filter,
        sort: Sort {
            field,
            descending: false,
        },
    }
}

/// The deployments of one service to one env, in finish order.
pub async fn stream_of(
    store: &dyn Store,
    d: &StoredDeployment,
) -> StoreResult<Vec<StoredDeployment>> {
    store.stream_deployments(&stream_key(d)).await
}

fn stream_key(d: &StoredDeployment) -> StreamKey {
    StreamKey {
        service: d.deployment.service.clone(),
        env: d.deployment.env.clone(),
    }
}

/// The change set of one deployment.
pub async fn change_set(store: &dyn Store, d: &StoredDeployment) -> StoreResult<ChangeSet> {
    let stream = stream_of(store, d).await?;
    let commits = match &d.deployment.git {
        Some(git) => store.commits_of(&git.repository_id).await?,
        None => Vec::new(),
    };
    let graph = CommitGraph::new(commits);
    Ok(change_sets(&stream, &graph)
        .into_iter()
        .find(|set| set.deployment_id == d.deployment.id)
        .unwrap_or_else(|| ChangeSet {
            deployment_id: d.deployment.id.clone(),
            baseline_id: None,
            no_baseline: true,
            tip_missing: false,
            commits: Vec::new(),
        }))
}

/// Whether one deployment failed, why, and what remediated it; with the failure events that
/// are evidence.
pub async fn verdict(
    store: &dyn Store,
    d: &StoredDeployment,
    window: Nanos,
) -> StoreResult<(Verdict, Vec<Failure>)> {
    let stream = stream_of(store, d).await?;
    let (verdicts, failures) = verdicts_of(store, &stream, window).await?;
    let verdict = verdicts
        .into_iter()
        .find(|v| v.deployment_id == d.deployment.id)
        .unwrap_or_default();
    let evidence = failures
        .into_iter()
        .filter(|f| verdict.failure_ids.contains(&f.id))
        .collect();
    Ok((verdict, evidence))
}

/// Verdicts of a whole stream, and the failures that concern it.
async fn verdicts_of(
    store: &dyn Store,
    stream: &[StoredDeployment],
    window: Nanos,
) -> StoreResult<(Vec<Verdict>, Vec<Failure>)> {
    let Some(first) = stream.first() else {
        return Ok((Vec::new(), Vec::new()));
    };
    let (verdicts, failures, _) =
        verdicts_and_neighbours(store, &stream_key(first), stream, &[], window).await?;
    let failures = failures
        .into_iter()
        .filter(|f| stream.iter().any(|s| concerns(f, s)))
        .collect();
    Ok((verdicts, failures))
}

/// Verdicts of a whole stream; the failures that concern it, or did when its deployments were
/// of `former_teams` too; and the other streams those failures could be blamed on instead
/// (their verdicts depend on this stream's deployments).
async fn verdicts_and_neighbours(
    store: &dyn Store,
    own: &StreamKey,
    stream: &[StoredDeployment],
    former_teams: &[String],
    window: Nanos,
) -> StoreResult<(Vec<Verdict>, Vec<Failure>, BTreeSet<StreamKey>)> {
    // Failures naming this service or its teams; each is then attributed among all the
    // deployments it could concern, so that it is blamed on one deployment only.
    let mut teams: BTreeSet<&str> = stream
        .iter()
        .filter_map(|d| d.deployment.team.as_deref())
        .collect();
    teams.extend(former_teams.iter().map(String::as_str));
    let team_names: Vec<String> = teams.iter().map(|t| t.to_string()).collect();
    let failures: Vec<Failure> = store
        .failures_naming(&own.service, &team_names)
        .await?
        .into_iter()
        .filter(|f| {
            FailureScope::of(f).concerns(&own.service, own.env.as_deref(), |t| teams.contains(t))
        })
        .collect();
    // Every failure's candidates are read first (each stream once), then borrowed: a stream's
    // failures mostly name the same few streams, whose deployments are not copied per failure.
    let mut others: HashMap<StreamKey, Vec<StoredDeployment>> = HashMap::new();
    let mut sources = Vec::with_capacity(failures.len());
    for failure in &failures {
        let source = candidates_for(store, failure).await?;
        if let Candidates::Streams(keys) = &source {
            for key in keys.iter().filter(|key| *key != own) {
                if !others.contains_key(key) {
                    others.insert(key.clone(), store.stream_deployments(key).await?);
                }
            }
        }
        sources.push(source);
    }
    let deployments_of = |key: &StreamKey| -> &[StoredDeployment] {
        match key == own {
            true => stream,
            false => others.get(key).map_or(&[][..], Vec::as_slice),
        }
    };
    let mut attributed: HashMap<String, Vec<(String, FailureRule)>> = HashMap::new();
    let mut neighbours = BTreeSet::new();
    for (failure, source) in failures.iter().zip(&sources) {
        let candidates: Vec<&StoredDeployment> = match source {
            Candidates::Streams(keys) => {
                let holding = keys.iter().filter(|key| !deployments_of(key).is_empty());
                neighbours.extend(holding.filter(|key| *key != own).cloned());
                keys.iter().flat_map(deployments_of).collect()
            }
            Candidates::Listed(listed) => {
                neighbours.extend(listed.iter().map(stream_key).filter(|key| key != own));
                listed.iter().collect()
            }
        };
        if let Some(attribution) = attribute_failure(failure, &candidates, window) {
            attributed
                .entry(attribution.deployment_id)
                .or_default()
                .push((failure.id.clone(), attribution.rule));
        }
    }
    Ok((stream_verdicts(stream, &attributed), failures, neighbours))
}

/// Which deployments and failures a metric looks at.
#[derive(Debug, Clone)]
pub struct Selection {
    /// Over deployment attributes (service, env, team, version, custom tags, …).
    pub filter: Query,
    /// Empty: every tier.
    pub tiers: Vec<Tier>,
    /// Only deployments of this project path.
    pub project: Option<String>,
    /// Only deployments of projects inside this group path.
    pub group: Option<String>,
}

impl Selection {
    /// Every deployment, of every tier.
    pub fn everything() -> Self {
        Self {
            filter: Query::All,
            tiers: Vec::new(),
            project: None,
            group: None,
        }
    }
}

/// The project path a deployment belongs to.
pub fn project_path(d: &StoredDeployment) -> String {
    project::path_of(
        d.deployment.git.as_ref().map(|g| g.repository_id.as_str()),
        &d.deployment.service,
    )
}

/// How a refresh spends the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// As fast as it can: a read is waiting for it.
    Now,
    /// Beside the writes: after each piece of work it rests four times as long as the piece
    /// took, so that it takes about a fifth of a core from intake — unless a read is waiting
    /// for it, which it then finishes for at full speed.
    Background,
}

/// Who refreshes the facts of one server: one refresh at a time (the background one and those
/// of reads would otherwise all derive the same streams; other nodes are kept apart by the
/// stores' `seq`), and the reads waiting for it, which end a background refresh's rests. Each
/// server owns one: two servers in one process share nothing.
#[derive(Debug, Default)]
pub struct Refresher {
    refreshing: tokio::sync::Mutex<()>,
    /// Reads waiting for a refresh (theirs, or the one running before it).
    reads_waiting: AtomicUsize,
    /// Wakes a resting background refresh when a read starts to wait.
    read_arrived: tokio::sync::Notify,
    /// Streams derived from their head (only appended to) and from scratch.
    from_head: AtomicUsize,
    from_scratch: AtomicUsize,
    /// Streams whose new failures were blamed by look-ups, with no derivation.
    blamed: AtomicUsize,
}

/// Counts one waiting read while it lives (also when the read is dropped while waiting).
struct WaitingRead<'a>(&'a Refresher);

impl<'a> WaitingRead<'a> {
    fn new(refresher: &'a Refresher) -> Self {
        refresher.reads_waiting.fetch_add(1, Ordering::SeqCst);
        refresher.read_arrived.notify_waiters();
        Self(refresher)
    }
}

impl Drop for WaitingRead<'_> {
    fn drop(&mut self) {
        self.0.reads_waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Refresher {
    /// How many stream derivations it stored from a stream's head (only appended to since),
    /// and how many from scratch.
    pub fn derivations(&self) -> (usize, usize) {
        (
            self.from_head.load(Ordering::Relaxed),
            self.from_scratch.load(Ordering::Relaxed),
        )
    }

    /// How many streams it brought up to date by blaming new failures with look-ups alone.
    pub fn blamed(&self) -> usize {
        self.blamed.load(Ordering::Relaxed)
    }

    /// After a piece of work that took `worked`: a background refresh rests, until a read waits.
    async fn rest(&self, pace: Pace, worked: Duration) {
        if pace == Pace::Now {
            return;
        }
        let read_arrived = self.read_arrived.notified();
        if self.reads_waiting.load(Ordering::SeqCst) > 0 {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(worked * 4) => {}
            () = read_arrived => {}
        }
    }
}

/// The name under which the failure window the stored facts were derived with is kept.
const FAILURE_WINDOW_SETTING: &str = "failure_window_ns";

/// Below this many stale streams, a refresh takes them in any order instead of first asking
/// which repository each deploys from (a scan of every deployment).
const FEW_STREAMS: usize = 32;

/// Rounds of one refresh: enough for a failure to move between streams, few enough that a
/// read never chases a stream of writes.
const ROUNDS: usize = 4;

/// Stale days one write transaction tallies again.
const DAYS_PER_WRITE: usize = 8;

/// How often one refresh re-derives a stream that writes keep staling before leaving it to
/// the next refresh.
const ATTEMPTS: usize = 3;

/// Makes the stored facts agree with `window`: when they were derived with another one,
/// every stream is marked stale. Run at startup, before serving.
pub async fn settle_window(store: &dyn Store, window: Nanos) -> StoreResult<()> {
    if store
        .settle_fact_setting(FAILURE_WINDOW_SETTING, window)
        .await?
    {
        tracing::info!(
            window,
            "failure window changed: every stream will be re-derived"
        );
    }
    Ok(())
}

/// The failure window the stored facts were derived with (by a server started with it), when
/// it is not `window`: read as if derived with `window`, they would be wrong.
pub async fn other_window(store: &dyn Store, window: Nanos) -> StoreResult<Option<Nanos>> {
    let stored = store.fact_setting(FAILURE_WINDOW_SETTING).await?;
    Ok(stored.filter(|stored| *stored != window))
}

/// Re-derives the facts of every stale stream (change sets, verdicts) and stores them;
/// returns how many streams it re-derived. Every metric read runs it first, so an answer
/// reflects every write acknowledged before the read; the server also runs it in the
/// background so reads seldom have anything to do.
pub async fn refresh(
    store: &dyn Store,
    window: Nanos,
    refresher: &Refresher,
) -> StoreResult<usize> {
    refresh_at(store, window, refresher, Pace::Now).await
}

/// [`refresh`] at a pace.
pub async fn refresh_at(
    store: &dyn Store,
    window: Nanos,
    refresher: &Refresher,
    pace: Pace,
) -> StoreResult<usize> {
    let _one_at_a_time = match pace {
        Pace::Now => {
            let _waiting = WaitingRead::new(refresher);
            refresher.refreshing.lock().await
        }
        Pace::Background => refresher.refreshing.lock().await,
    };
    let mut count = 0;
    let started = Instant::now();
    // Re-deriving a stream can stale its neighbours (a failure blamed elsewhere now): they
    // are taken in the next round.
    for _ in 0..ROUNDS {
        let dirty = store.dirty_streams().await?;
        if dirty.is_empty() {
            break;
        }
        count += dirty.len();
        rederive_all(store, dirty, window, refresher, pace).await?;
    }
    let derived = started.elapsed();
    // Then the days whose facts changed are tallied again, a few per write transaction so
    // that intake waits little between them.
    let mut days = 0;
    loop {
        let started = Instant::now();
        let tallied = store.refresh_day_tallies(DAYS_PER_WRITE).await?;
        if tallied == 0 {
            break;
        }
        days += tallied;
        refresher.rest(pace, started.elapsed()).await;
    }
    if count > 0 || days > 0 {
        tracing::debug!(
            streams = count,
            derived_s = derived.as_secs_f64(),
            days,
            tallied_s = (started.elapsed() - derived).as_secs_f64(),
            ?pace,
            "refreshed"
        );
    }
    Ok(count)
}

async fn rederive_all(
    store: &dyn Store,
    dirty: Vec<DirtyStream>,
    window: Nanos,
    refresher: &Refresher,
    pace: Pace,
) -> StoreResult<()> {
    let mut dirty = blame_all(store, dirty, window, refresher).await?;
    if dirty.len() > FEW_STREAMS {
        // Streams of one repository in a row, so its history is loaded once.
        let repositories: HashMap<StreamKey, String> =
            store.stream_repositories().await?.into_iter().collect();
        dirty.sort_by(|a, b| {
            (repositories.get(&a.stream), &a.stream).cmp(&(repositories.get(&b.stream), &b.stream))
        });
    }
    let mut graph = GraphCache::default();
    // Streams still to come in this round read the raw events after everything before them:
    // a neighbour among them needs no extra mark.
    let mut pending: HashSet<StreamKey> = dirty.iter().map(|d| d.stream.clone()).collect();
    let (mut batch, mut facts) = (Vec::new(), 0);
    let mut started = Instant::now();
    for stale in dirty {
        pending.remove(&stale.stream);
        let derived = derive(store, stale, window, &mut graph).await?;
        facts += derived.facts.len();
        batch.push(derived);
        if batch.len() >= STREAMS_PER_WRITE || facts >= FACTS_PER_WRITE {
            let derived = std::mem::take(&mut batch);
            store_all(store, derived, window, &mut graph, &pending, refresher).await?;
            refresher.rest(pace, started.elapsed()).await;
            (facts, started) = (0, Instant::now());
        }
    }
    store_all(store, batch, window, &mut graph, &pending, refresher).await
}

/// Streams whose marks all name new failures have current facts but for those failures: each
/// is blamed by look-ups and its deployment failed, all in one write. Returns the streams that
/// need a derivation (other marks, or a failure whose candidates take a query).
async fn blame_all(
    store: &dyn Store,
    dirty: Vec<DirtyStream>,
    window: Nanos,
    refresher: &Refresher,
) -> StoreResult<Vec<DirtyStream>> {
    let mut to_derive = Vec::new();
    let mut blamed = Vec::new();
    for stale in dirty {
        if !stale.only_failures || stale.history {
            to_derive.push(stale);
            continue;
        }
        match stream_blames(store, &stale, window).await? {
            Some(failed) => blamed.push((stale, failed)),
            None => to_derive.push(stale),
        }
    }
    let writes = blamed
        .into_iter()
        .map(|(stale, failed)| store.store_blames(stale, failed));
    // One not stored was marked again meanwhile: the next round takes it.
    let stored = futures_util::future::try_join_all(writes).await?;
    let count = stored.into_iter().filter(|stored| *stored).count();
    refresher.blamed.fetch_add(count, Ordering::Relaxed);
    Ok(to_derive)
}

/// The deployments of a stream that the failures its marks name are blamed on, and that fail
/// for it (not marked stable); `None` when one of them takes a derivation to blame.
async fn stream_blames(
    store: &dyn Store,
    stale: &DirtyStream,
    window: Nanos,
) -> StoreResult<Option<Vec<String>>> {
    let mut failed = Vec::new();
    for id in store.marked_failures(stale).await? {
        // Gone: its removal marked the stream too, and a derivation follows.
        let Some(failure) = store.get_failure(&id).await? else {
            continue;
        };
        let Candidates::Streams(streams) = candidates_for(store, &failure).await? else {
            return Ok(None);
        };
        let (sha, version) = (
            failure.git.as_ref().map(|g| g.commit_sha.as_str()),
            failure.version.as_deref(),
        );
        let mut candidates = Vec::new();
        for stream in &streams {
            let found = store
                .blame_candidates(stream, sha, version, failure.started_at)
                .await?;
            candidates.extend(found);
        }
        let refs: Vec<&StoredDeployment> = candidates.iter().collect();
        let Some(blamed) = attribute_failure(&failure, &refs, window) else {
            continue;
        };
        let fails_here = candidates.iter().find(|d| {
            d.deployment.id == blamed.deployment_id
                && stream_key(d) == stale.stream
                && d.change_failure != Some(false)
        });
        failed.extend(fails_here.map(|d| d.deployment.id.clone()));
    }
    Ok(Some(failed))
}

/// Streams one write transaction stores together (their facts' index pages are written once
/// for all of them, not once per stream), and about the most facts it takes.
const STREAMS_PER_WRITE: usize = 64;
const FACTS_PER_WRITE: usize = 50_000;

/// Stores derived streams, all at once: the writer commits writes queued together in one
/// transaction. A stream a write staled meanwhile is derived again on its own.
async fn store_all(
    store: &dyn Store,
    mut batch: Vec<Derived>,
    window: Nanos,
    graphs: &mut GraphCache,
    pending: &HashSet<StreamKey>,
    refresher: &Refresher,
) -> StoreResult<()> {
    let writes = batch.iter_mut().map(|d| {
        let (facts, head) = (std::mem::take(&mut d.facts), d.head.take());
        store.store_derivation(d.stale.clone(), facts, head)
    });
    let stored = futures_util::future::try_join_all(writes).await?;
    let mut neighbours = BTreeSet::new();
    for (derived, stored) in batch.into_iter().zip(stored) {
        if stored {
            neighbours.extend(derived.stored(refresher, pending));
        } else if let Some(marks) = store.newest_mark(&derived.stale.stream).await? {
            rederive(store, marks, window, graphs, pending, refresher).await?;
        }
    }
    if !neighbours.is_empty() {
        store
            .mark_streams_dirty(neighbours.into_iter().collect())
            .await?;
    }
    Ok(())
}

/// One stream's facts derived from the events a [`DirtyStream`] mark saw, not yet stored.
struct Derived {
    stale: DirtyStream,
    deployments: usize,
    facts: Vec<DeploymentFact>,
    head: Option<StreamHead>,
    from_head: bool,
    /// Its verdicts differ from the stored ones.
    verdicts_moved: bool,
    /// The other streams its failures could be blamed on instead.
    neighbours: BTreeSet<StreamKey>,
    started: Instant,
    /// How long reading the stream, deriving its change sets and its verdicts took.
    read: Duration,
    changes: Duration,
    verdicts: Duration,
}

impl Derived {
    /// Counts it as stored; the neighbours whose verdicts must be looked at again.
    fn stored(self, refresher: &Refresher, pending: &HashSet<StreamKey>) -> Vec<StreamKey> {
        let from = match self.from_head {
            true => &refresher.from_head,
            false => &refresher.from_scratch,
        };
        from.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            service = %self.stale.stream.service,
            env = self.stale.stream.env_text(),
            from_head = self.from_head,
            history = self.stale.history,
            deployments = self.deployments,
            took_ms = self.started.elapsed().as_secs_f64() * 1e3,
            read_ms = self.read.as_secs_f64() * 1e3,
            changes_ms = self.changes.as_secs_f64() * 1e3,
            verdicts_ms = self.verdicts.as_secs_f64() * 1e3,
            "stream derived"
        );
        // A failure blamed here may have been blamed on a neighbour before (or the other way
        // round): their verdicts must be looked at again. They change only when ours did, so
        // this stops.
        match self.verdicts_moved {
            true => self
                .neighbours
                .into_iter()
                .filter(|n| !pending.contains(n))
                .collect(),
            false => Vec::new(),
        }
    }
}

/// Derives one stream's facts from what is stored now.
async fn derive(
    store: &dyn Store,
    stale: DirtyStream,
    window: Nanos,
    graphs: &mut GraphCache,
) -> StoreResult<Derived> {
    let started = Instant::now();
    let stream = store.stream_deployments(&stale.stream).await?;
    // Read after the stream: a tier changed meanwhile marked it again.
    let env_tiers: EnvTiers = store.env_tiers().await?.into_iter().collect();
    // What was stored before: the lead times of what was derived already, and its teams,
    // whose failures may have been blamed here.
    let before = store.stream_facts(&stale.stream).await?;
    let read = started.elapsed();
    let changes = changes::stream_changes(store, &stale, &stream, &before, graphs).await?;
    let changed = started.elapsed();
    let former_teams: Vec<String> = before.iter().filter_map(|f| f.team.clone()).collect();
    let (verdicts, _, neighbours) =
        verdicts_and_neighbours(store, &stale.stream, &stream, &former_teams, window).await?;
    let facts: Vec<DeploymentFact> = stream
        .iter()
        .zip(changes.lead_times)
        .zip(verdicts)
        .map(|((stored, lead), verdict)| fact_of(stored, lead, &verdict, &env_tiers))
        .collect();
    Ok(Derived {
        verdicts_moved: !same_verdicts(&before, &facts),
        deployments: facts.len(),
        stale,
        facts,
        head: changes.head,
        from_head: changes.from_head,
        neighbours,
        started,
        read,
        changes: changed - read,
        verdicts: started.elapsed() - changed,
    })
}

/// Re-derives one stream and stores its facts, unless writes keep staling it meanwhile.
async fn rederive(
    store: &dyn Store,
    mut stale: DirtyStream,
    window: Nanos,
    graphs: &mut GraphCache,
    pending: &HashSet<StreamKey>,
    refresher: &Refresher,
) -> StoreResult<()> {
    for _ in 0..ATTEMPTS {
        let mut derived = derive(store, stale.clone(), window, graphs).await?;
        let (facts, head) = (std::mem::take(&mut derived.facts), derived.head.take());
        if store.store_derivation(stale.clone(), facts, head).await? {
            let neighbours = derived.stored(refresher, pending);
            if !neighbours.is_empty() {
                store.mark_streams_dirty(neighbours).await?;
            }
            return Ok(());
        }
        // A write staled it again while we derived: derive again from what is there now,
        // from scratch (that write may have changed its past).
        match store.newest_mark(&stale.stream).await? {
            Some(marks) => stale = marks,
            None => return Ok(()), // another refresh (another node) stored it
        }
    }
    tracing::warn!(service = %stale.stream.service, "stream kept changing; left for the next refresh");
    Ok(())
}

/// What the metric engine keeps of one deployment.
fn fact_of(
    stored: &StoredDeployment,
    lead: LeadTimes,
    verdict: &Verdict,
    env_tiers: &EnvTiers,
) -> DeploymentFact {
    let d = &stored.deployment;
    DeploymentFact {
        id: d.id.clone(),
        finished_at: d.finished_at,
        service: d.service.clone(),
        team: d.team.clone(),
        env: d.env.clone(),
        tier: tier::of_deployment(d.env.as_deref(), &d.custom_tags, env_tiers),
        project: project_path(stored),
        failed: verdict.failed,
        rework: verdict.is_rework(),
        lead_times: lead.lead_times,
        merge_lead_times: lead.merge_lead_times,
        recovery_time: verdict.remediation.as_ref().map(|r| r.recovery_time),
    }
}

fn same_verdicts(a: &[DeploymentFact], b: &[DeploymentFact]) -> bool {
    let key = |f: &DeploymentFact| (f.id.clone(), f.failed, f.rework, f.recovery_time);
    let a: BTreeSet<_> = a.iter().map(key).collect();
    let b: BTreeSet<_> = b.iter().map(key).collect();
    a == b
}

impl Selection {
    fn fact_query(&self, from: Option<Nanos>, to: Option<Nanos>) -> FactQuery {
        FactQuery {
            from,
            to,
            tiers: self.tiers.clone(),
            project: self.project.clone(),
            group: self.group.clone(),
            filter: self.filter.clone(),
        }
    }
}

/// The facts of the selected deployments finished in `[from, to)`, in finish order, read from
/// the stored facts after bringing them up to date. Change sets and verdicts were derived from
/// each stream's whole history, so baselines and rollbacks before the range count.
pub async fn deployment_facts(
    store: &dyn Store,
    selection: &Selection,
    from: Nanos,
    to: Nanos,
    window: Nanos,
    refresher: &Refresher,
) -> StoreResult<Vec<DeploymentFact>> {
    refresh(store, window, refresher).await?;
    store
        .read_facts(&selection.fact_query(Some(from), Some(to)))
        .await
}

/// What the metrics of a selection count in `[from, to)`, brought up to date first: for a
/// whole group (or everything) in any tiers with no other condition, the day tallies kept for
/// it; otherwise the facts of every selected deployment. Both count the same
/// ([`dora_core::metrics::Tally`]); the tallies are one row a day.
pub async fn counted(
    store: &dyn Store,
    selection: &Selection,
    from: Nanos,
    to: Nanos,
    window: Nanos,
    refresher: &Refresher,
) -> StoreResult<Counted> {
    if selection.filter != Query::All || selection.project.is_some() {
        return Ok(Counted::Deployments(
            deployment_facts(store, selection, from, to, window, refresher).await?,
        ));
    }
    refresh(store, window, refresher).await?;
    let query = TallyQuery {
        group: selection
            .group
            .clone()
            .unwrap_or_else(|| rollup::EVERYTHING.to_string()),
        tiers: selection.tiers.clone(),
        from_day: rollup::day_number(from),
        // Whole days: `to` is the start of the day after the range.
        to_day: rollup::day_number(to.saturating_sub(1)).saturating_add(1),
    };
    Ok(Counted::Days(store.read_day_tallies(&query).await?))
}

/// Deployment facts as [`deployment_facts`], and the failures resolved in `[from, to)` that
/// concern a stream holding a selected deployment (of any time).
pub async fn facts(
    store: &dyn Store,
    selection: &Selection,
    from: Nanos,
    to: Nanos,
    window: Nanos,
    refresher: &Refresher,
) -> StoreResult<(Vec<DeploymentFact>, Vec<FailureFact>)> {
    let deployments = deployment_facts(store, selection, from, to, window, refresher).await?;
    let failures = failures(store, selection, from, to).await?;
    Ok((deployments, failures))
}

/// The failures resolved in `[from, to)` that concern a stream holding a selected deployment
/// (of any time), as the stored facts say after the last refresh.
pub async fn failures(
    store: &dyn Store,
    selection: &Selection,
    from: Nanos,
    to: Nanos,
) -> StoreResult<Vec<FailureFact>> {
    let resolved = store.failures_resolved(from, to).await?;
    if resolved.is_empty() {
        return Ok(Vec::new());
    }
    // The streams holding a selected deployment, and (for failures naming only a team) the
    // teams deploying in each of them.
    let selected: HashSet<StreamKey> = store
        .fact_streams(&selection.fact_query(None, None))
        .await?
        .into_iter()
        .map(|(stream, _)| stream)
        .collect();
    let service_envs: HashSet<(&str, Option<&str>)> = selected
        .iter()
        .map(|s| (s.service.as_str(), s.env.as_deref()))
        .collect();
    let team_streams = if resolved.iter().any(|f| f.services.is_empty()) {
        store
            .fact_streams(&Selection::everything().fact_query(None, None))
            .await?
    } else {
        Vec::new()
    };
    let team_envs: HashSet<(&str, Option<&str>)> = team_streams
        .iter()
        .filter(|(stream, _)| selected.contains(stream))
        .filter_map(|(stream, team)| Some((team.as_deref()?, stream.env.as_deref())))
        .collect();
    // Whether a name deploys in env (`None`: in any env).
    let deploys = |pairs: &HashSet<(&str, Option<&str>)>, name: &str, env: Option<&str>| match env {
        Some(env) => pairs.contains(&(name, Some(env))),
        None => pairs.iter().any(|(n, _)| *n == name),
    };
    let failures = resolved
        .into_iter()
        .filter(|f| {
            FailureScope::of(f).concerns_any(
                |service, env| deploys(&service_envs, service, env),
                |team, env| deploys(&team_envs, team, env),
            )
        })
        .map(|f| FailureFact {
            id: f.id,
            started_at: f.started_at,
            finished_at: f.finished_at,
        })
        .collect();
    Ok(failures)
}

/// Where the deployments a failure could be about are.
enum Candidates {
    /// Whole streams (the common case: services named, in one env).
    Streams(Vec<StreamKey>),
    /// Read by a query (a team, or every env).
    Listed(Vec<StoredDeployment>),
}

/// Deployments a failure could be about: of the services it names (or of its team), in its env.
async fn candidates_for(store: &dyn Store, failure: &Failure) -> StoreResult<Candidates> {
    let scope = FailureScope::of(failure);
    let who = match (scope.named, scope.env) {
        (Named::Services(services), Some(env)) => {
            // Straight from the streams' index.
            let streams = services
                .iter()
                .map(|service| StreamKey {
                    service: service.clone(),
                    env: Some(env.to_string()),
                })
                .collect();
            return Ok(Candidates::Streams(streams));
        }
        (Named::Services(services), _) => Query::Or(
            services
                .iter()
                .map(|s| Query::field("service", s))
                .collect(),
        ),
        (Named::Team(team), _) => Query::field("team", team),
        (Named::Nobody, _) => return Ok(Candidates::Listed(Vec::new())),
    };
    let mut filter = vec![who];
    if let Some(env) = scope.env {
        filter.push(Query::field("env", env));
    }
    let listed = store
        .list_deployments(&everything(Query::And(filter), SortField::FinishedAt))
        .await?;
    Ok(Candidates::Listed(listed))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A resting background refresh gets back to work as soon as a read waits for it; a
    /// read's own refresh never rests.
    #[tokio::test]
    async fn a_waiting_read_ends_the_rest() {
        let long = Duration::from_secs(60);
        let refresher = std::sync::Arc::new(Refresher::default());
        let started = Instant::now();
        refresher.rest(Pace::Now, long).await;
        assert!(started.elapsed() < Duration::from_secs(1));

        let background = std::sync::Arc::clone(&refresher);
        let resting = tokio::spawn(async move { background.rest(Pace::Background, long).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!resting.is_finished(), "it rests while no read waits");
        let read = WaitingRead::new(&refresher);
        tokio::time::timeout(Duration::from_secs(5), resting)
            .await
            .expect("a waiting read ends the rest")
            .unwrap();
        // While a read waits, there is no rest at all.
        let started = Instant::now();
        refresher.rest(Pace::Background, long).await;
        assert!(started.elapsed() < Duration::from_secs(1));
        drop(read);
        // Another server's refresher knows nothing of this one's reads.
        let other = Refresher::default();
        assert_eq!(other.reads_waiting.load(Ordering::SeqCst), 0);
    }
}
