//! Reading a local git repository for dorametrics: its commit graph (reachable from HEAD, local
//! and remote-tracking branches and tags) and the repository id its `origin` remote names.
//!
//! Imports are incremental. The walk asks the caller, a batch at a time, which commits the store
//! already has and does not descend below those; and it hands back the new commits parents first,
//! so a store written in that order never holds a commit without its ancestors — which is what
//! makes stopping at a known commit safe, even after an interrupted import.
#![forbid(unsafe_code)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};

use dora_core::model::{clipped_text, Commit};
use dora_core::repo::{parse_repository, RepositoryError};
use dora_core::time::Nanos;
use gix::bstr::ByteSlice;

pub use gix::ObjectId;

/// Any error of the caller's `known` look-up (a store, a server).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot open a git repository at {}", .path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: gix::Error,
    },
    #[error("the repository has no remote named origin to take its id from")]
    NoOrigin,
    #[error("the origin remote {url:?} does not name a repository: it {source}")]
    BadOrigin {
        url: String,
        #[source]
        source: RepositoryError,
    },
    #[error("cannot read the repository")]
    Read(#[from] gix::Error),
    #[error("cannot tell which commits are already imported")]
    Known(#[source] BoxError),
}

pub type GitResult<T> = Result<T, GitError>;

/// How far to walk.
#[derive(Debug, Clone, Copy)]
pub struct WalkOptions {
    /// Only commits committed at or after this time; the walk does not descend below older ones.
    pub since: Option<Nanos>,
    /// How many commits to ask `known` about at once: bigger batches mean fewer round trips but
    /// a longer walk past the already-imported boundary.
    pub batch: usize,
}

impl Default for WalkOptions {
    fn default() -> Self {
        Self {
            since: None,
            batch: 1000,
        }
    }
}

/// How far a walk has got, reported after each batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalkProgress {
    /// Commits read so far, new or not.
    pub examined: u64,
    /// Of those, the ones the caller does not know yet.
    pub new: u64,
}

/// The outcome of a walk: the new commits, parents before children.
#[derive(Debug, Clone, Default)]
pub struct NewCommits {
    pub ids: Vec<ObjectId>,
    /// Commits read, including already-known ones at the boundary.
    pub examined: u64,
}

/// An open local repository (bare or with a work tree).
pub struct Repository {
    repo: gix::Repository,
}

/// What the walk knows of a commit it has read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Read, not yet asked about.
    Unchecked,
    New,
    Known,
    /// Committed before `since`, or not a readable commit (the edge of a shallow clone).
    Outside,
}

struct Node {
    parents: Vec<ObjectId>,
    /// The commits read so far that name it as a parent.
    children: Vec<ObjectId>,
    committed: i64,
    state: State,
    /// On a path from a tip through new commits only: a new commit is imported only then, and
    /// a known one is where the walk stops.
    reached: bool,
}

impl Node {
    fn is_imported(&self) -> bool {
        self.reached && self.state == State::New
    }
}

/// The state of one walk. Reading runs ahead of the answers by up to a batch; an answer then
/// decides which commits are reached, and reading goes on only below reached new commits.
#[derive(Default)]
struct Walk {
    nodes: HashMap<ObjectId, Node>,
    tips: HashSet<ObjectId>,
    queue: VecDeque<ObjectId>,
    /// Commits to read, with the commits that named them as a parent.
    wanted: HashMap<ObjectId, Vec<ObjectId>>,
    counts: WalkProgress,
}

impl Walk {
    fn want(&mut self, id: ObjectId, child: Option<ObjectId>) {
        let queue = &mut self.queue;
        let children = self.wanted.entry(id).or_insert_with(|| {
            queue.push_back(id);
            Vec::new()
        });
        children.extend(child);
    }

    /// Marks `id` reached, and through new commits their parents: those read already, and those
    /// not read yet become wanted again (a path around a known commit may lead to them).
    fn reach(&mut self, id: ObjectId) {
        let mut stack = vec![id];
        while let Some(id) = stack.pop() {
            let Some(node) = self.nodes.get_mut(&id) else {
                continue;
            };
            if node.reached {
                continue;
            }
            node.reached = true;
            if node.state != State::New {
                continue;
            }
            self.counts.new += 1;
            for parent in node.parents.clone() {
                if self.nodes.contains_key(&parent) {
                    stack.push(parent);
                } else {
                    self.want(parent, Some(id));
                }
            }
        }
    }

