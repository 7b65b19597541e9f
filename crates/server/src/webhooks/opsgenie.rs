//! Opsgenie webhook integration deliveries: an alert's `Create` opens a failure, `Close`
//! resolves it. Opsgenie signs nothing: the hook's secret comes as `Authorization: Bearer`
//! (a header the integration sets).

use dora_core::model::{clipped_text, Failure};
use serde_json::Value;

use super::{Change, Context, Translated};
use crate::datadog::fields::Object;
use crate::error::Problem;

pub fn translate(payload: &Value, cx: &Context<'_>) -> Result<Translated, Problem> {
    let root = Object::root(payload)?;
    let action = root.required_text("action")?;
    let resolved = match action.as_str() {
        "Create" => false,
        "Close" => true,
        other => {
            return Ok(Translated::Ignored(format!(
                "alert action {other} is not one dorametrics uses"
            )))
        }
    };
    let alert = root.required_object("alert")?;
    // Which service it is about: a `service:<name>` tag, else the alert's entity.
    let tagged = alert
        .text_list("tags")?
        .into_iter()
        .find_map(|tag| tag.strip_prefix("service:").map(str::to_string));
    let named = tagged.or(alert.text("entity")?).ok_or_else(|| {
        Problem::at(
            alert.pointer_of("entity"),
            "the alert names no service: give it a service:<name> tag or an entity",
        )
    })?;
    let service = cx.alias(&named).unwrap_or(&named).to_string();
    // createdAt is in milliseconds, updatedAt in nanoseconds: both are told by magnitude.
    let started_at = alert.required_timestamp("createdAt")?;
    let updated_at = alert.required_timestamp("updatedAt")?;
    let failure = Failure {
        id: format!("opsgenie:{}", alert.required_id_text("alertId")?),
        name: alert
            .get("message")
            .and_then(Value::as_str)
            .and_then(clipped_text),
        services: vec![service],
        team: None,
        env: None,
        severity: alert.text("priority")?,
        started_at,
        finished_at: resolved.then_some(updated_at.max(started_at)),
        version: None,
        git: None,
        custom_tags: Vec::new(),
        source: "opsgenie".into(),
    };
    Ok(Translated::Changes(vec![Change::Failure {
        failure,
        as_of: updated_at,
    }]))
}
