//! `serve --tls-cert --tls-key`: https with a certificate a test CA signed, reached by a client
//! trusting that CA, and by the CLI's `--url` commands with `--ca-cert`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use serde_json::{json, Value};
use support::{create_token, Server, BIN};

/// A CA and a certificate it signed for `localhost` and 127.0.0.1, as PEM files.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn args(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.path("cert.pem").display().to_string(),
            "--tls-key".into(),
            self.path("key.pem").display().to_string(),
        ]
    }
}

/// The server's https address, by name (so that the certificate's name is checked).
fn https(server: &Server) -> String {
    let port = server.base.rsplit(':').next().unwrap();
    format!("https://localhost:{port}")
}

fn trusting(ca: &Path) -> reqwest::Client {
    let pem = std::fs::read(ca).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap()
}

fn dorametrics(args: &[&str], token: &str) -> Output {
    Command::new(BIN)
        .args(args)
        .env("DORA_TOKEN", token)
        .env_remove("DORA_CA_CERT")
        .output()
        .unwrap()
}

#[tokio::test]
async fn https_serves_the_apis_and_the_cli_reaches_it() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("tls.db").display());
    let args = pki.args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start_with(&database, &args);
    let base = https(&server);
    let admin = create_token(&database, "admin");
    let client = trusting(&pki.path("ca.pem"));
    let posted = client
        .post(format!("{base}/api/v2/dora/deployment"))
        .header("DD-API-KEY", &admin)
        .json(
            &json!({"data": {"attributes": {"service": "shop", "env": "production",
            "started_at": 1_735_700_000, "finished_at": 1_735_700_300}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 202);

    // Plain http on the https port gets nowhere, and harms no one.
    let plain = reqwest::get(format!("{}/healthz", server.base)).await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    let healthy = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(healthy.status(), 200);

    // `report --url https://… --ca-cert`.
    let ca = pki.path("ca.pem").display().to_string();
    let report = dorametrics(
        &[
            "report",
            "--url",
            &base,
            "--ca-cert",
            &ca,
            "--from",
            "2025-01-01",
            "--to",
            "2025-01-31",
            "--format",
            "json",
        ],
        &admin,
    );
    assert!(
        report.status.success(),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    let document: Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(document["totals"]["deployments"], 1);
    // Without the CA the server's certificate is not trusted, and the error says so.
    let untrusted = dorametrics(&["report", "--url", &base], &admin);
    assert!(!untrusted.status.success());
    let said = String::from_utf8_lossy(&untrusted.stderr).to_lowercase();
    assert!(
        said.contains("certificate") || said.contains("cannot reach"),
        "{said}"
    );

    // `import git --url https://… --ca-cert`.
    let repo = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| -> String {
        let output = Command::new("git")
            .args(args)
            .current_dir(repo.path())
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_string()
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["commit", "-q", "--allow-empty", "-m", "first"]);
    git(&["commit", "-q", "--allow-empty", "-m", "second"]);
    let head = git(&["rev-parse", "HEAD"]);
    let path = repo.path().display().to_string();
    let imported = dorametrics(
        &[
            "import",
            "git",
            &path,
            "--repository-id",
            "github.com/acme/shop",
            "--url",
            &base,
            "--ca-cert",
            &ca,
        ],
        &admin,
    );
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    let known = client
        .post(format!("{base}/api/v1/commits/known"))
        .header("DD-API-KEY", &admin)
        .json(&json!({"repository_url": "https://github.com/acme/shop", "shas": [head]}))
        .send()
        .await
        .unwrap();
    assert_eq!(known.status(), 200);
    assert_eq!(known.json::<Value>().await.unwrap()["known"], json!([head]));
}

#[test]
fn a_bad_certificate_stops_the_start_with_a_clear_message() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("bad.db").display());
    let missing = dir.path().join("missing.pem").display().to_string();
    let key = pki.path("key.pem").display().to_string();
    let output = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--database", &database])
        .args(["--tls-cert", &missing, "--tls-key", &key])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("cannot read the certificate chain"), "{said}");
    // A key without a certificate is refused by the command line itself.
    let output = Command::new(BIN)
        .args(["serve", "--tls-key", &key])
        .output()
        .unwrap();
    assert!(!output.status.success());
}
