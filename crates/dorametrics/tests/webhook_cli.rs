//! `dorametrics webhook` as users run it: on a database and through a running server.

mod support;

use std::process::{Command, Output};

use support::{create_token, Server};

fn webhook(args: &[&str], token: Option<&str>) -> Output {
    let mut command = Command::new(support::BIN);
    command.arg("webhook").args(args);
    if let Some(token) = token {
        command.env("DORA_TOKEN", token);
    }
    command.output().unwrap()
}

fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn refused(output: Output) -> String {
    assert!(!output.status.success());
    String::from_utf8(output.stderr).unwrap()
}

#[tokio::test]
async fn hooks_are_made_listed_and_removed_on_a_database_and_through_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("hooks.db").display());
    let db = ["--database", database.as_str()];
    let made = ok(webhook(
        &[&["create", "--provider", "github", "--name", "gh"][..], &db].concat(),
        None,
    ));
    let secret = made.trim();
    assert_eq!(secret.len(), 64, "a generated secret, alone: {made:?}");
    assert!(secret.chars().all(|c| c.is_ascii_hexdigit()));
    let again = refused(webhook(
        &[&["create", "--provider", "github", "--name", "gh"][..], &db].concat(),
        None,
    ));
    assert!(again.contains("exists already"), "{again}");
    let unknown = refused(webhook(
        &[&["create", "--provider", "jenkins", "--name", "j"][..], &db].concat(),
        None,
    ));
    assert!(unknown.contains("github, gitlab"), "{unknown}");
    let misplaced = refused(webhook(
        &[
            &["create", "--provider", "pagerduty", "--name", "pd"][..],
            &["--deploy-workflow", "deploy.yml"],
            &db,
        ]
        .concat(),
        None,
    ));
    assert!(misplaced.contains("--deploy-workflow"), "{misplaced}");

    let server = Server::start(&database);
    let admin = create_token(&database, "admin");
    let url = ["--url", server.base.as_str()];
    let given = "pagerduty-signing-secret-0001";
    let made = ok(webhook(
        &[
            &["create", "--provider", "pagerduty", "--name", "pd"][..],
            &["--secret", given],
            &url,
        ]
        .concat(),
        Some(&admin),
    ));
    assert_eq!(made.trim(), given);
    let listed = ok(webhook(
        &[&["list", "--json"][..], &url].concat(),
        Some(&admin),
    ));
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let names: Vec<&str> = listed["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["gh", "pd"]);
    assert!(!listed.to_string().contains(secret) && !listed.to_string().contains(given));
    let table = ok(webhook(&[&["list"][..], &db].concat(), None));
    assert!(
        table.starts_with("NAME") && table.contains("/api/v1/webhooks/github"),
        "{table}"
    );

    // A delivery signed with the secret it printed is taken, and kept in the record.
    let body = br#"{"zen":"Practicality beats purity.","hook_id":1}"#;
    let delivered = reqwest::Client::new()
        .post(format!("{}/api/v1/webhooks/github", server.base))
        .header("X-GitHub-Event", "ping")
        .header("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
        .header(
            "X-Hub-Signature-256",
            dora_server::webhooks::verify::sign::github(body, secret),
        )
        .body(&body[..])
        .send()
        .await
        .unwrap();
    assert_eq!(delivered.status(), 202);
    let record = ok(webhook(&[&["deliveries"][..], &db].concat(), None));
    assert!(
        record.contains("ping") && record.contains("ignored") && record.contains("gh"),
        "{record}"
    );

    // Aliases, through the server.
    ok(webhook(
        &[
            &[
                "alias",
                "set",
                "--provider",
                "github",
                "acme/shop-v2",
                "shop",
            ][..],
            &url,
        ]
        .concat(),
        Some(&admin),
    ));
    let aliases = ok(webhook(
        &[&["alias", "list"][..], &url].concat(),
        Some(&admin),
    ));
    assert!(
        aliases.contains("acme/shop-v2") && aliases.contains("shop"),
        "{aliases}"
    );
    ok(webhook(
        &[
            &["alias", "remove", "--provider", "github", "acme/shop-v2"][..],
            &url,
        ]
        .concat(),
        Some(&admin),
    ));
    let aliases = ok(webhook(&[&["alias", "list"][..], &db].concat(), None));
    assert!(!aliases.contains("acme/shop-v2"), "{aliases}");

    // Removed: its provider's deliveries find no hook.
    ok(webhook(
        &[&["delete", "gh"][..], &url].concat(),
        Some(&admin),
    ));
    let gone = refused(webhook(&[&["delete", "gh"][..], &db].concat(), None));
    assert!(gone.contains("no hook is named"), "{gone}");
    let without = reqwest::Client::new()
        .post(format!("{}/api/v1/webhooks/github", server.base))
        .header("X-GitHub-Event", "ping")
        .body(&body[..])
        .send()
        .await
        .unwrap();
    assert_eq!(without.status(), 404);
    // Through a server, a token is needed.
    let no_token = refused(webhook(&[&["list"][..], &url].concat(), None));
    assert!(no_token.contains("DORA_TOKEN"), "{no_token}");
}
