//! PagerDuty v3 deliveries: `incident.triggered` opens a failure, `incident.resolved` resolves
//! it at the event's time, `incident.reopened` opens it again; the incident itself (title,
//! service, priority or urgency, creation) comes with each.

use dora_core::model::{clipped_text, Failure};
use serde_json::Value;

use super::{Change, Context, Translated};
use crate::datadog::fields::Object;
use crate::error::Problem;

pub fn translate(payload: &Value, cx: &Context<'_>) -> Result<Translated, Problem> {
    let root = Object::root(payload)?;
    let event = root.required_object("event")?;
    let event_type = event.required_text("event_type")?;
    let resolved = match event_type.as_str() {
        "incident.triggered" | "incident.reopened" => false,
        "incident.resolved" => true,
        other => {
            return Ok(Translated::Ignored(format!(
                "event {other} is not one dorametrics uses"
            )))
        }
    };
    let occurred_at = event.required_timestamp("occurred_at")?;
    let incident = event.required_object("data")?;
    let service = incident.required_object("service")?;
    let service_name = service
        .text("summary")?
        .map_or_else(|| service.required_id_text("id"), Ok)?;
    let service_id = service.id_text("id")?.unwrap_or_default();
    let service = cx
        .alias(&service_name)
        .or_else(|| cx.alias(&service_id))
        .unwrap_or(&service_name)
        .to_string();
    let severity = match incident.object("priority")? {
        Some(priority) => priority.text("summary")?,
        None => None,
    }
    .or(incident.text("urgency")?);
    let started_at = incident.required_timestamp("created_at")?;
    let failure = Failure {
        id: format!("pagerduty:{}", incident.required_id_text("id")?),
        name: incident
            .get("title")
            .and_then(Value::as_str)
            .and_then(clipped_text),
        services: vec![service],
        team: None,
        env: None,
        severity,
        started_at,
        finished_at: resolved.then_some(occurred_at.max(started_at)),
        version: None,
        git: None,
        custom_tags: Vec::new(),
        source: "pagerduty".into(),
    };
    Ok(Translated::Changes(vec![Change::Failure {
        failure,
        as_of: occurred_at,
    }]))
}
