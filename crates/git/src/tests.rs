//! Real repositories, built with the `git` command in temporary directories.

use std::cell::RefCell;
use std::path::Path;
use std::process::Command;

use super::*;

/// 2025-01-01T00:00:00Z; fixture commits are one minute apart from there.
const EPOCH: i64 = 1_735_689_600;

/// A repository under construction, with a deterministic clock and identity.
struct Fixture {
    dir: tempfile::TempDir,
    minute: i64,
}

fn git_in(dir: &Path, args: &[&str], seconds: i64) -> String {
    let date = format!("@{seconds} +0000");
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Ada Lovelace")
        .env("GIT_AUTHOR_EMAIL", "ada@example.com")
        .env("GIT_COMMITTER_NAME", "CI Bot")
        .env("GIT_COMMITTER_EMAIL", "ci@example.com")
        .env("GIT_AUTHOR_DATE", &date)
        .env("GIT_COMMITTER_DATE", &date)
        .output()
        .expect("run git");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        git_in(dir.path(), &["init", "-q", "-b", "main"], EPOCH);
        Self { dir, minute: 0 }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn git(&self, args: &[&str]) -> String {
        git_in(self.path(), args, EPOCH + self.minute * 60)
    }

    /// An empty commit on the current branch; returns its sha.
    fn commit(&mut self, subject: &str) -> String {
        self.minute += 1;
        self.git(&["commit", "-q", "--allow-empty", "-m", subject]);
        self.git(&["rev-parse", "HEAD"])
    }

    fn open(&self) -> Repository {
        Repository::open(self.path()).unwrap()
    }
}

/// Walks with a caller that knows `known`; returns the new commits' shas, in order.
fn walk(repo: &Repository, known: &HashSet<String>, options: WalkOptions) -> (Vec<String>, u64) {
    let found = repo
        .new_commits(
            &options,
            |shas| {
                Ok(shas
                    .iter()
                    .filter(|s| known.contains(*s))
                    .cloned()
                    .collect())
            },
            |_| {},
        )
        .unwrap();
    let shas = found.ids.iter().map(ObjectId::to_string).collect();
    (shas, found.examined)
}

fn all(repo: &Repository) -> Vec<String> {
    walk(repo, &HashSet::new(), WalkOptions::default()).0
}

fn set(shas: &[String]) -> HashSet<String> {
    shas.iter().cloned().collect()
}

/// Every commit comes after its parents that are in the list.
fn assert_parents_first(repo: &Repository, shas: &[String]) {
    let ids: Vec<ObjectId> = shas
        .iter()
        .map(|s| ObjectId::from_hex(s.as_bytes()).unwrap())
        .collect();
    let commits = repo.read_commits("x/y/z", &ids).unwrap();
    for (i, commit) in commits.iter().enumerate() {
        for parent in &commit.parents {
            if let Some(at) = shas.iter().position(|s| s == parent) {
                assert!(at < i, "{} comes before its parent {parent}", commit.sha);
            }
        }
    }
}

