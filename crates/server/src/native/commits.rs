//! `POST /api/v1/commits`: repository history pushed by CI systems (and by `dorametrics import
//! git --url`), as NDJSON or a JSON array; `POST /api/v1/commits/known` tells a pusher which
//! commits are already there, so it can send only what is new.

use axum::extract::{Request, State};
use axum::Json;
use dora_core::model::{normalise_commit_sha, Commit, MergeRequest, Scope};
use dora_core::repo::parse_repository;
use serde_json::{json, Value};

use super::bulk;
use crate::auth::Caller;
use crate::body::JsonBody;
use crate::datadog::fields::Object;
use crate::error::{ApiError, Problem};
use crate::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Histories are pushed in bulk: a bigger limit than other bodies (well over
/// 100 000 commits).
pub const MAX_COMMITS_BODY_BYTES: usize = 64 * 1024 * 1024;

/// More shas than this per look-up are refused; a pusher asks in batches.
pub const MAX_KNOWN_SHAS: usize = 10_000;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(put_commits))
        .routes(routes!(known_commits))
}

#[utoipa::path(post, path = "/api/v1/commits", tag = "native",
    description = "Commits in bulk, as NDJSON (`application/x-ndjson`) or a JSON array, all or none (write scope): `{\"received\", \"new\"}`.",
    request_body(content = Vec<serde_json::Value>, content_type = "application/json"),
    responses((status = 200, body = serde_json::Value), crate::openapi::ApiErrors))]
async fn put_commits(
    State(state): State<AppState>,
    caller: Caller,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    caller.require(Scope::Write)?;
    let commits = bulk::decode(request, MAX_COMMITS_BODY_BYTES, "commit", commit_fields).await?;
    let received = commits.len();
    let new = state.store.put_commits(commits).await?;
    Ok(Json(json!({ "received": received, "new": new })))
}

#[utoipa::path(post, path = "/api/v1/commits/known", tag = "native",
    description = "Which of these shas a repository already has: `{\"known\": [sha]}` (read or write scope).",
    request_body = crate::openapi::KnownRequest,
    responses((status = 200, body = serde_json::Value), crate::openapi::ApiErrors))]
async fn known_commits(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(document): JsonBody,
) -> Result<Json<Value>, ApiError> {
    // A read, but also what a pusher with only the write scope needs to push incrementally.
    caller
        .require(Scope::Read)
        .or_else(|_| caller.require(Scope::Write))?;
    let root = Object::root(&document)?;
    let repository_id = repository_id(&root)?;
    root.required("shas")?;
    let shas = root.text_list("shas")?;
    if shas.len() > MAX_KNOWN_SHAS {
        return Err(Problem::at(
            root.pointer_of("shas"),
            format!(
                "shas has {} entries; ask about at most {MAX_KNOWN_SHAS} at once",
                shas.len()
            ),
        )
        .into());
    }
    let shas = shas
        .iter()
        .enumerate()
        .map(|(i, sha)| checked_sha(format!("/shas/{i}"), &format!("shas[{i}]"), sha))
        .collect::<Result<Vec<_>, _>>()?;
    let known = state.store.known_commits(&repository_id, &shas).await?;
    Ok(Json(json!({ "known": known })))
}

