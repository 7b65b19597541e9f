//! The change sets of a stream as its facts need them: what each deployment shipped, as lead
//! times. A stream only appended to since it was last derived is derived from its head — the
//! commits it had shipped, kept as ordinals in the store — by walking the new deployments'
//! commits through look-ups, so that a deployment costs what it ships. Anything else (a first
//! derivation, a write inside its past, a commit filling a hole) walks its repository's whole
//! graph, loaded once for all the streams of a repository that a refresh derives in a row.

use std::collections::HashMap;

use dora_core::derive::{appended_walks, merged_at, CommitGraph, Walk};
use dora_core::metrics::DeploymentFact;
use dora_core::model::{Commit, StoredDeployment};
use dora_core::time::Nanos;
use dora_store::{DirtyStream, Store, StoreError, StoreResult, StreamHead};
use roaring::RoaringBitmap;

/// A walk that needs more commits than this through look-ups loads the whole graph instead.
const MOST_LOOKED_UP: usize = 4096;

/// What a deployment's fact keeps of its change set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeadTimes {
    /// Of every commit it shipped first, ascending; none for the first deployment of a stream.
    pub lead_times: Vec<Nanos>,
    pub merge_lead_times: Vec<Nanos>,
}

impl LeadTimes {
    fn of(walk: &Walk, graph: &CommitGraph) -> Self {
        if walk.no_baseline {
            return Self::default();
        }
        let finished = walk.deployment.deployment.finished_at;
        let mut lead_times: Vec<Nanos> = walk
            .shipped(graph)
            .map(|c| finished - c.committed_at)
            .collect();
        let mut merge_lead_times: Vec<Nanos> = walk
            .shipped(graph)
            .filter_map(merged_at)
            .map(|merged| finished - merged)
            .collect();
        lead_times.sort_unstable();
        merge_lead_times.sort_unstable();
        Self {
            lead_times,
            merge_lead_times,
        }
    }

    fn kept(fact: &DeploymentFact) -> Self {
        Self {
            lead_times: fact.lead_times.clone(),
            merge_lead_times: fact.merge_lead_times.clone(),
        }
    }
}

/// The lead times of every deployment of a stream (in its order), and the head to store with
/// its facts.
pub struct StreamChanges {
    pub lead_times: Vec<LeadTimes>,
    pub head: Option<StreamHead>,
    /// Derived from the stream's head, not from scratch.
    pub from_head: bool,
}

/// The graph of the repository the last stream derived from scratch deployed from, and how
/// many commits the repository held when it was loaded.
#[derive(Default)]
pub struct GraphCache {
    repository: Option<String>,
    count: i64,
    graph: Option<CommitGraph>,
}

impl GraphCache {
    /// The whole graph of a repository, as it is now (asked after the stream is read, so that
    /// it holds every commit a deployment of the stream names that was stored then).
    async fn of(
        &mut self,
        store: &dyn Store,
        repository: Option<&str>,
    ) -> StoreResult<&CommitGraph> {
        let count = match repository {
            Some(repository) => store.commit_count(repository).await?,
            None => 0,
        };
        if self.graph.is_none() || self.repository.as_deref() != repository || self.count != count {
            let commits = match repository {
                Some(repository) => store.commit_graph(repository).await?,
                None => Vec::new(),
            };
            self.graph = Some(CommitGraph::numbered(commits));
            self.repository = repository.map(str::to_string);
            self.count = count;
        }
        Ok(self
            .graph
            .get_or_insert_with(|| CommitGraph::numbered(Vec::new())))
    }
}

/// The repository a stream's change sets walk: its first deployment's with git info.
pub fn walked_repository(stream: &[StoredDeployment]) -> Option<&str> {
    stream
        .iter()
        .find_map(|d| d.deployment.git.as_ref().map(|g| g.repository_id.as_str()))
}

/// The lead times of a stream's deployments: those derived before kept from `before` (the
/// stored facts) when the stream was only appended to since its head, else all derived again.
pub async fn stream_changes(
    store: &dyn Store,
    stale: &DirtyStream,
    stream: &[StoredDeployment],
    before: &[DeploymentFact],
    graphs: &mut GraphCache,
) -> StoreResult<StreamChanges> {
    let repository = walked_repository(stream);
    let head = match stale.history {
        true => None,
        false => store.stream_head(&stale.stream).await?,
    };
    if let Some(resumed) = head.and_then(|head| Resumed::at(head, stream, before, repository)) {
        if let Some(changes) = appended(store, stream, resumed, repository).await? {
            return Ok(changes);
        }
    }
    let graph = graphs.of(store, repository).await?;
    let (walks, reached) = appended_walks(stream, graph, |_| false, None);
    let shipped: RoaringBitmap = reached.into_iter().collect();
    Ok(StreamChanges {
        lead_times: walks.iter().map(|w| LeadTimes::of(w, graph)).collect(),
        head: head_of(stream, repository, &shipped)?,
        from_head: false,
    })
}