#[test]
fn the_graph_of_branches_merges_tags_and_remotes_is_read_parents_first() {
    let mut repo = Fixture::new();
    let a = repo.commit("first");
    let b = repo.commit("second");
    repo.git(&["checkout", "-q", "-b", "feature"]);
    let f1 = repo.commit("feature work");
    repo.git(&["checkout", "-q", "main"]);
    let c = repo.commit("third");
    repo.minute += 1;
    repo.git(&["merge", "-q", "--no-ff", "-m", "Merge feature", "feature"]);
    let merge = repo.git(&["rev-parse", "HEAD"]);
    // Only on a second branch, only behind an annotated tag, only on a remote-tracking branch.
    repo.git(&["checkout", "-q", "-b", "second", &b]);
    let side = repo.commit("side branch");
    repo.git(&["checkout", "-q", "--detach", &a]);
    let tagged = repo.commit("tagged only");
    repo.git(&["tag", "-a", "v0.1", "-m", "release"]);
    repo.git(&["checkout", "-q", "--detach", &a]);
    let remote = repo.commit("remote only");
    repo.git(&["update-ref", "refs/remotes/origin/gone", &remote]);
    repo.git(&["checkout", "-q", "main"]);
    // A tag of a tree and a dangling symbolic ref lead to no commit; they are skipped.
    let tree = repo.git(&["rev-parse", "HEAD^{tree}"]);
    repo.git(&["tag", "tree-tag", &tree]);
    repo.git(&[
        "symbolic-ref",
        "refs/remotes/origin/HEAD",
        "refs/remotes/origin/deleted",
    ]);

    let git = repo.open();
    let shas = all(&git);
    assert_eq!(
        set(&shas),
        set(&[
            a.clone(),
            b.clone(),
            f1.clone(),
            c.clone(),
            merge.clone(),
            side,
            tagged,
            remote
        ])
    );
    assert_eq!(shas[0], a, "the root comes first");
    assert_parents_first(&git, &shas);

    let id = |sha: &str| ObjectId::from_hex(sha.as_bytes()).unwrap();
    let commits = git
        .read_commits("github.com/acme/shop", &[id(&merge), id(&b)])
        .unwrap();
    let m = &commits[0];
    assert_eq!(m.repository_id, "github.com/acme/shop");
    assert_eq!(m.sha, merge);
    assert_eq!(m.parents, vec![c, f1]);
    assert!(m.is_merge());
    assert_eq!(m.subject.as_deref(), Some("Merge feature"));
    assert_eq!(m.author.as_deref(), Some("Ada Lovelace <ada@example.com>"));
    assert_eq!(m.committed_at, (EPOCH + 5 * 60) * 1_000_000_000);
    let second = &commits[1];
    assert_eq!(second.parents, vec![a]);
    assert_eq!(second.authored_at, (EPOCH + 2 * 60) * 1_000_000_000);
    assert_eq!(second.merge_request, None);
}

#[test]
fn a_second_walk_stops_at_known_commits() {
    let mut repo = Fixture::new();
    for i in 0..40 {
        repo.commit(&format!("commit {i}"));
    }
    let git = repo.open();
    let first = all(&git);
    assert_eq!(first.len(), 40);

    let new_main = repo.commit("one more");
    repo.git(&["checkout", "-q", "-b", "topic", "HEAD~5"]);
    let new_topic = repo.commit("on topic");
    let git = repo.open();
    let options = WalkOptions {
        since: None,
        batch: 4,
    };
    let asked = RefCell::new(0);
    let known = set(&first);
    let found = git
        .new_commits(
            &options,
            |shas| {
                *asked.borrow_mut() += shas.len();
                Ok(shas
                    .iter()
                    .filter(|s| known.contains(*s))
                    .cloned()
                    .collect())
            },
            |_| {},
        )
        .unwrap();
    let shas: Vec<String> = found.ids.iter().map(ObjectId::to_string).collect();
    assert_eq!(set(&shas), set(&[new_main, new_topic]));
    // Read-ahead past the boundary is bounded by the batch, not the history.
    assert!(found.examined <= 10, "examined {}", found.examined);
    assert_eq!(*asked.borrow() as u64, found.examined);

    // Nothing new: one batch, nothing returned.
    let everything = set(&all(&git));
    let (again, examined) = walk(&git, &everything, options);
    assert!(again.is_empty());
    assert!(examined <= 4, "examined {examined}");
}

#[test]
fn history_behind_a_known_commit_is_imported_only_through_new_commits() {
    // a - b - c             (main; only c is known, as when CI pushed it alone)
    //      \
    //       s1 - s2 - s3 - s4 (side)
    let mut repo = Fixture::new();
    let a = repo.commit("a");
    let b = repo.commit("b");
    let c = repo.commit("c");
    let git = repo.open();
    let known: HashSet<String> = [c].into_iter().collect();
    for batch in [1, 3, 1000] {
        let (found, _) = walk(&git, &known, WalkOptions { since: None, batch });
        assert!(found.is_empty(), "batch {batch}: {found:?}");
    }
    repo.git(&["checkout", "-q", "-b", "side", &b]);
    let side: Vec<String> = (1..=4).map(|i| repo.commit(&format!("s{i}"))).collect();
    let git = repo.open();
    // With a batch of 4, b is read under c and left out before s1 leads to it (and to a) again.
    for batch in [1, 2, 3, 4, 1000] {
        let (found, _) = walk(&git, &known, WalkOptions { since: None, batch });
        assert_eq!(found[..2], [a.clone(), b.clone()], "batch {batch}");
        assert_eq!(found[2..], side[..], "batch {batch}");
    }
}

