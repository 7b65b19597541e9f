//! A repository's commit graph in memory, for `git rev-list tip ^hidden…` questions.

use rustc_hash::{FxHashMap, FxHashSet};

use crate::model::Commit;

/// Shas are hashed by the thousand on every walk: a fast hash (not SipHash; the keys are
/// the stores' own data, not an attacker's choice of collisions).
pub type ShaSet<'a> = FxHashSet<&'a str>;

pub struct CommitGraph {
    /// Each commit with its ordinal in its repository.
    commits: FxHashMap<String, (Commit, u32)>,
}

impl CommitGraph {
    /// A graph of these commits, numbered in the order given.
    pub fn new(commits: Vec<Commit>) -> Self {
        let numbered = commits.into_iter().zip(0..).collect();
        Self::numbered(numbered)
    }

    /// A graph of commits numbered by their store (their ordinals in their repository).
    pub fn numbered(commits: Vec<(Commit, u32)>) -> Self {
        Self {
            commits: commits
                .into_iter()
                .map(|(c, ordinal)| (c.sha.clone(), (c, ordinal)))
                .collect(),
        }
    }

    pub fn get(&self, sha: &str) -> Option<&Commit> {
        self.commits.get(sha).map(|(c, _)| c)
    }

    /// The commit's ordinal in its repository.
    pub fn ordinal(&self, sha: &str) -> Option<u32> {
        self.commits.get(sha).map(|(_, ordinal)| *ordinal)
    }

    pub fn contains(&self, sha: &str) -> bool {
        self.commits.contains_key(sha)
    }

    /// Commits reachable from `tip` but not in `hidden` (`git rev-list tip ^hidden`): the walk
    /// stops at hidden commits, since everything behind them is hidden too when `hidden` is a
    /// whole ancestry.
    pub fn walk<'a>(&'a self, tip: &str, hidden: &ShaSet<'_>) -> ShaSet<'a> {
        self.walk_until(tip, |sha| hidden.contains(sha))
    }

    /// [`CommitGraph::walk`] with the hidden commits those `hidden` says (again a set closed
    /// under parents).
    pub fn walk_until<'a>(&'a self, tip: &str, hidden: impl Fn(&str) -> bool) -> ShaSet<'a> {
        let mut seen = ShaSet::default();
        let mut stack: Vec<&str> = self
            .commits
            .get_key_value(tip)
            .map(|(k, _)| k.as_str())
            .into_iter()
            .collect();
        while let Some(sha) = stack.pop() {
            if hidden(sha) || !seen.insert(sha) {
                continue;
            }
            if let Some((commit, _)) = self.commits.get(sha) {
                for parent in &commit.parents {
                    if let Some((key, _)) = self.commits.get_key_value(parent) {
                        stack.push(key.as_str());
                    }
                }
            }
        }
        seen
    }

    /// How many commits it holds.
    pub fn len(&self) -> usize {
        self.commits.len()
    }

    pub fn is_empty(&self) -> bool {
        self.commits.is_empty()
    }
}
