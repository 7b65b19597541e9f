//! SQLite rows behind the shared row mappers.

use rusqlite::types::Value;
use rusqlite::Row;

use crate::rows::Columns;
use crate::{StoreError, StoreResult};

impl Columns for Row<'_> {
    fn text(&self, index: usize) -> StoreResult<Option<String>> {
        Ok(self.get(index)?)
    }

    fn int(&self, index: usize) -> StoreResult<Option<i64>> {
        Ok(self.get(index)?)
    }

    fn boolean(&self, index: usize) -> StoreResult<Option<bool>> {
        Ok(self.get(index)?)
    }

    fn bytes(&self, index: usize) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.get(index)?)
    }
}

/// A row read by the writer, kept after its statement moves on.
pub struct OwnedRow(pub Vec<rusqlite::types::Value>);

impl OwnedRow {
    fn value(&self, index: usize) -> StoreResult<&rusqlite::types::Value> {
        self.0
            .get(index)
            .ok_or_else(|| StoreError::Database(format!("no column {index}")))
    }

    fn mismatch(&self, index: usize, wanted: &str) -> StoreError {
        StoreError::Database(format!(
            "column {index} holds {:?}, not {wanted}",
            self.0.get(index).map(|v| v.data_type())
        ))
    }
}

impl Columns for OwnedRow {
    fn text(&self, index: usize) -> StoreResult<Option<String>> {
        match self.value(index)? {
            Value::Null => Ok(None),
            Value::Text(text) => Ok(Some(text.clone())),
            _ => Err(self.mismatch(index, "text")),
        }
    }

    fn int(&self, index: usize) -> StoreResult<Option<i64>> {
        match self.value(index)? {
            Value::Null => Ok(None),
            Value::Integer(n) => Ok(Some(*n)),
            _ => Err(self.mismatch(index, "an integer")),
        }
    }

    fn boolean(&self, index: usize) -> StoreResult<Option<bool>> {
        Ok(self.int(index)?.map(|n| n != 0))
    }

    fn bytes(&self, index: usize) -> StoreResult<Option<Vec<u8>>> {
        match self.value(index)? {
            Value::Null => Ok(None),
            Value::Blob(bytes) => Ok(Some(bytes.clone())),
            _ => Err(self.mismatch(index, "a blob")),
        }
    }
}

/// Runs a query and maps every row with a shared mapper.
pub fn query_all<T>(
    conn: &rusqlite::Connection,
    sql: &str,
    params: impl rusqlite::Params,
    map: impl Fn(&Row<'_>) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = statement.query(params)?;
    let mut found = Vec::new();
    while let Some(row) = rows.next()? {
        found.push(map(row)?);
    }
    Ok(found)
}
