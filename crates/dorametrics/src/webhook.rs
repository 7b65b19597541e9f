//! `dorametrics webhook`: make, list and remove hooks, read the deliveries, set aliases — on a
//! database (`--database`) or through a server (`--url`, an admin token in DORA_TOKEN), as
//! `/api/v1/admin/webhooks` does.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use dora_core::webhook::{Alias, Provider};
use dora_server::webhooks::admin::{
    AliasList, AliasView, CreatedHook, DeliveryList, DeliveryView, HookList, HookRequest, HookView,
};
use dora_store::Store;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::{open_store, Access, DatabaseArg};

#[derive(Subcommand)]
pub enum WebhookCommand {
    /// Make a hook and print its secret, alone, on stdout (generated unless --secret is given).
    /// Point the provider at /api/v1/webhooks/<provider> with that secret.
    Create {
        /// github, gitlab, pagerduty, opsgenie, incidentio, cdevents or argocd.
        #[arg(long)]
        provider: String,
        /// A name to recognise the hook by (letters, digits, '-', '_', '.').
        #[arg(long)]
        name: String,
        /// The secret the provider signs with (at least 16 characters); default: a new one.
        #[arg(long)]
        secret: Option<String>,
        /// GitHub: successful runs of this workflow (its name or file, e.g. deploy.yml) are
        /// deployments too.
        #[arg(long)]
        deploy_workflow: Option<String>,
        /// GitHub: the env those runs deploy to (default production).
        #[arg(long)]
        deploy_env: Option<String>,
        /// GitHub: issues with this label are incidents (default incident).
        #[arg(long)]
        incident_label: Option<String>,
        #[command(flatten)]
        at: Where,
    },
    /// List the hooks (never a secret).
    List {
        /// As JSON, as `GET /api/v1/admin/webhooks` answers.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        at: Where,
    },
    /// Remove a hook: its deliveries are refused from then on.
    Delete {
        name: String,
        #[command(flatten)]
        at: Where,
    },
    /// The deliveries kept, newest first: provider, event, when, outcome and what it stored.
    Deliveries {
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// As JSON, as `GET /api/v1/webhooks/deliveries` answers.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        at: Where,
    },
    /// Names a provider uses (a repository, a PagerDuty service, …) that stand for another
    /// dorametrics service.
    #[command(subcommand)]
    Alias(AliasCommand),
}

#[derive(Subcommand)]
pub enum AliasCommand {
    /// Deliveries of PROVIDER naming NAME are of SERVICE.
    Set {
        #[arg(long)]
        provider: String,
        name: String,
        service: String,
        #[command(flatten)]
        at: Where,
    },
    List {
        #[command(flatten)]
        at: Where,
    },
    Remove {
        #[arg(long)]
        provider: String,
        name: String,
        #[command(flatten)]
        at: Where,
    },
}

/// A database, or a server.
#[derive(Args)]
pub struct Where {
    #[command(flatten)]
    db: DatabaseArg,
    /// Through the dorametrics server at this URL instead of a database (it takes precedence
    /// over --database and DORA_DATABASE); an admin token is read from DORA_TOKEN.
    #[arg(long)]
    url: Option<String>,
    #[command(flatten)]
    ca: crate::remote::CaCertArg,
}

/// What a command works on.
enum Target {
    Store(Arc<dyn Store>),
    Server {
        client: reqwest::Client,
        url: String,
        token: String,
    },
}

impl Where {
    async fn open(&self, access: Access) -> Result<Target> {
        match &self.url {
            Some(url) => Ok(Target::Server {
                client: crate::remote::client(self.ca.ca_cert.as_deref())?,
                url: url.trim_end_matches('/').to_string(),
                token: std::env::var("DORA_TOKEN")
                    .context("--url needs a token with the admin scope in DORA_TOKEN")?,
            }),
            None => Ok(Target::Store(open_store(&self.db.database, access).await?)),
        }
    }
}