#[test]
fn progress_is_reported_per_batch() {
    let mut repo = Fixture::new();
    for i in 0..7 {
        repo.commit(&format!("c{i}"));
    }
    let mut reports = Vec::new();
    repo.open()
        .new_commits(
            &WalkOptions {
                since: None,
                batch: 3,
            },
            |_| Ok(Vec::new()),
            |p| reports.push(p),
        )
        .unwrap();
    let examined: Vec<u64> = reports.iter().map(|p| p.examined).collect();
    assert_eq!(examined, vec![3, 6, 7]);
    assert_eq!(reports.last().unwrap().new, 7);
}

#[test]
fn since_leaves_older_history_out() {
    let mut repo = Fixture::new();
    let shas: Vec<String> = (0..6).map(|i| repo.commit(&format!("c{i}"))).collect();
    let git = repo.open();
    // Commit i is committed at minute i + 1.
    let since = Some((EPOCH + 4 * 60) * 1_000_000_000);
    let (found, _) = walk(&git, &HashSet::new(), WalkOptions { since, batch: 1000 });
    assert_eq!(found, shas[3..].to_vec());
}

#[test]
fn a_failing_lookup_stops_the_walk() {
    let mut repo = Fixture::new();
    repo.commit("only");
    let error = repo
        .open()
        .new_commits(
            &WalkOptions::default(),
            |_| Err("server down".into()),
            |_| {},
        )
        .unwrap_err();
    assert!(matches!(error, GitError::Known(_)), "{error:?}");
    assert_eq!(
        error.to_string(),
        "cannot tell which commits are already imported"
    );
}

#[test]
fn a_shallow_clone_is_read_down_to_its_edge() {
    let mut origin = Fixture::new();
    let shas: Vec<String> = (0..5).map(|i| origin.commit(&format!("c{i}"))).collect();
    let parent = tempfile::tempdir().unwrap();
    let url = format!("file://{}", origin.path().display());
    git_in(
        parent.path(),
        &["clone", "-q", "--depth", "2", &url, "shallow"],
        EPOCH,
    );
    let git = Repository::open(&parent.path().join("shallow")).unwrap();
    let found = all(&git);
    assert_eq!(found, shas[3..].to_vec());
    let id = ObjectId::from_hex(found[0].as_bytes()).unwrap();
    // The edge commit still names its (absent) parent.
    assert_eq!(
        git.read_commits("a/b/c", &[id]).unwrap()[0].parents,
        vec![shas[2].clone()]
    );
}

#[test]
fn an_empty_repository_has_nothing_to_import() {
    let repo = Fixture::new();
    assert!(all(&repo.open()).is_empty());
}

#[test]
fn the_origin_remote_names_the_repository() {
    let mut repo = Fixture::new();
    repo.commit("c");
    assert!(matches!(
        repo.open().origin_repository_id(),
        Err(GitError::NoOrigin)
    ));
    repo.git(&["remote", "add", "origin", "git@github.com:acme/shop.git"]);
    assert_eq!(
        repo.open().origin_repository_id().unwrap(),
        "github.com/acme/shop"
    );
    repo.git(&[
        "remote",
        "set-url",
        "origin",
        "https://ci:s3cret@GitLab.example.com/acme/platform/api.git",
    ]);
    assert_eq!(
        repo.open().origin_repository_id().unwrap(),
        "gitlab.example.com/acme/platform/api"
    );
    repo.git(&["remote", "set-url", "origin", "/srv/git/shop.git"]);
    let error = repo.open().origin_repository_id().unwrap_err();
    assert!(matches!(error, GitError::BadOrigin { .. }), "{error:?}");
}

#[test]
fn a_subdirectory_opens_its_repository_and_a_plain_directory_does_not() {
    let mut repo = Fixture::new();
    let sha = repo.commit("c");
    let sub = repo.path().join("src/deep");
    std::fs::create_dir_all(&sub).unwrap();
    assert_eq!(all(&Repository::open(&sub).unwrap()), vec![sha]);
    let plain = tempfile::tempdir().unwrap();
    assert!(matches!(
        Repository::open(plain.path()),
        Err(GitError::Open { .. })
    ));
}
