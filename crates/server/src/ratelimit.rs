//! Rate limits: requests per token, and failed authentications per client address. Past either,
//! a 429 says which limit, its size, and when to come back.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// At most `count` requests in any `period` (a burst of `count` at once, then evenly spread).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub count: NonZeroU32,
    pub period: Duration,
}

impl RateLimit {
    /// `6000/1m`, `30/10s`: a count and a duration (humantime's units); `off` is `None`.
    pub fn parse(text: &str) -> Result<Option<Self>, String> {
        if text.trim() == "off" {
            return Ok(None);
        }
        let (count, period) = text
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not COUNT/PERIOD, e.g. 6000/1m, or off"))?;
        let count: NonZeroU32 = count
            .trim()
            .parse()
            .map_err(|_| format!("{count:?} is not a count above zero"))?;
        let period = humantime::parse_duration(period.trim())
            .map_err(|error| format!("{period:?} is not a period such as 1m: {error}"))?;
        if period.is_zero() {
            return Err("the period must be longer than zero".into());
        }
        Ok(Some(Self { count, period }))
    }

    fn quota(self) -> Quota {
        let interval = self.period / self.count.get();
        Quota::with_period(interval.max(Duration::from_nanos(1)))
            .unwrap_or_else(|| Quota::per_second(self.count))
            .allow_burst(self.count)
    }
}

/// The limits a server applies; `None` turns one off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Requests per token (by its id).
    pub per_token: Option<RateLimit>,
    /// Requests that presented credentials, all refused, per client address.
    pub failed_auth: Option<RateLimit>,
}

impl Default for RateLimits {
    /// Far above what a CI system or a dashboard sends: 30 000 requests a minute per token
    /// (all at once, or 500 a second), 30 refused authentications a minute per address.
    fn default() -> Self {
        let limit = |count, seconds| {
            NonZeroU32::new(count).map(|count| RateLimit {
                count,
                period: Duration::from_secs(seconds),
            })
        };
        Self {
            per_token: limit(30_000, 60),
            failed_auth: limit(30, 60),
        }
    }
}

/// A request over a limit: which one, and how long until another is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttled {
    /// `token` or `failed_authentication`.
    pub name: &'static str,
    pub limit: RateLimit,
    pub retry_after: Duration,
}

/// Keyed limiters get this many keys before the idle ones are dropped.
const PRUNE_ABOVE: usize = 10_000;

/// The limiters of one server (their state is the server's own, not shared with others).
pub struct Limiters {
    per_token: Option<(RateLimit, DefaultKeyedRateLimiter<String>)>,
    failed_auth: Option<(RateLimit, DefaultKeyedRateLimiter<IpAddr>)>,
}

impl Limiters {
    pub fn new(limits: RateLimits) -> Self {
        Self {
            per_token: limits
                .per_token
                .map(|l| (l, RateLimiter::hashmap(l.quota()))),
            failed_auth: limits
                .failed_auth
                .map(|l| (l, RateLimiter::hashmap(l.quota()))),
        }
    }

    /// Counts a request of the token `id`.
    pub fn token(&self, id: &str) -> Result<(), Throttled> {
        match &self.per_token {
            Some((limit, limiter)) => check(limiter, &id.to_string(), *limit, "token"),
            None => Ok(()),
        }
    }

    /// Counts a refused authentication from `peer`.
    pub fn failed_auth(&self, peer: SocketAddr) -> Result<(), Throttled> {
        match &self.failed_auth {
            Some((limit, limiter)) => check(limiter, &peer.ip(), *limit, "failed_authentication"),
            None => Ok(()),
        }
    }
}

fn check<K: std::hash::Hash + Eq + Clone>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
    limit: RateLimit,
    name: &'static str,
) -> Result<(), Throttled> {
    if limiter.len() > PRUNE_ABOVE {
        limiter.retain_recent();
    }
    limiter.check_key(key).map_err(|not_until| Throttled {
        name,
        limit,
        retry_after: not_until.wait_time_from(governor::clock::Clock::now(limiter.clock())),
    })
}

/// The client's address, set on every request by the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse() {
        let limit = RateLimit::parse("6000/1m").unwrap().unwrap();
        assert_eq!(limit.count.get(), 6000);
        assert_eq!(limit.period, Duration::from_secs(60));
        assert_eq!(RateLimit::parse("off"), Ok(None));
        for bad in ["6000", "0/1m", "x/1m", "10/soon", "10/0s"] {
            assert!(RateLimit::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_burst_then_refusals_saying_when() {
        let limits = RateLimits {
            per_token: RateLimit::parse("3/1h").unwrap(),
            failed_auth: None,
        };
        let limiters = Limiters::new(limits);
        for _ in 0..3 {
            assert!(limiters.token("a").is_ok());
        }
        let refused = limiters.token("a").unwrap_err();
        assert_eq!(refused.name, "token");
        assert!(refused.retry_after > Duration::from_secs(60 * 19));
        assert!(refused.retry_after <= Duration::from_secs(60 * 20));
        // Another token has its own.
        assert!(limiters.token("b").is_ok());
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert!(limiters.failed_auth(peer).is_ok(), "that limit is off");
    }
}
