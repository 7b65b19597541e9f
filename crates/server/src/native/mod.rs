//! The native API (`/api/v1`): what the Datadog and GitLab surfaces do not cover.

mod admin;
mod bulk;
mod commits;
mod deployments;
mod explain;
mod metrics;
mod projects;
pub mod status;
mod tokens;

use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(admin::routes())
        .merge(commits::routes())
        .merge(deployments::routes())
        .merge(explain::routes())
        .merge(metrics::routes())
        .merge(projects::routes())
        .merge(status::routes())
        .merge(tokens::routes())
}
