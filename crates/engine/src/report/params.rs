//! The parameters of a metrics report, read from `key=value` pairs — the query string of
//! `GET /api/v1/metrics`, or the flags of `dorametrics report` turned into the same pairs — so
//! both accept and refuse exactly the same things.

use chrono::{Days, Months, NaiveDate};
use dora_core::levels::Year;
use dora_core::metrics::Interval;
use dora_core::query::{self, Query};
use dora_core::tier::Tier;

use super::ReportError;

/// Longer queries are refused (as on the Datadog list endpoints).
pub const MAX_QUERY_LEN: usize = 4096;
/// Ten years of days: enough for any report, small enough that a daily series stays a few MB.
pub const MAX_RANGE_DAYS: i64 = 3660;

/// Every parameter, in the order error messages list them. `private_token` (the GitLab-style
/// token, read by auth) comes last and is left out of those messages.
const KNOWN: [&str; 13] = [
    "from",
    "to",
    "interval",
    "query",
    "service",
    "team",
    "env",
    "tiers",
    "project",
    "group",
    "year",
    "breakdown",
    "private_token",
];
/// Those that may be repeated (also written `name[]`).
const REPEATABLE: [&str; 4] = ["service", "team", "env", "tiers"];

/// What a report groups its breakdown by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breakdown {
    Service,
    Team,
    Env,
    Project,
}

impl Breakdown {
    pub const ALL: [Breakdown; 4] = [
        Breakdown::Service,
        Breakdown::Team,
        Breakdown::Env,
        Breakdown::Project,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Service => "service",
            Self::Team => "team",
            Self::Env => "env",
            Self::Project => "project",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.as_str() == text)
    }
}

/// A validated report request. Project and group are still references (a path or a numeric
/// id): resolving them needs the store.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportRequest {
    /// First day, inclusive.
    pub from: NaiveDate,
    /// Last day, inclusive.
    pub to: NaiveDate,
    pub interval: Interval,
    /// The `query` text, as given.
    pub query: Option<String>,
    /// The parsed `query`, without the shorthands.
    pub filter: Query,
    pub services: Vec<String>,
    pub teams: Vec<String>,
    pub envs: Vec<String>,
    /// Empty: every tier (`tiers=all`).
    pub tiers: Vec<Tier>,
    pub project: Option<String>,
    pub group: Option<String>,
    pub year: Year,
    pub breakdown: Option<Breakdown>,
}

impl ReportRequest {
    /// The deployment filter: the query AND each shorthand (its values OR'ed).
    pub fn deployment_filter(&self) -> Query {
        let mut parts = Vec::new();
        if self.filter != Query::All {
            parts.push(self.filter.clone());
        }
        for (key, values) in [
            ("service", &self.services),
            ("team", &self.teams),
            ("env", &self.envs),
        ] {
            if !values.is_empty() {
                parts.push(Query::Or(
                    values.iter().map(|v| Query::field(key, v)).collect(),
                ));
            }
        }
        match parts.len() {
            0 => Query::All,
            1 => parts.remove(0),
            _ => Query::And(parts),
        }
    }
}

fn bad(parameter: &str, detail: impl Into<String>) -> ReportError {
    ReportError::BadParameter {
        parameter: parameter.to_string(),
        detail: detail.into(),
    }
}

fn one_of<T: Copy>(all: &[T], name: impl Fn(T) -> String) -> String {
    all.iter().map(|t| name(*t)).collect::<Vec<_>>().join(", ")
}

/// The values given for each known parameter, refusing unknown and repeated single ones.
struct Given<'a> {
    pairs: Vec<(&'static str, &'a str)>,
}

impl<'a> Given<'a> {
    fn read(pairs: &'a [(String, String)]) -> Result<Self, ReportError> {
        let mut given = Vec::new();
        for (raw_key, value) in pairs {
            let key = raw_key.strip_suffix("[]").unwrap_or(raw_key);
            let Some(known) = KNOWN.iter().find(|k| **k == key) else {
                return Err(bad(
                    raw_key,
                    format!(
                        "unknown parameter {raw_key:?}; known parameters: {}",
                        KNOWN[..KNOWN.len() - 1].join(", ")
                    ),
                ));
            };
            if key != raw_key && !REPEATABLE.contains(known) {
                return Err(bad(raw_key, format!("{key} takes one value, not a list")));
            }
            given.push((*known, value.as_str()));
        }
        for key in KNOWN {
            if !REPEATABLE.contains(&key) && given.iter().filter(|(k, _)| *k == key).count() > 1 {
                return Err(bad(key, format!("{key} is given more than once")));
            }
        }
        Ok(Self { pairs: given })
    }

