//! Projects and groups, as the GitLab API addresses them: a project is a repository (its path
//! after the host), or the service name for deployments without git; groups are the path's
//! prefixes (`acme/platform/api` belongs to `acme/platform` and `acme`).

/// The project path of a deployment.
pub fn path_of(repository_id: Option<&str>, service: &str) -> String {
    match repository_id {
        Some(id) => crate::repo::project_path(id).to_string(),
        None => service.to_string(),
    }
}

/// The groups a project path belongs to, innermost first.
pub fn groups_of(project_path: &str) -> Vec<&str> {
    project_path
        .rmatch_indices('/')
        .map(|(i, _)| &project_path[..i])
        .collect()
}

/// Whether a project lies inside a group (at any depth).
pub fn in_group(project_path: &str, group_path: &str) -> bool {
    project_path
        .strip_prefix(group_path)
        .is_some_and(|rest| rest.starts_with('/'))
}

/// A stable numeric id for a path, the same on every node and every run without any
/// coordination: FNV-1a, kept to 48 bits so JavaScript clients read it exactly. Projects and
/// groups are hashed with different prefixes.
pub fn numeric_id(kind: &str, path: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in kind.bytes().chain([0]).chain(path.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // 48 bits, never 0.
    ((hash >> 16) as i64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_groups() {
        assert_eq!(path_of(Some("github.com/acme/shop"), "svc"), "acme/shop");
        assert_eq!(path_of(None, "billing"), "billing");
        assert_eq!(groups_of("acme/platform/api"), ["acme/platform", "acme"]);
        assert!(groups_of("billing").is_empty());
        assert!(in_group("acme/platform/api", "acme"));
        assert!(in_group("acme/platform/api", "acme/platform"));
        assert!(!in_group("acme-labs/x", "acme"));
        assert!(!in_group("acme", "acme"));
    }

    #[test]
    fn ids_are_stable_distinct_and_javascript_safe() {
        let a = numeric_id("project", "acme/shop");
        assert_eq!(a, numeric_id("project", "acme/shop"));
        assert_ne!(a, numeric_id("group", "acme/shop"));
        assert_ne!(a, numeric_id("project", "acme/shop2"));
        assert!(a > 0 && a < (1 << 48));
    }
}
