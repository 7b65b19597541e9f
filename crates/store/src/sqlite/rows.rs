//! SQLite rows behind the shared row mappers.

use rusqlite::Row;

use crate::rows::Columns;
use crate::StoreResult;

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