    fn one(&self, key: &str) -> Option<&'a str> {
        self.pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    fn all(&self, key: &str) -> Vec<&'a str> {
        self.pairs
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .collect()
    }
}

fn date(key: &str, text: &str) -> Result<NaiveDate, ReportError> {
    let day = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .filter(|_| text.len() == 10)
        .ok_or_else(|| {
            bad(
                key,
                format!("{key} must be a date like 2025-01-31, got {text:?}"),
            )
        })?;
    if !dora_core::time::representable_day(day) {
        return Err(bad(
            key,
            format!(
                "{key} {text} is out of range: dates from 1678-01-01 to 2262-04-10 are supported"
            ),
        ));
    }
    Ok(day)
}

fn names(key: &str, values: Vec<&str>) -> Result<Vec<String>, ReportError> {
    values
        .into_iter()
        .map(|v| {
            if v.is_empty() {
                Err(bad(key, format!("{key} must not be empty")))
            } else {
                Ok(v.to_string())
            }
        })
        .collect()
}

fn tiers(values: Vec<&str>) -> Result<Vec<Tier>, ReportError> {
    if values.is_empty() {
        return Ok(vec![Tier::Production]);
    }
    let mut tiers = Vec::new();
    for name in values.iter().flat_map(|v| v.split(',')).map(str::trim) {
        if name == "all" {
            return Ok(Vec::new());
        }
        let tier = Tier::parse(name).ok_or_else(|| {
            bad(
                "tiers",
                format!(
                    "unknown tier {name:?}; use {} or all",
                    one_of(&Tier::ALL, |t| t.as_str().to_string())
                ),
            )
        })?;
        if !tiers.contains(&tier) {
            tiers.push(tier);
        }
    }
    tiers.sort();
    Ok(tiers)
}

fn reference(key: &str, value: Option<&str>) -> Result<Option<String>, ReportError> {
    match value {
        Some("") => Err(bad(
            key,
            format!("{key} must be a path (acme/shop) or a numeric id"),
        )),
        Some(v) => Ok(Some(v.trim_matches('/').to_string())),
        None => Ok(None),
    }
}

