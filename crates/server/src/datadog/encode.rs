//! Domain values to Datadog response documents. Absent optional fields are omitted, never
//! `null`, so that the typed models of the official clients accept every object.

use dora_core::model::{Failure, StoredDeployment};
use dora_core::time::to_rfc3339;
use serde_json::{json, Map, Value};

pub const DEPLOYMENT_TYPE: &str = "dora_deployment";
pub const FAILURE_TYPE: &str = "dora_failure";

fn put_optional(attributes: &mut Map<String, Value>, key: &str, value: &Option<String>) {
    if let Some(value) = value {
        attributes.insert(key.to_string(), Value::from(value.as_str()));
    }
}

pub fn deployment(stored: &StoredDeployment) -> Value {
    let d = &stored.deployment;
    let mut attributes = Map::new();
    attributes.insert("service".into(), Value::from(d.service.as_str()));
    put_optional(&mut attributes, "env", &d.env);
    put_optional(&mut attributes, "team", &d.team);
    put_optional(&mut attributes, "version", &d.version);
    attributes.insert("started_at".into(), Value::from(to_rfc3339(d.started_at)));
    attributes.insert("finished_at".into(), Value::from(to_rfc3339(d.finished_at)));
    if let Some(git) = &d.git {
        attributes.insert(
            "git".into(),
            json!({ "commit_sha": git.commit_sha, "repository_id": git.repository_id }),
        );
    }
    attributes.insert("custom_tags".into(), Value::from(d.custom_tags.clone()));
    json!({ "id": d.id, "type": DEPLOYMENT_TYPE, "attributes": attributes })
}

pub fn failure(f: &Failure) -> Value {
    let mut attributes = Map::new();
    put_optional(&mut attributes, "name", &f.name);
    attributes.insert("services".into(), Value::from(f.services.clone()));
    put_optional(&mut attributes, "team", &f.team);
    put_optional(&mut attributes, "env", &f.env);
    put_optional(&mut attributes, "severity", &f.severity);
    put_optional(&mut attributes, "version", &f.version);
    attributes.insert("started_at".into(), Value::from(to_rfc3339(f.started_at)));
    if let Some(finished_at) = f.finished_at {
        attributes.insert("finished_at".into(), Value::from(to_rfc3339(finished_at)));
    }
    if let Some(git) = &f.git {
        attributes.insert(
            "git".into(),
            json!({ "commit_sha": git.commit_sha, "repository_url": git.repository_url }),
        );
    }
    attributes.insert("custom_tags".into(), Value::from(f.custom_tags.clone()));
    json!({ "id": f.id, "type": FAILURE_TYPE, "attributes": attributes })
}
