//! A repository's commit graph in memory, for `git rev-list tip ^hidden…` questions.
//!
//! Walks go by position (each commit's place in the graph, its parents resolved to positions
//! once), marking what they reach in a [`Reached`] bit per commit: no sha is hashed or
//! compared on the way.

use rustc_hash::FxHashMap;

use crate::model::Commit;

pub struct CommitGraph {
    /// The commits, in the order given.
    commits: Vec<Commit>,
    /// Each commit's ordinal in its repository.
    ordinals: Vec<u32>,
    /// The position of each sha in `commits`. Shas are hashed once per look-up of a tip: a fast
    /// hash (not SipHash; the keys are the stores' own data, not an attacker's choice).
    positions: FxHashMap<String, u32>,
    /// The parents of the commit at position `p` that the graph holds, as positions:
    /// `parents[parent_starts[p]..parent_starts[p + 1]]`.
    parent_starts: Vec<u32>,
    parents: Vec<u32>,
}

/// Which commits of one graph a walk (or several) reached.
pub struct Reached(Vec<bool>);

impl Reached {
    pub fn contains(&self, position: u32) -> bool {
        self.0[position as usize]
    }
}

impl CommitGraph {
    /// A graph of these commits, numbered in the order given.
    pub fn new(commits: Vec<Commit>) -> Self {
        let numbered = commits.into_iter().zip(0..).collect();
        Self::numbered(numbered)
    }

    /// A graph of commits numbered by their store (their ordinals in their repository).
    pub fn numbered(numbered: Vec<(Commit, u32)>) -> Self {
        let (commits, ordinals): (Vec<Commit>, Vec<u32>) = numbered.into_iter().unzip();
        let positions: FxHashMap<String, u32> = commits
            .iter()
            .zip(0..)
            .map(|(c, position)| (c.sha.clone(), position))
            .collect();
        let mut parent_starts = Vec::with_capacity(commits.len() + 1);
        let mut parents = Vec::with_capacity(commits.len());
        for commit in &commits {
            parent_starts.push(parents.len() as u32);
            parents.extend(
                commit
                    .parents
                    .iter()
                    .filter_map(|p| positions.get(p).copied()),
            );
        }
        parent_starts.push(parents.len() as u32);
        Self {
            commits,
            ordinals,
            positions,
            parent_starts,
            parents,
        }
    }

    pub fn get(&self, sha: &str) -> Option<&Commit> {
        self.position(sha).map(|p| self.at(p))
    }

    /// The commit at a position.
    pub fn at(&self, position: u32) -> &Commit {
        &self.commits[position as usize]
    }

    /// The ordinal in its repository of the commit at a position.
    pub fn ordinal_at(&self, position: u32) -> u32 {
        self.ordinals[position as usize]
    }

    /// The commit's ordinal in its repository.
    pub fn ordinal(&self, sha: &str) -> Option<u32> {
        self.position(sha).map(|p| self.ordinal_at(p))
    }

    fn position(&self, sha: &str) -> Option<u32> {
        self.positions.get(sha).copied()
    }

    pub fn contains(&self, sha: &str) -> bool {
        self.positions.contains_key(sha)
    }

    /// Nothing reached yet.
    pub fn nothing_reached(&self) -> Reached {
        Reached(vec![false; self.commits.len()])
    }

    /// The positions of the commits reachable from `tip` but neither in `reached` nor hidden
    /// by `hidden` (given a position), marking them in `reached`: `git rev-list tip ^hidden…`.
    /// The walk stops at reached and hidden commits, since everything behind them is reached
    /// or hidden too when both are closed under parents.
    pub fn walk(&self, tip: &str, reached: &mut Reached, hidden: impl Fn(u32) -> bool) -> Vec<u32> {
        let mut new = Vec::new();
        let mut stack: Vec<u32> = self.position(tip).into_iter().collect();
        while let Some(position) = stack.pop() {
            let at = position as usize;
            if reached.0[at] || hidden(position) {
                continue;
            }
            reached.0[at] = true;
            new.push(position);
            let parents = self.parent_starts[at] as usize..self.parent_starts[at + 1] as usize;
            stack.extend_from_slice(&self.parents[parents]);
        }
        new
    }

    /// How many commits it holds.
    pub fn len(&self) -> usize {
        self.commits.len()
    }

    pub fn is_empty(&self) -> bool {
        self.commits.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(sha: &str, parents: &[&str]) -> Commit {
        Commit {
            repository_id: "r".into(),
            sha: sha.into(),
            parents: parents.iter().map(|p| p.to_string()).collect(),
            authored_at: 0,
            committed_at: 0,
            author: None,
            subject: None,
            merge_request: None,
        }
    }

    fn shas(graph: &CommitGraph, positions: &[u32]) -> Vec<String> {
        let mut shas: Vec<String> = positions.iter().map(|p| graph.at(*p).sha.clone()).collect();
        shas.sort();
        shas
    }

    /// a ← b ← d, a ← c ← d (a merge), e ← f; parents the graph lacks are skipped.
    #[test]
    fn walks_stop_at_what_was_reached_or_is_hidden() {
        let graph = CommitGraph::numbered(vec![
            (commit("a", &["missing"]), 10),
            (commit("b", &["a"]), 11),
            (commit("c", &["a"]), 12),
            (commit("d", &["b", "c"]), 13),
            (commit("e", &[]), 14),
            (commit("f", &["e"]), 15),
        ]);
        let mut reached = graph.nothing_reached();
        let first = graph.walk("b", &mut reached, |_| false);
        assert_eq!(shas(&graph, &first), ["a", "b"]);
        let second = graph.walk("d", &mut reached, |_| false);
        assert_eq!(shas(&graph, &second), ["c", "d"]);
        assert!(graph.walk("d", &mut reached, |_| false).is_empty());
        assert!(graph.walk("unknown", &mut reached, |_| false).is_empty());
        // Hidden by ordinal: e is, so the walk from f stops there.
        let mut reached = graph.nothing_reached();
        let hidden = |p: u32| graph.ordinal_at(p) == 14;
        assert_eq!(shas(&graph, &graph.walk("f", &mut reached, hidden)), ["f"]);
        assert_eq!(graph.ordinal("c"), Some(12));
        assert_eq!(graph.ordinal("missing"), None);
    }
}
