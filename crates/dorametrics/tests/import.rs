//! `dorametrics import git` as users run it, on real repositories built with the `git` command:
//! into a SQLite file and through a running server, incrementally.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use dora_core::model::Commit;
use support::{create_token, Server, BIN};

/// 2025-01-01T00:00:00Z; fixture commits are one minute apart from there.
const EPOCH: i64 = 1_735_689_600;
const NANOS: i64 = 1_000_000_000;
const REPO: &str = "github.com/acme/shop";

/// A repository under construction, with a deterministic clock and identity.
struct Fixture {
    dir: tempfile::TempDir,
    minute: i64,
}

impl Fixture {
    fn new() -> Self {
        let fixture = Self {
            dir: tempfile::tempdir().unwrap(),
            minute: 0,
        };
        fixture.git(&["init", "-q", "-b", "main"]);
        fixture
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn git(&self, args: &[&str]) -> String {
        let date = format!("@{} +0000", EPOCH + self.minute * 60);
        let output = Command::new("git")
            .args(args)
            .current_dir(self.path())
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

    /// An empty commit on the current branch, one minute after the last; returns its sha.
    fn commit(&mut self, subject: &str) -> String {
        self.minute += 1;
        self.git(&["commit", "-q", "--allow-empty", "-m", subject]);
        self.git(&["rev-parse", "HEAD"])
    }
}

/// Linear history, a merged feature branch and a second branch:
///
/// ```text
/// a - b - c - m      (main)
///      \     /
///       f ---        (feature)
///          c - r     (release)
/// ```
struct History {
    repo: Fixture,
    a: String,
    b: String,
    c: String,
    f: String,
    m: String,
    r: String,
}

fn history() -> History {
    let mut repo = Fixture::new();
    let a = repo.commit("first");
    let b = repo.commit("second");
    repo.git(&["checkout", "-q", "-b", "feature"]);
    let f = repo.commit("feature work");
    repo.git(&["checkout", "-q", "main"]);
    let c = repo.commit("third");
    repo.minute += 1;
    repo.git(&["merge", "-q", "--no-ff", "-m", "Merge feature", "feature"]);
    let m = repo.git(&["rev-parse", "HEAD"]);
    repo.git(&["checkout", "-q", "-b", "release", &c]);
    let r = repo.commit("release fix");
    repo.git(&["checkout", "-q", "main"]);
    History {
        repo,
        a,
        b,
        c,
        f,
        m,
        r,
    }
}

fn import(path: &Path, args: &[&str], token: Option<&str>) -> Output {
    let mut command = Command::new(BIN);
    command
        .args(["import", "git"])
        .arg(path)
        .args(args)
        .env_remove("DORA_DATABASE")
        .env_remove("DORA_TOKEN");
    if let Some(token) = token {
        command.env("DORA_TOKEN", token);
    }
    command.output().expect("run dorametrics import git")
}

/// The summary line of a successful import.
fn summary(output: &Output) -> String {
    assert!(
        output.status.success(),
        "import failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    assert_eq!(stdout.lines().count(), 1, "one line on stdout: {stdout}");
    assert!(stdout.trim_end().ends_with(" s"), "{stdout}");
    stdout
}

async fn stored(database: &str, repository_id: &str) -> Vec<Commit> {
    let store = dora_store::open(database).await.unwrap();
    store.commits_of(repository_id).await.unwrap()
}

fn find<'a>(commits: &'a [Commit], sha: &str) -> &'a Commit {
    commits
        .iter()
        .find(|c| c.sha == sha)
        .unwrap_or_else(|| panic!("{sha} was not imported"))
}

#[tokio::test]
async fn a_repository_is_imported_into_sqlite_and_a_rerun_adds_only_new_commits() {
    let mut h = history();
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("import.db").display());
    let args = [
        "--repository-id",
        "https://github.com/acme/shop.git",
        "--database",
        &database,
    ];

    let said = summary(&import(h.repo.path(), &args, None));
    assert!(
        said.starts_with("imported 6 new commits (6 seen) into github.com/acme/shop in "),
        "{said}"
    );
    let commits = stored(&database, REPO).await;
    assert_eq!(commits.len(), 6);
    let merge = find(&commits, &h.m);
    assert_eq!(merge.parents, vec![h.c.clone(), h.f.clone()]);
    assert!(merge.is_merge());
    assert_eq!(merge.subject.as_deref(), Some("Merge feature"));
    assert_eq!(merge.committed_at, (EPOCH + 5 * 60) * NANOS);
    let first = find(&commits, &h.a);
    assert!(first.parents.is_empty());
    assert_eq!(first.authored_at, (EPOCH + 60) * NANOS);
    assert_eq!(
        first.author.as_deref(),
        Some("Ada Lovelace <ada@example.com>")
    );
    assert_eq!(find(&commits, &h.f).parents, vec![h.b.clone()]);
    assert_eq!(find(&commits, &h.r).parents, vec![h.c.clone()]);

