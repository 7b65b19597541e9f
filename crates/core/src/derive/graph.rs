//! A repository's commit graph in memory, for `git rev-list tip ^hidden…` questions.

use std::collections::{HashMap, HashSet};

use crate::model::Commit;

pub struct CommitGraph {
    commits: HashMap<String, Commit>,
}

impl CommitGraph {
    pub fn new(commits: Vec<Commit>) -> Self {
        Self {
            commits: commits.into_iter().map(|c| (c.sha.clone(), c)).collect(),
        }
    }

    pub fn get(&self, sha: &str) -> Option<&Commit> {
        self.commits.get(sha)
    }

    pub fn contains(&self, sha: &str) -> bool {
        self.commits.contains_key(sha)
    }

    /// Commits reachable from `tip` but not in `hidden` (`git rev-list tip ^hidden`): the walk
    /// stops at hidden commits, since everything behind them is hidden too when `hidden` is a
    /// whole ancestry.
    pub fn walk<'a>(&'a self, tip: &str, hidden: &HashSet<&str>) -> HashSet<&'a str> {
        self.walk_until(tip, |sha| hidden.contains(sha))
    }

    /// [`CommitGraph::walk`] with the hidden commits those `hidden` says (again a set closed
    /// under parents).
    pub fn walk_until<'a>(&'a self, tip: &str, hidden: impl Fn(&str) -> bool) -> HashSet<&'a str> {
        let mut seen = HashSet::new();
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
            if let Some(commit) = self.commits.get(sha) {
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