/// Where a stream only appended to since its head resumes.
struct Resumed<'a> {
    /// The deployments its head covered (the stream's first ones), with their stored facts.
    derived: Vec<&'a DeploymentFact>,
    shipped: RoaringBitmap,
}

impl<'a> Resumed<'a> {
    /// `None` when the stream is not its head's plus deployments after it, each covered one
    /// with a stored fact, walking the same repository.
    fn at(
        head: StreamHead,
        stream: &[StoredDeployment],
        before: &'a [DeploymentFact],
        repository: Option<&str>,
    ) -> Option<Self> {
        if head.repository_id.as_deref() != repository {
            return None;
        }
        let last = stream
            .iter()
            .position(|d| d.deployment.id == head.last_id)?;
        if stream[last].deployment.finished_at != head.last_finished_at {
            return None;
        }
        let facts: HashMap<&str, &DeploymentFact> =
            before.iter().map(|f| (f.id.as_str(), f)).collect();
        if facts.len() != last + 1 {
            return None;
        }
        let derived = stream[..=last]
            .iter()
            .map(|d| facts.get(d.deployment.id.as_str()).copied())
            .collect::<Option<Vec<_>>>()?;
        let shipped = RoaringBitmap::deserialize_from(&head.shipped[..]).ok()?;
        Some(Self { derived, shipped })
    }
}

/// The change sets of the deployments after the head, from look-ups; `None` when their walks
/// would look up too many commits (then the whole graph is cheaper).
async fn appended(
    store: &dyn Store,
    stream: &[StoredDeployment],
    resumed: Resumed<'_>,
    repository: Option<&str>,
) -> StoreResult<Option<StreamChanges>> {
    let covered = resumed.derived.len();
    let new = &stream[covered..];
    let mut shipped = resumed.shipped;
    let baseline = stream[..covered]
        .iter()
        .rev()
        .find(|d| d.deployment.git.is_some())
        .map(|d| d.deployment.id.as_str());
    let graph = match repository {
        Some(repository) => {
            let tips = new
                .iter()
                .filter_map(|d| d.deployment.git.as_ref().map(|g| g.commit_sha.clone()));
            match walked_part(store, repository, tips.collect(), &shipped).await? {
                Some(graph) => graph,
                None => return Ok(None),
            }
        }
        None => CommitGraph::numbered(Vec::new()),
    };
    let (walks, reached) = appended_walks(new, &graph, |o| shipped.contains(o), baseline);
    shipped.extend(reached);
    let mut lead_times: Vec<LeadTimes> = resumed.derived.into_iter().map(LeadTimes::kept).collect();
    lead_times.extend(walks.iter().map(|w| LeadTimes::of(w, &graph)));
    Ok(Some(StreamChanges {
        lead_times,
        head: head_of(stream, repository, &shipped)?,
        from_head: true,
    }))
}

/// The commits walks from `tips` can reach before commits already shipped, fetched a
/// generation at a time; `None` past [`MOST_LOOKED_UP`].
async fn walked_part(
    store: &dyn Store,
    repository: &str,
    tips: Vec<String>,
    shipped: &RoaringBitmap,
) -> StoreResult<Option<CommitGraph>> {
    let mut found: Vec<(Commit, u32)> = Vec::new();
    let mut asked: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut wanted = tips;
    loop {
        wanted.retain(|sha| asked.insert(sha.clone()));
        if wanted.is_empty() {
            return Ok(Some(CommitGraph::numbered(found)));
        }
        if asked.len() > MOST_LOOKED_UP {
            return Ok(None);
        }
        let fetched = store.commits_named(repository, &wanted).await?;
        wanted = fetched
            .iter()
            .filter(|(_, ordinal)| !shipped.contains(*ordinal))
            .flat_map(|(commit, _)| commit.parents.iter().cloned())
            .collect();
        found.extend(fetched);
    }
}

/// What the stream's change sets now cover.
fn head_of(
    stream: &[StoredDeployment],
    repository: Option<&str>,
    shipped: &RoaringBitmap,
) -> StoreResult<Option<StreamHead>> {
    let Some(last) = stream.last() else {
        return Ok(None);
    };
    let mut bytes = Vec::with_capacity(shipped.serialized_size());
    shipped.serialize_into(&mut bytes).map_err(|e| {
        StoreError::Database(format!("cannot keep a stream's shipped commits: {e}"))
    })?;
    Ok(Some(StreamHead {
        last_id: last.deployment.id.clone(),
        last_finished_at: last.deployment.finished_at,
        repository_id: repository.map(str::to_string),
        shipped: bytes,
    }))
}