    // New work on two branches: only it is imported.
    let on_main = h.repo.commit("after the merge");
    h.repo.git(&["checkout", "-q", "release"]);
    let on_release = h.repo.commit("another fix");
    let said = summary(&import(h.repo.path(), &args, None));
    assert!(said.starts_with("imported 2 new commits ("), "{said}");
    let commits = stored(&database, REPO).await;
    assert_eq!(commits.len(), 8);
    assert_eq!(find(&commits, &on_main).parents, vec![h.m.clone()]);
    assert_eq!(find(&commits, &on_release).parents, vec![h.r.clone()]);

    let said = summary(&import(h.repo.path(), &args, None));
    assert!(said.starts_with("imported 0 new commits ("), "{said}");
}

#[tokio::test]
async fn since_leaves_older_commits_out() {
    let h = history();
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("since.db").display());
    // Commits c (minute 4), m (5) and r (6) are on or after 00:04.
    let args = [
        "--repository-id",
        REPO,
        "--since",
        "2025-01-01T00:04:00Z",
        "--database",
        &database,
    ];
    summary(&import(h.repo.path(), &args, None));
    let mut shas: Vec<String> = stored(&database, REPO)
        .await
        .into_iter()
        .map(|c| c.sha)
        .collect();
    shas.sort();
    let mut expected = vec![h.c, h.m, h.r];
    expected.sort();
    assert_eq!(shas, expected);
}

#[tokio::test]
async fn full_fills_the_gaps_below_commits_that_arrived_alone() {
    let mut repo = Fixture::new();
    let older: Vec<String> = (0..2).map(|i| repo.commit(&format!("old {i}"))).collect();
    let tip = repo.commit("pushed by CI");
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("gaps.db").display());
    // Only the tip is known, as when CI pushed just it through the API.
    let store = dora_store::open(&database).await.unwrap();
    store
        .put_commits(vec![Commit {
            repository_id: REPO.into(),
            sha: tip.clone(),
            parents: vec![older[1].clone()],
            authored_at: EPOCH * NANOS,
            committed_at: EPOCH * NANOS,
            author: None,
            subject: None,
            merge_request: None,
        }])
        .await
        .unwrap();
    drop(store);
    let args = ["--repository-id", REPO, "--database", &database];
    let said = summary(&import(repo.path(), &args, None));
    assert!(said.starts_with("imported 0 new commits ("), "{said}");
    let full = [&args[..], &["--full"]].concat();
    let said = summary(&import(repo.path(), &full, None));
    assert!(
        said.starts_with("imported 2 new commits (3 seen)"),
        "{said}"
    );
    assert_eq!(stored(&database, REPO).await.len(), 3);
}

#[tokio::test]
async fn an_import_through_a_running_server_is_incremental_too() {
    let mut h = history();
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("served.db").display());
    let server = Server::start(&database);
    let write = create_token(&database, "dora_metrics_write");
    let args = ["--repository-id", REPO, "--url", &server.base];

    let said = summary(&import(h.repo.path(), &args, Some(&write)));
    assert!(
        said.starts_with("imported 6 new commits (6 seen) into github.com/acme/shop in "),
        "{said}"
    );
    let commits = stored(&database, REPO).await;
    assert_eq!(commits.len(), 6);
    let merge = find(&commits, &h.m);
    assert_eq!(merge.parents, vec![h.c.clone(), h.f.clone()]);
    assert_eq!(merge.committed_at, (EPOCH + 5 * 60) * NANOS);
    assert_eq!(
        merge.author.as_deref(),
        Some("Ada Lovelace <ada@example.com>")
    );

    let newest = h.repo.commit("after the merge");
    let said = summary(&import(h.repo.path(), &args, Some(&write)));
    assert!(said.starts_with("imported 1 new commits ("), "{said}");
    assert_eq!(stored(&database, REPO).await.len(), 7);
    assert_eq!(
        find(&stored(&database, REPO).await, &newest).parents,
        vec![h.m]
    );

    // A read token may ask but not write; no token at all is refused before anything is read.
    let read = create_token(&database, "dora_metrics_read");
    h.repo.commit("one more");
    let refused = import(h.repo.path(), &args, Some(&read));
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("403"),
        "{refused:?}"
    );
    let missing = import(h.repo.path(), &args, None);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("DORA_TOKEN"),
        "{missing:?}"
    );
    assert_eq!(stored(&database, REPO).await.len(), 7);
}

#[tokio::test]
async fn without_repository_id_the_origin_remote_names_the_repository() {
    let h = history();
    h.repo
        .git(&["remote", "add", "origin", "git@github.com:acme/shop.git"]);
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("origin.db").display());
    let said = summary(&import(h.repo.path(), &["--database", &database], None));
    assert!(said.contains(" into github.com/acme/shop in "), "{said}");
    assert_eq!(stored(&database, REPO).await.len(), 6);

    let no_origin = Fixture::new();
    let failed = import(no_origin.path(), &["--database", &database], None);
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("pass --repository-id"), "{stderr}");
    assert!(stderr.contains("no remote named origin"), "{stderr}");
}

#[test]
fn a_path_that_is_no_repository_fails_without_creating_a_database() {
    let plain = tempfile::tempdir().unwrap();
    let db = plain.path().join("never.db");
    let failed = import(
        plain.path(),
        &[
            "--repository-id",
            REPO,
            "--database",
            &format!("sqlite://{}", db.display()),
        ],
        None,
    );
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("cannot open a git repository"), "{stderr}");
    assert!(!db.exists());
}
