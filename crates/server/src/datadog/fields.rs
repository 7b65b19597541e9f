//! Reading a JSON:API request document field by field, so that every complaint names the JSON
//! pointer of what is wrong.

use dora_core::model::{check_custom_tag, MAX_CUSTOM_TAGS, MAX_TEXT_LEN};
use dora_core::time::{self, Nanos};
use serde_json::{Map, Value};

use crate::error::Problem;

/// An object inside the request document.
pub struct Object<'a> {
    map: &'a Map<String, Value>,
    pointer: String,
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl<'a> Object<'a> {
    /// The document root, which must be an object.
    pub fn root(value: &'a Value) -> Result<Self, Problem> {
        Self::element(value, String::new(), "The request body")
    }

    /// An object at `pointer` of a body that is a list of them (a JSON array, NDJSON lines);
    /// `what` names it in the complaint when it is not an object.
    pub fn element(value: &'a Value, pointer: String, what: &str) -> Result<Self, Problem> {
        match value {
            Value::Object(map) => Ok(Self { map, pointer }),
            other => Err(Problem::at(
                pointer,
                format!("{what} must be a JSON object, got {}", kind(other)),
            )),
        }
    }

    pub fn pointer_of(&self, key: &str) -> String {
        format!("{}/{}", self.pointer, key)
    }

    /// The member `key`, or `None` when absent or null.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub fn required(&self, key: &str) -> Result<&'a Value, Problem> {
        self.get(key)
            .ok_or_else(|| Problem::at(self.pointer_of(key), format!("{key} is required")))
    }

    pub fn object(&self, key: &str) -> Result<Option<Object<'a>>, Problem> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        match value {
            Value::Object(map) => Ok(Some(Object {
                map,
                pointer: self.pointer_of(key),
            })),
            other => Err(self.wrong_type(key, "an object", other)),
        }
    }

    pub fn required_object(&self, key: &str) -> Result<Object<'a>, Problem> {
        self.required(key)?;
        self.object(key)?
            .ok_or_else(|| Problem::at(self.pointer_of(key), format!("{key} is required")))
    }

    fn wrong_type(&self, key: &str, expected: &str, got: &Value) -> Problem {
        Problem::at(
            self.pointer_of(key),
            format!("{key} must be {expected}, got {}", kind(got)),
        )
    }

    /// A string field, trimmed of nothing, non-empty and of sane length.
    pub fn text(&self, key: &str) -> Result<Option<String>, Problem> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        let Value::String(text) = value else {
            return Err(self.wrong_type(key, "a string", value));
        };
        self.check_text(key, &self.pointer_of(key), text)?;
        Ok(Some(text.clone()))
    }

    fn check_text(&self, key: &str, pointer: &str, text: &str) -> Result<(), Problem> {
        if text.trim().is_empty() {
            return Err(Problem::at(pointer, format!("{key} must not be empty")));
        }
        if text.len() > MAX_TEXT_LEN {
            return Err(Problem::at(
                pointer,
                format!("{key} is longer than {MAX_TEXT_LEN} bytes"),
            ));
        }
        Ok(())
    }

    pub fn required_text(&self, key: &str) -> Result<String, Problem> {
        self.required(key)?;
        self.text(key)?
            .ok_or_else(|| Problem::at(self.pointer_of(key), format!("{key} is required")))
    }

    /// The exact value of a `type` member, when present.
    pub fn expect_type(&self, expected: &str, required: bool) -> Result<(), Problem> {
        match self.text("type")? {
            None if required => Err(Problem::at(
                self.pointer_of("type"),
                format!("type is required and must be {expected:?}"),
            )),
            None => Ok(()),
            Some(found) if found == expected => Ok(()),
            Some(found) => Err(Problem::at(
                self.pointer_of("type"),
                format!("type must be {expected:?}, got {found:?}"),
            )),
        }
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>, Problem> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.wrong_type(key, "true or false", other)),
        }
    }

    /// A list of non-empty strings.
    pub fn text_list(&self, key: &str) -> Result<Vec<String>, Problem> {
        let Some(value) = self.get(key) else {
            return Ok(Vec::new());
        };
        let Value::Array(items) = value else {
            return Err(self.wrong_type(key, "an array of strings", value));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let pointer = format!("{}/{i}", self.pointer_of(key));
                match item {
                    Value::String(text) => {
                        self.check_text(&format!("{key}[{i}]"), &pointer, text)?;
                        Ok(text.clone())
                    }
                    other => Err(Problem::at(
                        pointer,
                        format!("{key}[{i}] must be a string, got {}", kind(other)),
                    )),
                }
            })
            .collect()
    }

    /// A list of objects (absent: none).
    pub fn objects(&self, key: &str) -> Result<Vec<Object<'a>>, Problem> {
        let Some(value) = self.get(key) else {
            return Ok(Vec::new());
        };
        let Value::Array(items) = value else {
            return Err(self.wrong_type(key, "an array of objects", value));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let pointer = format!("{}/{i}", self.pointer_of(key));
                Object::element(item, pointer, &format!("{key}[{i}]"))
            })
            .collect()
    }

    /// An id a provider gives as a number or a string, as text.
    pub fn id_text(&self, key: &str) -> Result<Option<String>, Problem> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) if n.is_u64() || n.is_i64() => Ok(Some(n.to_string())),
            Some(Value::String(_)) => self.text(key),
            Some(other) => Err(self.wrong_type(key, "a number or a string", other)),
        }
    }

    pub fn required_id_text(&self, key: &str) -> Result<String, Problem> {
        self.required(key)?;
        self.id_text(key)?
            .ok_or_else(|| Problem::at(self.pointer_of(key), format!("{key} is required")))
    }

    /// `custom_tags`: at most 100 `key:value` strings.
    pub fn custom_tags(&self) -> Result<Vec<String>, Problem> {
        let tags = self.text_list("custom_tags")?;
        if tags.len() > MAX_CUSTOM_TAGS {
            return Err(Problem::at(
                self.pointer_of("custom_tags"),
                format!(
                    "custom_tags has {} tags; at most {MAX_CUSTOM_TAGS} are allowed",
                    tags.len()
                ),
            ));
        }
        for (i, tag) in tags.iter().enumerate() {
            check_custom_tag(tag).map_err(|e| {
                Problem::at(
                    format!("{}/{i}", self.pointer_of("custom_tags")),
                    format!("custom_tags[{i}] {e}"),
                )
            })?;
        }
        Ok(tags)
    }

    /// A Unix timestamp in s/ms/ns (told by magnitude) or an RFC 3339 string.
    pub fn timestamp(&self, key: &str) -> Result<Option<Nanos>, Problem> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        let pointer = self.pointer_of(key);
        let parsed = match value {
            Value::Number(number) => match number.as_i64() {
                Some(n) => time::from_unix_any_unit(n),
                None if number.as_u64().is_some() => Err(time::TimestampError::OutOfRange),
                None => {
                    return Err(Problem::at(
                        pointer,
                        format!("{key} must be an integer Unix timestamp, got {number}"),
                    ))
                }
            },
            Value::String(text) => time::from_rfc3339(text),
            other => {
                return Err(self.wrong_type(
                    key,
                    "a Unix timestamp (s, ms or ns) or an RFC 3339 string",
                    other,
                ))
            }
        };
        parsed
            .map(Some)
            .map_err(|e| Problem::at(pointer, format!("{key} {e}")))
    }

    pub fn required_timestamp(&self, key: &str) -> Result<Nanos, Problem> {
        self.required(key)?;
        self.timestamp(key)?
            .ok_or_else(|| Problem::at(self.pointer_of(key), format!("{key} is required")))
    }

    /// An RFC 3339 date-time string (list bounds).
    pub fn rfc3339(&self, key: &str) -> Result<Option<Nanos>, Problem> {
        match self.text(key)? {
            None => Ok(None),
            Some(text) => time::from_rfc3339(&text)
                .map(Some)
                .map_err(|e| Problem::at(self.pointer_of(key), format!("{key} {e}"))),
        }
    }

    /// A whole number in `min..=max`.
    pub fn integer_in(&self, key: &str, min: i64, max: i64) -> Result<Option<i64>, Problem> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(i) if (min..=max).contains(&i) => Ok(Some(i)),
                _ => Err(Problem::at(
                    self.pointer_of(key),
                    format!("{key} must be a whole number from {min} to {max}, got {n}"),
                )),
            },
            Some(other) => Err(self.wrong_type(key, "a whole number", other)),
        }
    }
}
