//! CDEvents (spec 0.4 and 0.5): `service.deployed`, `service.upgraded` and
//! `service.rolledback` → deployments, `incident.detected` / `incident.reported` and
//! `incident.resolved` → failures. A delivery is a CDEvent as JSON, a structured CloudEvent
//! carrying one as its `data`, or a binary CloudEvent (the `ce-` headers, the CDEvent as body).

use axum::http::HeaderMap;
use dora_core::model::{clipped_text, Deployment, Failure};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Change, Context, Translated};
use crate::datadog::fields::Object;
use crate::error::Problem;

/// The CDEvent a delivery carries: the body itself, or a structured CloudEvent's `data`.
fn cdevent(payload: &Value) -> &Value {
    match payload.get("context") {
        Some(_) => payload,
        None => payload.get("data").unwrap_or(payload),
    }
}

/// The event type without its prefix and version: `service.deployed`.
fn kind(type_name: &str) -> Option<&str> {
    let rest = type_name.strip_prefix("dev.cdevents.")?;
    let mut parts = rest.splitn(3, '.');
    let (subject, predicate) = (parts.next()?, parts.next()?);
    Some(&rest[..subject.len() + 1 + predicate.len()])
}

/// What a replay of the delivery carries again: the event's source, id and type (as the
/// CloudEvent headers say them, else as its context does).
pub fn delivery_id(headers: &HeaderMap, payload: &Value) -> Option<String> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let context = cdevent(payload).get("context");
    let field = |name: &str| {
        context
            .and_then(|c| c.get(name))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let source = header("ce-source").or_else(|| field("source"))?;
    let id = header("ce-id").or_else(|| field("id"))?;
    let kind = header("ce-type").or_else(|| field("type"))?;
    Some(format!("{source} {id} {kind}"))
}

/// The event's type, for the record.
pub fn event_type(payload: &Value) -> String {
    cdevent(payload)
        .pointer("/context/type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// An event id from a CDEvents source and id, whatever characters they hold.
fn event_id(kind: &str, source: &str, id: &str) -> String {
    let digest = Sha256::digest(format!("{source}\n{id}").as_bytes());
    format!("cdevents:{kind}:{}", hex::encode(&digest[..16]))
}

pub fn translate(payload: &Value, cx: &Context<'_>) -> Result<Translated, Problem> {
    let event = cdevent(payload);
    let pointer = match event == payload {
        true => "",
        false => "/data",
    };
    let root = Object::element(event, pointer.to_string(), "The CDEvent")?;
    let context = root.required_object("context")?;
    let type_name = context.required_text("type")?;
    let Some(kind) = kind(&type_name) else {
        return Err(Problem::at(
            context.pointer_of("type"),
            format!("type {type_name:?} is not a CDEvents type (dev.cdevents.<subject>.<predicate>.<version>)"),
        ));
    };
    let at = context.required_timestamp("timestamp")?;
    let subject = root.required_object("subject")?;
    let content = subject.object("content")?;
    let environment = match &content {
        Some(content) => match content.object("environment")? {
            Some(env) => env.text("id")?,
            None => None,
        },
        None => None,
    };
    match kind {
        "service.deployed" | "service.upgraded" | "service.rolledback" => {
            let name = subject.required_text("id")?;
            let service = cx.alias(&name).unwrap_or(&name).to_string();
            let version = match &content {
                Some(content) => content.text("artifactId")?,
                None => None,
            };
            let source = context.required_text("source")?;
            let deployment = Deployment {
                id: event_id("deployment", &source, &context.required_text("id")?),
                service,
                env: environment,
                team: None,
                version,
                started_at: at,
                finished_at: at,
                git: None,
                custom_tags: Vec::new(),
                source: "cdevents".into(),
            };
            Ok(Translated::Changes(vec![match kind {
                "service.rolledback" => Change::Rollback(deployment),
                _ => Change::Deployment(deployment),
            }]))
        }
        "incident.detected" | "incident.reported" | "incident.resolved" => {
            let content = content
                .ok_or_else(|| Problem::at(subject.pointer_of("content"), "content is required"))?;
            let service = content.required_object("service")?;
            let name = service.required_text("id")?;
            let service = cx.alias(&name).unwrap_or(&name).to_string();
            let source = subject
                .text("source")?
                .map_or_else(|| context.required_text("source"), Ok)?;
            let resolved = kind == "incident.resolved";
            let failure = Failure {
                id: event_id("incident", &source, &subject.required_text("id")?),
                name: content
                    .get("description")
                    .and_then(Value::as_str)
                    .and_then(clipped_text),
                services: vec![service],
                team: None,
                env: environment,
                severity: None,
                started_at: at,
                finished_at: resolved.then_some(at),
                version: content.text("artifactId")?,
                git: None,
                custom_tags: Vec::new(),
                source: "cdevents".into(),
            };
            Ok(Translated::Changes(vec![match resolved {
                true => Change::IncidentResolved(failure),
                false => Change::IncidentDetected(failure),
            }]))
        }
        other => Ok(Translated::Ignored(format!(
            "CDEvent {other} is not one dorametrics uses"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_lose_their_prefix_and_version() {
        assert_eq!(
            kind("dev.cdevents.service.deployed.0.2.0"),
            Some("service.deployed")
        );
        assert_eq!(
            kind("dev.cdevents.incident.resolved.0.3.0-draft"),
            Some("incident.resolved")
        );
        assert_eq!(kind("com.example.deployed"), None);
        assert_eq!(kind("dev.cdevents.service"), None);
    }

    #[test]
    fn ids_are_deterministic_and_valid() {
        let id = event_id("deployment", "/event/source/123", "271069a8-fc18");
        assert_eq!(
            id,
            event_id("deployment", "/event/source/123", "271069a8-fc18")
        );
        assert_ne!(
            id,
            event_id("deployment", "/event/source/124", "271069a8-fc18")
        );
        assert!(dora_core::model::check_event_id(&id).is_ok(), "{id}");
    }
}
