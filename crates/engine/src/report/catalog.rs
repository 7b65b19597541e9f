//! Projects and groups as the stored deployments define them (DESIGN.md "Project and group"):
//! derived on every request from the distinct (repository, service) pairs, so every node sees
//! the same list and numeric ids without coordination.

use std::collections::BTreeMap;

use dora_core::project::{groups_of, numeric_id, path_of};
use dora_store::{Store, StoreResult};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub id: i64,
    /// `acme/shop`, or the service name for deployments without git.
    pub path: String,
    /// The last path segment.
    pub name: String,
    /// The groups holding it, innermost first.
    pub group_paths: Vec<String>,
    /// Normalised repository ids (`github.com/acme/shop`) its deployments name.
    pub repository_ids: Vec<String>,
    /// Services that deploy it.
    pub services: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub id: i64,
    pub path: String,
    pub name: String,
    pub parent_path: Option<String>,
}

/// Every project and group, sorted by path.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub projects: Vec<Project>,
    pub groups: Vec<Group>,
    /// GitLab's own numeric ids of projects (its webhooks name them) and their paths.
    pub gitlab_ids: Vec<(i64, String)>,
}

fn last_segment(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_string()
}

impl Catalog {
    pub async fn load(store: &dyn Store) -> StoreResult<Self> {
        let mut catalog = Self::from_sources(store.project_sources().await?);
        catalog.gitlab_ids = store.gitlab_projects().await?;
        Ok(catalog)
    }

    /// From `(repository id, service)` pairs, as [`Store::project_sources`] returns them.
    pub fn from_sources(sources: Vec<(Option<String>, String)>) -> Self {
        let mut projects: BTreeMap<String, Project> = BTreeMap::new();
        for (repository_id, service) in sources {
            let path = path_of(repository_id.as_deref(), &service);
            let project = projects.entry(path.clone()).or_insert_with(|| Project {
                id: numeric_id("project", &path),
                name: last_segment(&path),
                group_paths: groups_of(&path).into_iter().map(str::to_string).collect(),
                path,
                repository_ids: Vec::new(),
                services: Vec::new(),
            });
            if let Some(id) = repository_id {
                if !project.repository_ids.contains(&id) {
                    project.repository_ids.push(id);
                }
            }
            if !project.services.contains(&service) {
                project.services.push(service);
            }
        }
        let mut groups: BTreeMap<String, Group> = BTreeMap::new();
        for project in projects.values_mut() {
            project.repository_ids.sort();
            project.services.sort();
            for (i, path) in project.group_paths.iter().enumerate() {
                groups.entry(path.clone()).or_insert_with(|| Group {
                    id: numeric_id("group", path),
                    name: last_segment(path),
                    path: path.clone(),
                    parent_path: project.group_paths.get(i + 1).cloned(),
                });
            }
        }
        Self {
            projects: projects.into_values().collect(),
            groups: groups.into_values().collect(),
            gitlab_ids: Vec::new(),
        }
    }

    /// A project by numeric id (its own, or GitLab's) or by path.
    pub fn project(&self, reference: &str) -> Option<&Project> {
        let id = reference.parse::<i64>().ok();
        let gitlab_path = self
            .gitlab_ids
            .iter()
            .find(|(gitlab_id, _)| Some(*gitlab_id) == id)
            .map(|(_, path)| path.as_str());
        self.projects
            .iter()
            .find(|p| Some(p.id) == id)
            .or_else(|| {
                self.projects
                    .iter()
                    .find(|p| Some(p.path.as_str()) == gitlab_path)
            })
            .or_else(|| self.projects.iter().find(|p| p.path == reference))
    }

    /// A group by numeric id or by path.
    pub fn group(&self, reference: &str) -> Option<&Group> {
        let id = reference.parse::<i64>().ok();
        self.groups
            .iter()
            .find(|g| Some(g.id) == id)
            .or_else(|| self.groups.iter().find(|g| g.path == reference))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projects_and_nested_groups() {
        let catalog = Catalog::from_sources(vec![
            (Some("github.com/acme/platform/api".into()), "api".into()),
            (Some("github.com/acme/shop".into()), "shop".into()),
            (Some("gitlab.com/acme/shop".into()), "shop-worker".into()),
            (None, "billing".into()),
        ]);
        let paths: Vec<&str> = catalog.projects.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["acme/platform/api", "acme/shop", "billing"]);
        let shop = catalog.project("acme/shop").unwrap();
        assert_eq!(shop.services, ["shop", "shop-worker"]);
        assert_eq!(shop.repository_ids.len(), 2);
        assert_eq!(shop.name, "shop");
        assert_eq!(catalog.project(&shop.id.to_string()), Some(shop));
        let api = catalog.project("acme/platform/api").unwrap();
        assert_eq!(api.group_paths, ["acme/platform", "acme"]);
        let groups: Vec<(&str, Option<&str>)> = catalog
            .groups
            .iter()
            .map(|g| (g.path.as_str(), g.parent_path.as_deref()))
            .collect();
        assert_eq!(groups, [("acme", None), ("acme/platform", Some("acme"))]);
        let platform = catalog.group("acme/platform").unwrap();
        assert_eq!(catalog.group(&platform.id.to_string()), Some(platform));
        assert!(catalog.group("billing").is_none());
        assert!(catalog.project("nope").is_none());
    }
}