impl Target {
    /// A request to the server; the answer's JSON, or `None` for 204.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Option<T>> {
        let Target::Server { client, url, token } = self else {
            bail!("not a server");
        };
        let mut request = client
            .request(method, format!("{url}{path}"))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("{url}{path} answered {status}: {text}");
        }
        if status == reqwest::StatusCode::NO_CONTENT {
            return Ok(None);
        }
        let parsed = serde_json::from_str(&text)
            .with_context(|| format!("{url}{path} answered what is not its JSON: {text}"))?;
        Ok(Some(parsed))
    }
}

fn provider(text: &str) -> Result<Provider> {
    Provider::parse(text).with_context(|| {
        format!(
            "--provider {text:?} is not a provider; use one of {}",
            Provider::names()
        )
    })
}

pub async fn run(command: WebhookCommand) -> Result<()> {
    match command {
        WebhookCommand::Create {
            provider,
            name,
            secret,
            deploy_workflow,
            deploy_env,
            incident_label,
            at,
        } => {
            let request = HookRequest {
                name,
                provider,
                secret,
                deploy_workflow,
                deploy_env,
                incident_label,
            };
            let secret = match at.open(Access::Create).await? {
                Target::Store(store) => {
                    let hook = request.into_hook().map_err(|bad| {
                        anyhow::anyhow!("--{}", bad.to_string().replace('_', "-"))
                    })?;
                    if !store.create_hook(hook.clone()).await? {
                        bail!("a hook named {:?} exists already", hook.name);
                    }
                    hook.secret
                }
                server => {
                    let body = json!({
                        "name": request.name,
                        "provider": request.provider,
                        "secret": request.secret,
                        "deploy_workflow": request.deploy_workflow,
                        "deploy_env": request.deploy_env,
                        "incident_label": request.incident_label,
                    });
                    let created: Option<CreatedHook> = server
                        .call(Method::POST, "/api/v1/admin/webhooks", Some(body))
                        .await?;
                    created.context("the server answered no hook")?.secret
                }
            };
            println!("{secret}");
            Ok(())
        }
        WebhookCommand::List { json, at } => {
            let hooks = match at.open(Access::Existing).await? {
                Target::Store(store) => store.hooks(None).await?.iter().map(HookView::of).collect(),
                server => {
                    let list: Option<HookList> = server
                        .call(Method::GET, "/api/v1/admin/webhooks", None)
                        .await?;
                    list.map(|l| l.webhooks).unwrap_or_default()
                }
            };
            if json {
                let list = HookList { webhooks: hooks };
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            let mut rows = vec![["NAME", "PROVIDER", "PATH", "CREATED", "OPTIONS"]
                .map(String::from)
                .to_vec()];
            rows.extend(hooks.iter().map(|h| {
                let options = [
                    h.deploy_workflow
                        .as_ref()
                        .map(|w| format!("deploy-workflow={w}")),
                    h.deploy_env.as_ref().map(|e| format!("deploy-env={e}")),
                    h.incident_label
                        .as_ref()
                        .map(|l| format!("incident-label={l}")),
                ];
                let options: Vec<String> = options.into_iter().flatten().collect();
                vec![
                    h.name.clone(),
                    h.provider.clone(),
                    h.path.clone(),
                    h.created_at.clone(),
                    if options.is_empty() {
                        "-".into()
                    } else {
                        options.join(" ")
                    },
                ]
            }));
            print!("{}", crate::table::aligned(&rows));
            Ok(())
        }
        WebhookCommand::Delete { name, at } => {
            match at.open(Access::Existing).await? {
                Target::Store(store) => {
                    if !store.delete_hook(&name).await? {
                        bail!("no hook is named {name:?} (see `dorametrics webhook list`)");
                    }
                }
                server => {
                    let path = format!("/api/v1/admin/webhooks/{}", path_segment(&name));
                    server
                        .call::<serde_json::Value>(Method::DELETE, &path, None)
                        .await?;
                }
            }
            eprintln!("removed hook {name}");
            Ok(())
        }
        WebhookCommand::Deliveries { limit, json, at } => {
            let deliveries: Vec<DeliveryView> = match at.open(Access::Existing).await? {
                Target::Store(store) => store
                    .deliveries(None, limit)
                    .await?
                    .iter()
                    .map(DeliveryView::of)
                    .collect(),
                server => {
                    let path = format!("/api/v1/webhooks/deliveries?limit={limit}");
                    let list: Option<DeliveryList> = server.call(Method::GET, &path, None).await?;
                    list.map(|l| l.deliveries).unwrap_or_default()
                }
            };
            if json {
                let list = DeliveryList { deliveries };
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            let header = ["RECEIVED", "PROVIDER", "HOOK", "EVENT", "OUTCOME", "DETAIL"];
            let mut rows = vec![header.map(String::from).to_vec()];
            rows.extend(deliveries.iter().map(|d| {
                vec![
                    d.received_at.clone(),
                    d.provider.clone(),
                    d.hook.clone().unwrap_or_else(|| "-".into()),
                    d.event.clone(),
                    d.outcome.clone(),
                    d.detail.clone(),
                ]
            }));
            print!("{}", crate::table::aligned(&rows));
            Ok(())
        }
        WebhookCommand::Alias(command) => alias(command).await,
    }
}

async fn alias(command: AliasCommand) -> Result<()> {
    match command {
        AliasCommand::Set {
            provider: p,
            name,
            service,
            at,
        } => {
            let provider = provider(&p)?;
            match at.open(Access::Create).await? {
                Target::Store(store) => {
                    let alias = Alias {
                        provider,
                        name: name.clone(),
                        service: service.clone(),
                    };
                    store.put_alias(alias).await?;
                }
                server => {
                    let path = alias_path(provider, &name);
                    server
                        .call::<AliasView>(Method::PUT, &path, Some(json!({ "service": service })))
                        .await?;
                }
            }
            eprintln!("{} {name} → {service}", provider.as_str());
            Ok(())
        }
        AliasCommand::List { at } => {
            let aliases: Vec<AliasView> = match at.open(Access::Existing).await? {
                Target::Store(store) => store
                    .aliases()
                    .await?
                    .into_iter()
                    .map(|a| AliasView {
                        provider: a.provider.as_str().to_string(),
                        name: a.name,
                        service: a.service,
                    })
                    .collect(),
                server => {
                    let path = "/api/v1/admin/webhook-aliases";
                    let list: Option<AliasList> = server.call(Method::GET, path, None).await?;
                    list.map(|l| l.aliases).unwrap_or_default()
                }
            };
            let mut rows = vec![["PROVIDER", "NAME", "SERVICE"].map(String::from).to_vec()];
            rows.extend(
                aliases
                    .iter()
                    .map(|a| vec![a.provider.clone(), a.name.clone(), a.service.clone()]),
            );
            print!("{}", crate::table::aligned(&rows));
            Ok(())
        }
        AliasCommand::Remove {
            provider: p,
            name,
            at,
        } => {
            let provider = provider(&p)?;
            match at.open(Access::Existing).await? {
                Target::Store(store) => {
                    if !store.delete_alias(provider, &name).await? {
                        bail!("no {} alias is named {name:?}", provider.as_str());
                    }
                }
                server => {
                    let path = alias_path(provider, &name);
                    server
                        .call::<serde_json::Value>(Method::DELETE, &path, None)
                        .await?;
                }
            }
            eprintln!("removed the {} alias {name}", provider.as_str());
            Ok(())
        }
    }
}

fn alias_path(provider: Provider, name: &str) -> String {
    format!(
        "/api/v1/admin/webhook-aliases/{}/{}",
        provider.as_str(),
        path_segment(name)
    )
}

/// A name as one URL path segment (a repository's full name holds a `/`).
fn path_segment(name: &str) -> String {
    percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC).to_string()
}