    /// Whether `id` is to be imported: the commits reading goes on below.
    fn imported(nodes: &HashMap<ObjectId, Node>, id: &ObjectId) -> bool {
        nodes.get(id).is_some_and(Node::is_imported)
    }

    /// Reading goes on only where an imported commit (or a tip) leads.
    fn prune(&mut self) {
        let Walk {
            tips,
            wanted,
            nodes,
            ..
        } = self;
        wanted.retain(|id, children| {
            tips.contains(id) || children.iter().any(|c| Self::imported(nodes, c))
        });
    }
}

impl Repository {
    /// Opens the repository at `path` (its work tree, a subdirectory of it, or a bare repository).
    pub fn open(path: &Path) -> GitResult<Self> {
        let repo = gix::discover(path).map_err(|source| GitError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self { repo })
    }

    /// The normalised repository id of the `origin` remote's URL (`github.com/acme/shop`).
    pub fn origin_repository_id(&self) -> GitResult<String> {
        let url = self
            .repo
            .config_snapshot()
            .string("remote.origin.url")
            .ok_or(GitError::NoOrigin)?
            .to_str_lossy()
            .into_owned();
        parse_repository(&url)
            .map(|repository| repository.id)
            .map_err(|source| GitError::BadOrigin { url, source })
    }

    /// The commits every import starts from: HEAD, local and remote-tracking branches and tags.
    /// References that do not lead to a commit (dangling, or tags of trees and blobs) are skipped.
    pub fn tips(&self) -> GitResult<Vec<ObjectId>> {
        let platform = self.repo.references()?;
        let mut references = Vec::new();
        for iter in [
            platform.local_branches()?,
            platform.remote_branches()?,
            platform.tags()?,
        ] {
            references.extend(iter.filter_map(Result::ok));
        }
        let mut tips: Vec<ObjectId> = self
            .repo
            .head_id()
            .ok()
            .map(|id| id.detach())
            .into_iter()
            .collect();
        for mut reference in references {
            if let Ok(id) = reference.peel_to_id() {
                tips.push(id.detach());
            }
        }
        let mut seen = HashSet::new();
        tips.retain(|id| seen.insert(*id));
        Ok(tips)
    }

    /// Walks back from [`tips`](Self::tips) and returns the commits `known` does not know,
    /// parents first. `known` gets batches of shas and answers which of them are already imported;
    /// the walk does not descend below those.
    pub fn new_commits(
        &self,
        options: &WalkOptions,
        mut known: impl FnMut(&[String]) -> Result<Vec<String>, BoxError>,
        mut progress: impl FnMut(WalkProgress),
    ) -> GitResult<NewCommits> {
        let since_seconds = options.since.map(|nanos| nanos.div_euclid(1_000_000_000));
        let mut walk = Walk::default();
        for tip in self.tips()? {
            walk.tips.insert(tip);
            walk.want(tip, None);
        }
        let mut pending: Vec<ObjectId> = Vec::new();
        loop {
            // Read ahead a batch without waiting for answers: most of it is usually new.
            while pending.len() < options.batch.max(1) {
                let Some(id) = walk.queue.pop_front() else {
                    break;
                };
                let Some(children) = walk.wanted.remove(&id) else {
                    continue; // no longer wanted: only known commits led here
                };
                let mut node = Node {
                    parents: Vec::new(),
                    children,
                    committed: 0,
                    state: State::Outside,
                    reached: false,
                };
                match self.read_links(id)? {
                    Some((parents, committed))
                        if since_seconds.is_none_or(|since| committed >= since) =>
                    {
                        for parent in &parents {
                            match walk.nodes.get_mut(parent) {
                                Some(read) => read.children.push(id),
                                None => walk.want(*parent, Some(id)),
                            }
                        }
                        node.parents = parents;
                        node.committed = committed;
                        node.state = State::Unchecked;
                        pending.push(id);
                    }
                    _ => {}
                }
                walk.nodes.insert(id, node);
            }
            if pending.is_empty() {
                break;
            }
            let shas: Vec<String> = pending.iter().map(ObjectId::to_string).collect();
            let answer: HashSet<String> =
                known(&shas).map_err(GitError::Known)?.into_iter().collect();
            for (id, sha) in pending.iter().zip(&shas) {
                if let Some(node) = walk.nodes.get_mut(id) {
                    node.state = if answer.contains(sha) {
                        State::Known
                    } else {
                        State::New
                    };
                }
            }
            walk.counts.examined += pending.len() as u64;
            for id in pending.drain(..) {
                let reached = walk.tips.contains(&id)
                    || walk.nodes.get(&id).is_some_and(|node| {
                        node.children.iter().any(|c| Walk::imported(&walk.nodes, c))
                    });
                if reached {
                    walk.reach(id);
                }
            }
            walk.prune();
            progress(walk.counts);
        }
        Ok(NewCommits {
            ids: parents_first(&walk.nodes),
            examined: walk.counts.examined,
        })
    }

