//! `POST /api/v1/commits`: repository history pushed by CI systems.

use axum::Router;

use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
}
