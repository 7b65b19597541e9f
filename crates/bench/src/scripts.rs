//! The baselines' scripts, compiled into the binary so the benchmark runs from any directory:
//! the SQL both baselines run, PostgreSQL's schema, and the DuckDB runner with its pinned
//! Python requirements (written out to the work folder, where Python reads them).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The questions, as SQL both baselines run.
pub const QUERIES: &str = include_str!("../scripts/queries.sql");
/// The PostgreSQL baseline's tables.
pub const POSTGRES_SCHEMA: &str = include_str!("../scripts/postgres_schema.sql");
const DUCKDB_BASELINE: &str = include_str!("../scripts/duckdb_baseline.py");
const REQUIREMENTS: &str = include_str!("../scripts/requirements.txt");

/// The scripts as files in `dir`.
pub struct Written {
    pub queries: PathBuf,
    pub duckdb_baseline: PathBuf,
    pub requirements: PathBuf,
}

pub fn write(dir: &Path) -> Result<Written> {
    let file = |name: &str, text: &str| -> Result<PathBuf> {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    };
    Ok(Written {
        queries: file("queries.sql", QUERIES)?,
        duckdb_baseline: file("duckdb_baseline.py", DUCKDB_BASELINE)?,
        requirements: file("requirements.txt", REQUIREMENTS)?,
    })
}
