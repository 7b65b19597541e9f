//! Repository URLs: strip credentials before storing, and normalise to a `repository_id`
//! (`host/path`) so that every spelling of one repository meets the same commits and project.

/// A repository URL as it may be stored (no credentials), with its normalised id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    /// The URL as given, minus any userinfo (`user:token@`), query and fragment.
    pub url: String,
    /// `host/org/repo`: no scheme, credentials, port, `.git` or trailing `/`; host lowercased.
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepositoryError {
    #[error("must not be empty")]
    Empty,
    #[error("must name a host and a repository path, e.g. https://github.com/org/repo")]
    NoPath,
}

/// Parses `https://user:pw@GitHub.com/org/repo.git/`, `git@github.com:org/repo.git`,
/// `ssh://git@host:22/org/repo`, or a bare `github.com/org/repo`. A query or fragment is dropped:
/// it names no repository and may carry a secret (`?private_token=…`).
pub fn parse_repository(raw: &str) -> Result<Repository, RepositoryError> {
    let raw = raw.trim();
    let raw = raw.split(['?', '#']).next().unwrap_or_default();
    if raw.is_empty() {
        return Err(RepositoryError::Empty);
    }
    let (scheme, rest) = match raw.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, raw),
    };
    // Authority ends at the first '/', except in the scp-like form `git@host:org/repo`.
    let (authority, path, scp_like) = match rest.find('/') {
        Some(slash) => {
            let head = &rest[..slash];
            match (scheme, head.rfind(':')) {
                // `git@host:org/repo` (no scheme, a colon before the first slash, not a port)
                (None, Some(colon)) if !head[colon + 1..].chars().all(|c| c.is_ascii_digit()) => {
                    (&head[..colon], &rest[colon + 1..], true)
                }
                _ => (head, &rest[slash + 1..], false),
            }
        }
        None => match (scheme, rest.rfind(':')) {
            (None, Some(colon)) => (&rest[..colon], &rest[colon + 1..], true),
            _ => (rest, "", false),
        },
    };
    let (userinfo, host_port) = match authority.rfind('@') {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    };
    let host = match host_port.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => host_port,
    };
    let mut id_path = path.trim_matches('/');
    id_path = id_path.strip_suffix(".git").unwrap_or(id_path);
    let id_path = id_path.trim_end_matches('/');
    if host.is_empty() || id_path.is_empty() {
        return Err(RepositoryError::NoPath);
    }
    // Any userinfo may be a token (`https://ghp_…@github.com`); only the conventional ssh user `git`
    // is known not to be a secret.
    let url = match userinfo {
        None | Some("git") => raw.to_string(),
        Some(_) => {
            let separator = if scp_like { ":" } else { "/" };
            match scheme {
                Some(scheme) => format!("{scheme}://{host_port}{separator}{path}"),
                None => format!("{host_port}{separator}{path}"),
            }
        }
    };
    Ok(Repository {
        url,
        id: format!("{}/{}", host.to_ascii_lowercase(), id_path),
    })
}

/// The project path of a repository id: everything after the host (`github.com/acme/shop` → `acme/shop`).
pub fn project_path(repository_id: &str) -> &str {
    repository_id
        .split_once('/')
        .map_or(repository_id, |(_, path)| path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(raw: &str) -> String {
        parse_repository(raw).unwrap().id
    }

    #[test]
    fn every_spelling_of_one_repository_has_one_id() {
        for raw in [
            "https://github.com/acme/shop",
            "https://github.com/acme/shop.git",
            "https://github.com/acme/shop/",
            "https://GitHub.com/acme/shop.git/",
            "http://user:secret@github.com/acme/shop.git",
            "https://x-access-token:ghp_abc@github.com:443/acme/shop",
            "git@github.com:acme/shop.git",
            "ssh://git@github.com/acme/shop.git",
            "ssh://git@github.com:22/acme/shop",
            "github.com/acme/shop",
        ] {
            assert_eq!(id(raw), "github.com/acme/shop", "{raw}");
        }
        assert_eq!(
            id("https://gitlab.example.com/acme/platform/api.git"),
            "gitlab.example.com/acme/platform/api"
        );
    }

    #[test]
    fn path_case_is_kept() {
        assert_eq!(id("https://github.com/Acme/Shop"), "github.com/Acme/Shop");
    }

    #[test]
    fn credentials_never_survive() {
        let repo = parse_repository("https://user:hunter2@github.com/acme/shop.git").unwrap();
        assert_eq!(repo.url, "https://github.com/acme/shop.git");
        let repo = parse_repository("ssh://deploy:pw@host.io:2222/acme/shop").unwrap();
        assert_eq!(repo.url, "ssh://host.io:2222/acme/shop");
        let repo = parse_repository("ghp_token@github.com:acme/shop.git").unwrap();
        assert_eq!(repo.url, "github.com:acme/shop.git");
        let repo = parse_repository("git@github.com:acme/shop.git").unwrap();
        assert_eq!(repo.url, "git@github.com:acme/shop.git");
    }

    #[test]
    fn queries_and_fragments_never_survive() {
        for raw in [
            "https://github.com/acme/shop?private_token=glpat-secret",
            "https://github.com/acme/shop.git#readme",
            "https://x:glpat-secret@github.com/acme/shop/?a=1#b",
        ] {
            let repo = parse_repository(raw).unwrap();
            assert_eq!(repo.id, "github.com/acme/shop", "{raw}");
            assert!(!repo.url.contains(['?', '#']), "{raw} → {}", repo.url);
            assert!(!repo.url.contains("secret"), "{raw} → {}", repo.url);
        }
        assert_eq!(parse_repository("?x=1"), Err(RepositoryError::Empty));
    }

    #[test]
    fn nonsense_is_rejected() {
        assert_eq!(parse_repository("  "), Err(RepositoryError::Empty));
        assert_eq!(
            parse_repository("https://github.com/"),
            Err(RepositoryError::NoPath)
        );
        assert_eq!(parse_repository("shop"), Err(RepositoryError::NoPath));
    }

    #[test]
    fn project_path_drops_the_host() {
        assert_eq!(
            project_path("github.com/acme/platform/api"),
            "acme/platform/api"
        );
    }
}