    /// Parents and committer time (seconds) of a commit; `None` when there is no such commit
    /// (the parents of a shallow clone's oldest commits, a tag of a tree).
    fn read_links(&self, id: ObjectId) -> GitResult<Option<(Vec<ObjectId>, i64)>> {
        let Some(object) = self.repo.try_find_object(id)? else {
            return Ok(None);
        };
        if object.kind != gix::object::Kind::Commit {
            return Ok(None);
        }
        let commit = object.into_commit();
        let decoded = commit.decode()?;
        let committed = decoded.time().map_or(0, |time| time.seconds);
        Ok(Some((decoded.parents().collect(), committed)))
    }

    /// The commits `ids` name, ready for the store under `repository_id`.
    pub fn read_commits(&self, repository_id: &str, ids: &[ObjectId]) -> GitResult<Vec<Commit>> {
        ids.iter()
            .map(|id| {
                let commit = self.repo.find_commit(*id)?;
                let decoded = commit.decode()?;
                let author = decoded.author()?;
                let committer = decoded.committer()?;
                Ok(Commit {
                    repository_id: repository_id.to_string(),
                    sha: id.to_string(),
                    parents: decoded.parents().map(|p| p.to_string()).collect(),
                    authored_at: seconds_to_nanos(author.time().map_or(0, |t| t.seconds)),
                    committed_at: seconds_to_nanos(committer.time().map_or(0, |t| t.seconds)),
                    author: clipped_text(&format!(
                        "{} <{}>",
                        author.name.to_str_lossy(),
                        author.email.to_str_lossy()
                    )),
                    subject: clipped_text(&decoded.message().summary().to_str_lossy()),
                    merge_request: None,
                })
            })
            .collect()
    }
}

fn seconds_to_nanos(seconds: i64) -> Nanos {
    seconds.saturating_mul(1_000_000_000)
}

/// The new commits in an order where each comes after its new parents; among those ready at
/// once, the earliest committed first (Kahn's algorithm).
fn parents_first(nodes: &HashMap<ObjectId, Node>) -> Vec<ObjectId> {
    let is_new = |id: &ObjectId| Walk::imported(nodes, id);
    let mut waiting_on: HashMap<ObjectId, usize> = HashMap::new();
    let mut children: HashMap<ObjectId, Vec<ObjectId>> = HashMap::new();
    let mut ready = BinaryHeap::new();
    for (id, node) in nodes.iter().filter(|(id, _)| is_new(id)) {
        let mut new_parents: Vec<ObjectId> = node.parents.iter().copied().filter(is_new).collect();
        new_parents.sort();
        new_parents.dedup();
        for parent in &new_parents {
            children.entry(*parent).or_default().push(*id);
        }
        if new_parents.is_empty() {
            ready.push(Reverse((node.committed, *id)));
        } else {
            waiting_on.insert(*id, new_parents.len());
        }
    }
    let mut order = Vec::with_capacity(waiting_on.len() + ready.len());
    while let Some(Reverse((_, id))) = ready.pop() {
        order.push(id);
        for child in children.get(&id).into_iter().flatten() {
            if let Some(count) = waiting_on.get_mut(child) {
                *count -= 1;
                if *count == 0 {
                    waiting_on.remove(child);
                    let committed = nodes.get(child).map_or(0, |n| n.committed);
                    ready.push(Reverse((committed, *child)));
                }
            }
        }
    }
    order
}

#[cfg(test)]
mod tests;
