//! `dorametrics token`: create, list and revoke API tokens in a database (what
//! `/api/v1/admin/tokens` does through a server).

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use dora_core::model::Scope;
use dora_server::auth::{expiry_after, issue_token, TokenList, TokenView};
use dora_store::{Restriction, Store, TokenRecord};

use crate::{open_store, Access, DatabaseArg};

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it, alone, on stdout. It is shown only this once.
    Create {
        /// A name to recognise the token by.
        #[arg(long)]
        name: String,
        /// What the token may do: dora_metrics_read, dora_metrics_write or admin (repeatable).
        #[arg(long = "scope", required = true, value_parser = parse_scope)]
        scopes: Vec<Scope>,
        /// Limit the token to this project path, e.g. acme/shop (repeatable); elsewhere the
        /// GitLab API answers 404.
        #[arg(long = "project", value_name = "PATH", value_parser = project_restriction)]
        projects: Vec<Restriction>,
        /// Limit the token to this group path and everything inside it, e.g. acme/platform
        /// (repeatable).
        #[arg(long = "group", value_name = "PATH", value_parser = group_restriction)]
        groups: Vec<Restriction>,
        /// The token stops working this long after now, e.g. 90d or 12h. Default: never.
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<String>,
        #[command(flatten)]
        db: DatabaseArg,
    },
    /// List the tokens: id, name, scopes, restrictions, created, last used, expiry, status
    /// (never a secret).
    List {
        /// Print the list as JSON, as `GET /api/v1/admin/tokens` answers it.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DatabaseArg,
    },
    /// Revoke a token, by its id or by its name (when only one token has it). Every node
    /// refuses it from then on.
    Revoke {
        /// The token's id (as `token list` shows it) or its name.
        token: String,
        #[command(flatten)]
        db: DatabaseArg,
    },
}

fn project_restriction(path: &str) -> Result<Restriction, String> {
    Restriction::parse(&format!("project:{path}"))
        .ok_or_else(|| format!("{path:?} is not a project path like acme/shop"))
}

fn group_restriction(path: &str) -> Result<Restriction, String> {
    Restriction::parse(&format!("group:{path}"))
        .ok_or_else(|| format!("{path:?} is not a group path like acme"))
}

fn parse_scope(text: &str) -> Result<Scope, String> {
    Scope::parse(text).ok_or_else(|| {
        format!("unknown scope {text:?}; use dora_metrics_read, dora_metrics_write or admin")
    })
}

pub async fn run(command: TokenCommand) -> Result<()> {
    match command {
        TokenCommand::Create {
            name,
            scopes,
            projects,
            groups,
            expires_in,
            db,
        } => {
            let expires_at = expires_in
                .map(|text| expiry_after(dora_core::time::now(), &text))
                .transpose()
                .map_err(|why| anyhow::anyhow!("--expires-in {why}"))?;
            let store = open_store(&db.database, Access::Create).await?;
            let restrictions = projects.into_iter().chain(groups).collect();
            let issued = issue_token(name, scopes, restrictions, expires_at);
            store
                .create_token(issued.record)
                .await
                .context("cannot store the token")?;
            println!("{}", issued.token);
            Ok(())
        }
        TokenCommand::List { json, db } => {
            let store = open_store(&db.database, Access::Existing).await?;
            let now = dora_core::time::now();
            let views: Vec<TokenView> = store
                .list_tokens()
                .await?
                .iter()
                .map(|t| TokenView::of(t, now))
                .collect();
            if json {
                let list = TokenList { tokens: views };
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print!("{}", table(&views));
            }
            Ok(())
        }
        TokenCommand::Revoke { token, db } => {
            let store = open_store(&db.database, Access::Existing).await?;
            let record = resolve(store.as_ref(), &token).await?;
            if store
                .revoke_token(&record.id, dora_core::time::now())
                .await?
            {
                eprintln!("revoked token {} ({})", record.id, record.name);
            } else {
                eprintln!("token {} ({}) was already revoked", record.id, record.name);
            }
            Ok(())
        }
    }
}

/// The token `given` names: the one with that id, else the only live one with that name.
async fn resolve(store: &dyn Store, given: &str) -> Result<TokenRecord> {
    if let Some(record) = store.find_token(given).await? {
        return Ok(record);
    }
    let now = dora_core::time::now();
    let named: Vec<TokenRecord> = store
        .list_tokens()
        .await?
        .into_iter()
        .filter(|t| t.name == given && t.is_live(now))
        .collect();
    match named.as_slice() {
        [] => bail!("no token has the id or name {given:?} (see `dorametrics token list`)"),
        [one] => Ok(one.clone()),
        several => {
            let ids: Vec<&str> = several.iter().map(|t| t.id.as_str()).collect();
            bail!(
                "{} tokens are named {given:?}; revoke one by its id: {}",
                several.len(),
                ids.join(", ")
            )
        }
    }
}

/// Aligned columns, one token a line.
fn table(views: &[TokenView]) -> String {
    let or_dash = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".into());
    let header = [
        "ID",
        "NAME",
        "SCOPES",
        "RESTRICTIONS",
        "CREATED",
        "LAST USED",
        "EXPIRES",
        "STATUS",
    ];
    let mut rows = vec![header.map(String::from).to_vec()];
    rows.extend(views.iter().map(|v| {
        vec![
            v.id.clone(),
            v.name.clone(),
            v.scopes.join(","),
            if v.restrictions.is_empty() {
                "-".into()
            } else {
                v.restrictions.join(",")
            },
            v.created_at.clone(),
            or_dash(&v.last_used_at),
            or_dash(&v.expires_at),
            v.status.clone(),
        ]
    }));
    crate::table::aligned(&rows)
}
