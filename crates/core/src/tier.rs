//! Environment tiers (GitLab's deployment tiers), guessed from env names token by token so that
//! `nonprod` is never production (GitLab's substring guess files it there, gitlab#377916).

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tier {
    /// The tier GitLab's DORA API reads when none is asked for.
    #[default]
    Production,
    Staging,
    Testing,
    Development,
    Other,
}

impl Tier {
    pub const ALL: [Tier; 5] = [
        Tier::Production,
        Tier::Staging,
        Tier::Testing,
        Tier::Development,
        Tier::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Production => "production",
            Self::Staging => "staging",
            Self::Testing => "testing",
            Self::Development => "development",
            Self::Other => "other",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

/// Rules in the order they are tried: the first tier with a matching token wins.
const RULES: [(Tier, &[&str]); 4] = [
    (
        Tier::Development,
        &["dev", "development", "review", "trunk"],
    ),
    (
        Tier::Testing,
        &[
            "test",
            "testing",
            "tests",
            "tst",
            "qa",
            "qc",
            "uat",
            "int",
            "integration",
            "acceptance",
        ],
    ),
    (
        Tier::Staging,
        &[
            "staging", "stage", "stg", "preprod", "pre", "model", "demo", "nonprod",
        ],
    ),
    (Tier::Production, &["production", "prod", "prd", "live"]),
];

/// The tier of an env name, from its tokens (split on non-alphanumerics, case-insensitive).
pub fn guess(env: &str) -> Tier {
    let lower = env.to_ascii_lowercase();
    let tokens: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| !t.is_empty())
        .collect();
    RULES
        .iter()
        .find(|(_, words)| tokens.iter().any(|t| words.contains(t)))
        .map_or(Tier::Other, |(tier, _)| *tier)
}

/// Admin overrides: env name → tier.
pub type EnvTiers = std::collections::HashMap<String, Tier>;

/// The tier of a deployment: its `deployment_tier:` tag when valid, else the admin mapping of
/// its env, else the guess from its env name.
pub fn of_deployment(env: Option<&str>, custom_tags: &[String], mapping: &EnvTiers) -> Tier {
    custom_tags
        .iter()
        .find_map(|tag| tag.strip_prefix("deployment_tier:").and_then(Tier::parse))
        .or_else(|| env.and_then(|env| mapping.get(env).copied()))
        .unwrap_or_else(|| env.map_or(Tier::Other, guess))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guesses_token_by_token() {
        for (env, tier) in [
            ("production", Tier::Production),
            ("prod-eu-1", Tier::Production),
            ("us-live", Tier::Production),
            ("nonprod", Tier::Staging),
            ("pre-prod", Tier::Staging),
            ("staging", Tier::Staging),
            ("qa", Tier::Testing),
            ("integration-tests", Tier::Testing),
            ("review/feature-x", Tier::Development),
            ("dev-prod-mirror", Tier::Development),
            ("Production", Tier::Production),
            ("sandbox", Tier::Other),
            ("products", Tier::Other),
        ] {
            assert_eq!(guess(env), tier, "{env}");
        }
    }

    #[test]
    fn a_tag_wins() {
        let none = EnvTiers::new();
        let tags = vec!["deployment_tier:staging".to_string()];
        assert_eq!(
            of_deployment(Some("production"), &tags, &none),
            Tier::Staging
        );
        let bad = vec!["deployment_tier:moon".to_string()];
        assert_eq!(
            of_deployment(Some("production"), &bad, &none),
            Tier::Production
        );
        assert_eq!(of_deployment(None, &[], &none), Tier::Other);
        // The admin mapping beats the guess, the tag beats the mapping.
        let mapping = EnvTiers::from([("sandbox".to_string(), Tier::Testing)]);
        assert_eq!(of_deployment(Some("sandbox"), &[], &mapping), Tier::Testing);
        let tags = vec!["deployment_tier:development".to_string()];
        assert_eq!(
            of_deployment(Some("sandbox"), &tags, &mapping),
            Tier::Development
        );
    }
}
