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
        let mut seen = HashSet::new();
        let mut stack: Vec<&str> = self
            .commits
            .get_key_value(tip)
            .map(|(k, _)| k.as_str())
            .into_iter()
            .collect();
        while let Some(sha) = stack.pop() {
            if hidden.contains(sha) || !seen.insert(sha) {
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
}
