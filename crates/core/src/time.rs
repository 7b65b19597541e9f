//! Timestamps: everything is stored as integer nanoseconds since the Unix epoch (UTC).

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

/// Nanoseconds since the Unix epoch, UTC.
pub type Nanos = i64;

/// Why a timestamp could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error("must be a positive Unix timestamp")]
    NotPositive,
    #[error("is out of range (after the year 2262)")]
    OutOfRange,
    #[error("is not a valid RFC 3339 date-time (e.g. 2025-01-31T23:59:59Z)")]
    BadRfc3339,
}

/// Reads an integer Unix timestamp in seconds, milliseconds or nanoseconds, telling the unit by
/// magnitude: `< 1e11` is seconds, `< 1e14` milliseconds, anything larger nanoseconds.
pub fn from_unix_any_unit(value: i64) -> Result<Nanos, TimestampError> {
    if value <= 0 {
        return Err(TimestampError::NotPositive);
    }
    let factor = if value < 100_000_000_000 {
        1_000_000_000
    } else if value < 100_000_000_000_000 {
        1_000_000
    } else {
        1
    };
    value.checked_mul(factor).ok_or(TimestampError::OutOfRange)
}

/// Reads an RFC 3339 date-time with any offset.
pub fn from_rfc3339(text: &str) -> Result<Nanos, TimestampError> {
    let parsed = DateTime::parse_from_rfc3339(text).map_err(|_| TimestampError::BadRfc3339)?;
    parsed
        .with_timezone(&Utc)
        .timestamp_nanos_opt()
        .ok_or(TimestampError::OutOfRange)
}

/// A time as GitLab's webhooks write it: RFC 3339, or `2021-04-28 21:50:00 +0200`, or
/// `2013-12-03 17:23:34 UTC`.
pub fn from_gitlab_time(text: &str) -> Result<Nanos, TimestampError> {
    if let Ok(nanos) = from_rfc3339(text) {
        return Ok(nanos);
    }
    let parsed = match text.strip_suffix(" UTC") {
        Some(utc) => chrono::NaiveDateTime::parse_from_str(utc, "%Y-%m-%d %H:%M:%S")
            .map(|naive| naive.and_utc()),
        None => DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S %z")
            .map(|time| time.with_timezone(&Utc)),
    };
    parsed
        .map_err(|_| TimestampError::BadRfc3339)?
        .timestamp_nanos_opt()
        .ok_or(TimestampError::OutOfRange)
}

/// Formats as RFC 3339 in UTC ending in `Z`, with as many fractional digits as needed (0, 3, 6 or 9).
pub fn to_rfc3339(nanos: Nanos) -> String {
    DateTime::<Utc>::from_timestamp_nanos(nanos).to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Whether a day, and the day after it, fit in nanoseconds (an `i64`), the engine's time: other
/// dates are refused as invalid rather than overflowing.
pub fn representable_day(day: NaiveDate) -> bool {
    let first = NaiveDate::from_ymd_opt(1678, 1, 1);
    let last = NaiveDate::from_ymd_opt(2262, 4, 10);
    first.is_some_and(|f| f <= day) && last.is_some_and(|l| day <= l)
}

/// The current time, in nanoseconds.
pub fn now() -> Nanos {
    Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gitlab_writes_times_three_ways() {
        let at = from_rfc3339("2021-04-28T19:50:00Z").unwrap();
        assert_eq!(from_gitlab_time("2021-04-28 21:50:00 +0200"), Ok(at));
        assert_eq!(from_gitlab_time("2021-04-28 19:50:00 UTC"), Ok(at));
        assert_eq!(from_gitlab_time("2021-04-28T21:50:00+02:00"), Ok(at));
        assert!(from_gitlab_time("yesterday").is_err());
    }

    #[test]
    fn representable_days_fit_in_nanoseconds() {
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        for ok in [day(1678, 1, 1), day(2025, 1, 1), day(2262, 4, 10)] {
            assert!(representable_day(ok), "{ok}");
            let after = ok.succ_opt().unwrap().and_hms_opt(0, 0, 0).unwrap();
            assert!(after.and_utc().timestamp_nanos_opt().is_some(), "{ok}");
        }
        for bad in [day(1677, 12, 31), day(2262, 4, 11), day(2611, 6, 1)] {
            assert!(!representable_day(bad), "{bad}");
        }
    }

    #[test]
    fn units_are_told_by_magnitude() {
        assert_eq!(
            from_unix_any_unit(1_693_491_974),
            Ok(1_693_491_974_000_000_000)
        );
        assert_eq!(
            from_unix_any_unit(1_693_491_974_123),
            Ok(1_693_491_974_123_000_000)
        );
        assert_eq!(
            from_unix_any_unit(1_693_491_974_123_456_789),
            Ok(1_693_491_974_123_456_789)
        );
        // The boundaries themselves.
        assert_eq!(
            from_unix_any_unit(99_999_999_999),
            Err(TimestampError::OutOfRange)
        );
        assert_eq!(
            from_unix_any_unit(100_000_000_000),
            Ok(100_000_000_000_000_000)
        );
    }

    #[test]
    fn bad_values_are_rejected() {
        assert_eq!(from_unix_any_unit(0), Err(TimestampError::NotPositive));
        assert_eq!(from_unix_any_unit(-5), Err(TimestampError::NotPositive));
        assert_eq!(from_rfc3339("yesterday"), Err(TimestampError::BadRfc3339));
    }

    #[test]
    fn rfc3339_round_trips_in_utc() {
        let n = from_rfc3339("2025-01-31T23:59:59+01:00").unwrap();
        assert_eq!(to_rfc3339(n), "2025-01-31T22:59:59Z");
        assert_eq!(
            to_rfc3339(1_693_491_974_123_000_000),
            "2023-08-31T14:26:14.123Z"
        );
        assert_eq!(
            to_rfc3339(1_693_491_974_000_000_001),
            "2023-08-31T14:26:14.000000001Z"
        );
    }
}