fn commit_fields(object: &Object<'_>) -> Result<Commit, Problem> {
    let repository_id = repository_id(object)?;
    let sha = checked_sha(
        object.pointer_of("sha"),
        "sha",
        &object.required_text("sha")?,
    )?;
    object.required("parents")?;
    let parents = object
        .text_list("parents")?
        .iter()
        .enumerate()
        .map(|(i, parent)| {
            let pointer = format!("{}/{i}", object.pointer_of("parents"));
            checked_sha(pointer, &format!("parents[{i}]"), parent)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let merge_request = match object.object("merge_request")? {
        None => None,
        Some(mr) => {
            mr.required("number")?;
            let number = mr.integer_in("number", 1, i64::MAX)?.unwrap_or_default();
            let created_at = mr.timestamp("created_at")?;
            let merged_at = mr.timestamp("merged_at")?;
            if let (Some(created), Some(merged)) = (created_at, merged_at) {
                if merged < created {
                    return Err(Problem::at(
                        mr.pointer_of("merged_at"),
                        "merged_at must not be before created_at",
                    ));
                }
            }
            Some(MergeRequest {
                number,
                created_at,
                merged_at,
            })
        }
    };
    Ok(Commit {
        repository_id,
        sha,
        parents,
        authored_at: object.required_timestamp("authored_at")?,
        committed_at: object.required_timestamp("committed_at")?,
        author: object.text("author")?,
        subject: object.text("subject")?,
        merge_request,
    })
}

/// A sha at `pointer`, named `name` (`sha`, `parents[2]`) in the complaint.
fn checked_sha(pointer: String, name: &str, raw: &str) -> Result<String, Problem> {
    normalise_commit_sha(raw).map_err(|e| Problem::at(pointer, format!("{name} {e}")))
}

/// The normalised id from `repository_url` or `repository_id` (either spelling is parsed the same
/// way, so every spelling of one repository meets the same commits); both must then agree.
fn repository_id(object: &Object<'_>) -> Result<String, Problem> {
    let parse = |key: &str| -> Result<Option<String>, Problem> {
        let Some(raw) = object.text(key)? else {
            return Ok(None);
        };
        parse_repository(&raw)
            .map(|repository| Some(repository.id))
            .map_err(|e| Problem::at(object.pointer_of(key), format!("{key} {e}")))
    };
    match (parse("repository_url")?, parse("repository_id")?) {
        (Some(from_url), Some(id)) if from_url != id => Err(Problem::at(
            object.pointer_of("repository_id"),
            format!("repository_id {id:?} is not the repository of repository_url ({from_url:?})"),
        )),
        (Some(id), _) | (None, Some(id)) => Ok(id),
        (None, None) => Err(Problem::at(
            object.pointer_of("repository_id"),
            "repository_id or repository_url is required",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_array(bytes: &[u8]) -> Result<Vec<Commit>, Problem> {
        bulk::decode_bytes(bytes, false, "commit", commit_fields)
    }

    fn decode_ndjson(bytes: &[u8]) -> Result<Vec<Commit>, Problem> {
        bulk::decode_bytes(bytes, true, "commit", commit_fields)
    }

    const SHA: &str = "66adc9350f2cc9b250b69abddab733dd55e1a588";
    const PARENT: &str = "0123456789abcdef0123456789abcdef01234567";

    fn commit_json() -> Value {
        json!({
            "repository_url": "git@github.com:acme/shop.git",
            "sha": SHA.to_uppercase(),
            "parents": [PARENT],
            "authored_at": 1_735_689_600,
            "committed_at": "2025-01-01T00:01:00Z",
            "author": "Ada <ada@example.com>",
            "subject": "Fix checkout",
            "merge_request": {"number": 42, "created_at": 1_735_000_000_000_i64, "merged_at": 1_735_689_700}
        })
    }

    fn problem(result: Result<Vec<Commit>, Problem>) -> (String, String) {
        let problem = result.unwrap_err();
        (problem.pointer.unwrap_or_default(), problem.detail)
    }

    #[test]
    fn a_full_commit_decodes() {
        let body = serde_json::to_vec(&json!([commit_json()])).unwrap();
        let commits = decode_array(&body).unwrap();
        assert_eq!(
            commits,
            vec![Commit {
                repository_id: "github.com/acme/shop".into(),
                sha: SHA.into(),
                parents: vec![PARENT.into()],
                authored_at: 1_735_689_600_000_000_000,
                committed_at: 1_735_689_660_000_000_000,
                author: Some("Ada <ada@example.com>".into()),
                subject: Some("Fix checkout".into()),
                merge_request: Some(MergeRequest {
                    number: 42,
                    created_at: Some(1_735_000_000_000_000_000),
                    merged_at: Some(1_735_689_700_000_000_000),
                }),
            }]
        );
    }

    #[test]
    fn ndjson_and_arrays_decode_alike() {
        let minimal = json!({"repository_id": "github.com/acme/shop", "sha": SHA, "parents": [],
            "authored_at": 1, "committed_at": 2});
        let ndjson = format!("{}\r\n\n  \n{}\n", commit_json(), minimal);
        let from_lines = decode_ndjson(ndjson.as_bytes()).unwrap();
        let array = serde_json::to_vec(&json!([commit_json(), minimal])).unwrap();
        assert_eq!(from_lines, decode_array(&array).unwrap());
        assert_eq!(from_lines[1].merge_request, None);
        assert!(decode_array(b"[]").unwrap().is_empty());
    }

    #[test]
    fn every_violation_names_the_commit_and_field() {
        let with = |key: &str, value: Value| {
            let mut commit = commit_json();
            commit[key] = value;
            commit
        };
        let without = |key: &str| {
            let mut commit = commit_json();
            commit.as_object_mut().unwrap().remove(key);
            commit
        };
        let cases = [
            (with("sha", json!("abc")), "/1/sha", "commit [1]: sha must be at least 40 hex digits, got 3 characters"),
            (without("sha"), "/1/sha", "commit [1]: sha is required"),
            (with("parents", json!([PARENT, "zz"])), "/1/parents/1", "commit [1]: parents[1] must be at least 40 hex digits, got 2 characters"),
            (without("parents"), "/1/parents", "commit [1]: parents is required"),
            (with("authored_at", json!("soon")), "/1/authored_at", "commit [1]: authored_at is not a valid RFC 3339 date-time (e.g. 2025-01-31T23:59:59Z)"),
            (without("committed_at"), "/1/committed_at", "commit [1]: committed_at is required"),
            (without("repository_url"), "/1/repository_id", "commit [1]: repository_id or repository_url is required"),
            (with("repository_id", json!("github.com/acme/other")), "/1/repository_id", "commit [1]: repository_id \"github.com/acme/other\" is not the repository of repository_url (\"github.com/acme/shop\")"),
            (with("repository_url", json!("shop")), "/1/repository_url", "commit [1]: repository_url must name a host and a repository path, e.g. https://github.com/org/repo"),
            (with("merge_request", json!({"number": 0})), "/1/merge_request/number", "commit [1]: number must be a whole number from 1 to 9223372036854775807, got 0"),
            (with("merge_request", json!({"number": 3, "created_at": 10, "merged_at": 5})), "/1/merge_request/merged_at", "commit [1]: merged_at must not be before created_at"),
            (with("subject", json!(7)), "/1/subject", "commit [1]: subject must be a string, got a number"),
            (json!("not an object"), "/1", "commit [1]: a commit must be a JSON object, got a string"),
        ];
        for (bad, pointer, detail) in cases {
            let array = serde_json::to_vec(&json!([commit_json(), bad, "later garbage"])).unwrap();
            assert_eq!(
                problem(decode_array(&array)),
                (pointer.to_string(), detail.to_string()),
                "{bad}"
            );
            let ndjson = format!("{}\n{}\n", commit_json(), bad);
            let (ndjson_pointer, ndjson_detail) = problem(decode_ndjson(ndjson.as_bytes()));
            assert_eq!(ndjson_pointer, pointer);
            assert_eq!(ndjson_detail, detail.replace("commit [1]", "line 2"));
        }
    }

    #[test]
    fn bodies_that_are_not_commit_lists_are_400() {
        let (pointer, detail) = problem(decode_array(br#"{"sha": "x"}"#));
        assert_eq!(pointer, "");
        assert!(
            detail.starts_with("The request body must be a JSON array of commits"),
            "{detail}"
        );
        let (_, detail) = problem(decode_array(br#"[{"sha": "#));
        assert!(
            detail.starts_with("The request body is not valid JSON"),
            "{detail}"
        );
        let (_, detail) = problem(decode_array(b"[] []"));
        assert!(
            detail.starts_with("The request body is not valid JSON"),
            "{detail}"
        );
        let (pointer, detail) = problem(decode_ndjson(b"\n{\"sha\": \n"));
        assert_eq!(pointer, "/1");
        assert!(detail.starts_with("line 2 is not valid JSON"), "{detail}");
    }
}
