//! Bulk request bodies (commits, deployments): NDJSON sent as `application/x-ndjson`, or a JSON
//! array. Decoded element by element, all or nothing: the first invalid element is refused with
//! a pointer that counts elements (or NDJSON lines) from 0, and a detail that names it.

use std::fmt;

use axum::extract::Request;
use axum::http::header;
use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
use serde_json::Value;

use crate::body::read_limited;
use crate::datadog::fields::Object;
use crate::error::{ApiError, Problem};

/// Reads a body of at most `limit` bytes and decodes every element with `fields`; `what`
/// ("commit", "deployment") names the elements in complaints.
pub async fn decode<T>(
    request: Request,
    limit: usize,
    what: &str,
    fields: impl Fn(&Object<'_>) -> Result<T, Problem>,
) -> Result<Vec<T>, ApiError> {
    let ndjson = is_ndjson(&request);
    let bytes = read_limited(request, limit).await?;
    Ok(decode_bytes(&bytes, ndjson, what, fields)?)
}

/// A body already read: NDJSON lines, or else a JSON array.
pub fn decode_bytes<T>(
    bytes: &[u8],
    ndjson: bool,
    what: &str,
    fields: impl Fn(&Object<'_>) -> Result<T, Problem>,
) -> Result<Vec<T>, Problem> {
    let element = Element { what, fields };
    if ndjson {
        decode_ndjson(bytes, &element)
    } else {
        decode_array(bytes, &element)
    }
}

/// `application/x-ndjson` (or `application/ndjson`): one element per line; anything else is JSON.
fn is_ndjson(request: &Request) -> bool {
    let Some(value) = request.headers().get(header::CONTENT_TYPE) else {
        return false;
    };
    let essence = value.to_str().unwrap_or("").split(';').next().unwrap_or("");
    let essence = essence.trim().to_ascii_lowercase();
    essence == "application/x-ndjson" || essence == "application/ndjson"
}

struct Element<'w, F> {
    what: &'w str,
    fields: F,
}

impl<T, F: Fn(&Object<'_>) -> Result<T, Problem>> Element<'_, F> {
    /// The element at `index`; `place` ("line 4", "commit [3]") starts every complaint so it
    /// names the element even where the pointer is not shown.
    fn decode(&self, value: &Value, index: usize, place: &str) -> Result<T, Problem> {
        let in_place = |problem: Problem| Problem {
            detail: format!("{place}: {}", problem.detail),
            ..problem
        };
        let pointer = format!("/{index}");
        crate::body::reject_nul(value, &pointer).map_err(in_place)?;
        let object =
            Object::element(value, pointer, &format!("a {}", self.what)).map_err(in_place)?;
        (self.fields)(&object).map_err(in_place)
    }
}

/// One element per line; blank lines are skipped.
fn decode_ndjson<T, F: Fn(&Object<'_>) -> Result<T, Problem>>(
    bytes: &[u8],
    element: &Element<'_, F>,
) -> Result<Vec<T>, Problem> {
    let mut decoded = Vec::new();
    for (index, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let place = format!("line {}", index + 1);
        let value: Value = serde_json::from_slice(line).map_err(|error| {
            Problem::at(
                format!("/{index}"),
                format!("{place} is not valid JSON: {error}"),
            )
        })?;
        decoded.push(element.decode(&value, index, &place)?);
    }
    Ok(decoded)
}

/// A JSON array, decoded element by element so a big body never exists as one `Value` tree.
fn decode_array<T, F: Fn(&Object<'_>) -> Result<T, Problem>>(
    bytes: &[u8],
    element: &Element<'_, F>,
) -> Result<Vec<T>, Problem> {
    let mut problem = None;
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let decoded = ArraySeed {
        element,
        problem: &mut problem,
    }
    .deserialize(&mut deserializer)
    .and_then(|elements| deserializer.end().map(|()| elements));
    match (decoded, problem) {
        (_, Some(problem)) => Err(problem),
        (Ok(elements), None) => Ok(elements),
        (Err(error), None) => {
            let detail = if error.is_data() {
                format!(
                    "The request body must be a JSON array of {}s, or NDJSON sent as \
                     application/x-ndjson: {error}",
                    element.what
                )
            } else {
                format!("The request body is not valid JSON: {error}")
            };
            Err(Problem::body(detail))
        }
    }
}

/// Deserialises the array, keeping the first invalid element's [`Problem`] aside: serde's own
/// error type cannot carry a pointer.
struct ArraySeed<'e, 'w, 'p, F> {
    element: &'e Element<'w, F>,
    problem: &'p mut Option<Problem>,
}

impl<'de, T, F: Fn(&Object<'_>) -> Result<T, Problem>> DeserializeSeed<'de>
    for ArraySeed<'_, '_, '_, F>
{
    type Value = Vec<T>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Vec<T>, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, T, F: Fn(&Object<'_>) -> Result<T, Problem>> Visitor<'de> for ArraySeed<'_, '_, '_, F> {
    type Value = Vec<T>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        write!(formatter, "an array of {} objects", self.element.what)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut decoded = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(value) = seq.next_element::<Value>()? {
            let index = decoded.len();
            let place = format!("{} [{index}]", self.element.what);
            match self.element.decode(&value, index, &place) {
                Ok(element) => decoded.push(element),
                Err(problem) => {
                    *self.problem = Some(problem);
                    return Err(de::Error::custom("invalid element"));
                }
            }
        }
        Ok(decoded)
    }
}