/// Reads and checks report parameters; `today` (UTC) is the default last day.
pub fn parse(pairs: &[(String, String)], today: NaiveDate) -> Result<ReportRequest, ReportError> {
    let given = Given::read(pairs)?;
    let to = match given.one("to") {
        Some(text) => date("to", text)?,
        None => today,
    };
    let from = match given.one("from") {
        Some(text) => date("from", text)?,
        None => to.checked_sub_months(Months::new(3)).unwrap_or(to),
    };
    if from > to {
        return Err(bad(
            "from",
            format!("from ({from}) must not be after to ({to})"),
        ));
    }
    let days = (to - from).num_days() + 1;
    if days > MAX_RANGE_DAYS || to.checked_add_days(Days::new(1)).is_none() {
        return Err(bad(
            "from",
            format!(
                "the range {from}..{to} spans {days} days; at most {MAX_RANGE_DAYS} are allowed"
            ),
        ));
    }
    let interval = match given.one("interval") {
        None => Interval::Weekly,
        Some(text) => Interval::parse(text).ok_or_else(|| {
            bad(
                "interval",
                format!("interval must be daily, weekly, monthly or all, got {text:?}"),
            )
        })?,
    };
    let query_text = given.one("query").filter(|q| !q.trim().is_empty());
    let filter = match query_text {
        None => Query::All,
        Some(text) if text.len() > MAX_QUERY_LEN => {
            return Err(bad(
                "query",
                format!("query is longer than {MAX_QUERY_LEN} bytes"),
            ))
        }
        Some(text) => query::parse(text).map_err(|e| bad("query", e.to_string()))?,
    };
    let year = match given.one("year") {
        None => Year::LATEST,
        Some(text) => Year::parse(text).ok_or_else(|| {
            bad(
                "year",
                format!(
                    "year must be a DORA report year: {}; got {text:?}",
                    one_of(&Year::ALL, |y| y.to_string())
                ),
            )
        })?,
    };
    let breakdown = match given.one("breakdown") {
        None | Some("") => None,
        Some(text) => Some(Breakdown::parse(text).ok_or_else(|| {
            bad(
                "breakdown",
                format!(
                    "breakdown must be one of {}, got {text:?}",
                    one_of(&Breakdown::ALL, |b| b.as_str().to_string())
                ),
            )
        })?),
    };
    Ok(ReportRequest {
        from,
        to,
        interval,
        query: query_text.map(str::to_string),
        filter,
        services: names("service", given.all("service"))?,
        teams: names("team", given.all("team"))?,
        envs: names("env", given.all("env"))?,
        tiers: tiers(given.all("tiers"))?,
        project: reference("project", given.one("project"))?,
        group: reference("group", given.one("group"))?,
        year,
        breakdown,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 3, 31).unwrap()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn parsed(list: &[(&str, &str)]) -> ReportRequest {
        parse(&pairs(list), today()).unwrap()
    }

    fn refused(list: &[(&str, &str)]) -> (String, String) {
        match parse(&pairs(list), today()) {
            Err(ReportError::BadParameter { parameter, detail }) => (parameter, detail),
            other => panic!("expected a bad parameter, got {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let r = parsed(&[]);
        assert_eq!(r.to, today());
        assert_eq!(r.from, NaiveDate::from_ymd_opt(2024, 12, 31).unwrap());
        assert_eq!(r.interval, Interval::Weekly);
        assert_eq!(r.tiers, vec![Tier::Production]);
        assert_eq!(r.year, Year::Y2024);
        assert_eq!(r.filter, Query::All);
        assert_eq!(r.deployment_filter(), Query::All);
        assert_eq!(r.breakdown, None);
    }

    #[test]
    fn lists_and_shorthands() {
        let r = parsed(&[
            ("service", "shop"),
            ("service[]", "api"),
            ("tiers", "staging,production"),
            ("tiers[]", "staging"),
            ("env", "prod"),
            ("query", "version:v1*"),
            ("private_token", "x"),
        ]);
        assert_eq!(r.services, ["shop", "api"]);
        assert_eq!(r.tiers, vec![Tier::Production, Tier::Staging]);
        assert_eq!(
            r.deployment_filter(),
            Query::And(vec![
                query::parse("version:v1*").unwrap(),
                Query::Or(vec![
                    Query::field("service", "shop"),
                    Query::field("service", "api")
                ]),
                Query::Or(vec![Query::field("env", "prod")]),
            ])
        );
        assert!(parsed(&[("tiers", "all")]).tiers.is_empty());
        assert_eq!(
            parsed(&[("project", "/acme/shop/")]).project.as_deref(),
            Some("acme/shop")
        );
    }

    #[test]
    fn precise_refusals() {
        for (list, parameter, needle) in [
            (vec![("from", "2025-13-01")], "from", "must be a date"),
            (vec![("to", "yesterday")], "to", "must be a date"),
            (vec![("from", "2025-1-1")], "from", "must be a date"),
            (
                vec![("from", "2025-02-01"), ("to", "2025-01-01")],
                "from",
                "must not be after",
            ),
            (vec![("from", "2000-01-01")], "from", "at most 3660"),
            (vec![("interval", "hourly")], "interval", "daily, weekly"),
            (vec![("query", "service:(a")], "query", "offset"),
            (vec![("tiers", "prod")], "tiers", "unknown tier \"prod\""),
            (vec![("year", "2022")], "year", "2019, 2021, 2023, 2024"),
            (vec![("breakdown", "day")], "breakdown", "service, team"),
            (vec![("service", "")], "service", "must not be empty"),
            (vec![("project", "")], "project", "numeric id"),
            (vec![("colour", "red")], "colour", "unknown parameter"),
            (
                vec![("year", "2024"), ("year", "2023")],
                "year",
                "more than once",
            ),
            (vec![("year[]", "2024")], "year[]", "one value"),
        ] {
            let (got_parameter, detail) = refused(&list);
            assert_eq!(got_parameter, parameter, "{list:?}");
            assert!(detail.contains(needle), "{list:?}: {detail}");
        }
    }
}
