//! Cron schedules as operators write them: 5 fields (minute-level, pasted from crontab), or the
//! `cron` crate's 6 (with seconds) and 7 (with year) fields, in UTC or an IANA time zone.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// A parsed schedule in its time zone.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    expression: String,
    schedule: cron::Schedule,
    timezone: Tz,
}

impl PartialEq for CronSchedule {
    fn eq(&self, other: &Self) -> bool {
        self.expression == other.expression && self.timezone == other.timezone
    }
}

impl CronSchedule {
    /// Parses `expression`; a 5-field crontab line gets a leading `0` seconds field.
    pub fn parse(expression: &str, timezone: Tz) -> Result<Self, String> {
        let fields = expression.split_whitespace().count();
        let full = match fields {
            5 => format!("0 {}", expression.trim()),
            6 | 7 => expression.trim().to_owned(),
            n => {
                return Err(format!(
                    "a schedule has 5 fields (minute hour day month weekday), or 6/7 with seconds \
                     and year; this one has {n}"
                ))
            }
        };
        let schedule =
            cron::Schedule::from_str(&full).map_err(|e| format!("not a cron expression: {e}"))?;
        if schedule.upcoming(timezone).next().is_none() {
            return Err("this schedule never fires again".to_owned());
        }
        Ok(Self {
            expression: expression.trim().to_owned(),
            schedule,
            timezone,
        })
    }

    /// Every 5 minutes, UTC: the default of a source.
    pub fn every_five_minutes() -> Self {
        Self {
            expression: "*/5 * * * *".to_owned(),
            // A literal that parses: the fallback is never taken.
            schedule: cron::Schedule::from_str("0 */5 * * * *")
                .unwrap_or_else(|_| unreachable_schedule()),
            timezone: chrono_tz::UTC,
        }
    }

    pub fn expression(&self) -> &str {
        &self.expression
    }

    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    /// The first firing strictly after `t`, in UTC.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule
            .after(&t.with_timezone(&self.timezone))
            .next()
            .map(|n| n.with_timezone(&Utc))
    }
}

fn unreachable_schedule() -> cron::Schedule {
    // `cron` has no constructor but parsing; "every second" parses in every version.
    match cron::Schedule::from_str("* * * * * *") {
        Ok(s) => s,
        Err(_) => panic!("the cron crate cannot parse `* * * * * *`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn five_six_and_seven_fields() {
        let five = CronSchedule::parse("*/15 * * * *", chrono_tz::UTC).unwrap();
        assert_eq!(
            five.next_after(at("2026-11-21T10:07:30Z")),
            Some(at("2026-11-21T10:15:00Z"))
        );
        let six = CronSchedule::parse("30 */15 * * * *", chrono_tz::UTC).unwrap();
        assert_eq!(
            six.next_after(at("2026-11-21T10:07:30Z")),
            Some(at("2026-11-21T10:15:30Z"))
        );
        let seven = CronSchedule::parse("0 0 3 * * * 2027", chrono_tz::UTC).unwrap();
        assert_eq!(
            seven.next_after(at("2026-11-21T10:07:30Z")),
            Some(at("2027-01-01T03:00:00Z"))
        );
    }

    #[test]
    fn time_zones_shift_the_firing() {
        // 02:00 in New York (EST, UTC-5 in November) is 07:00 UTC.
        let s = CronSchedule::parse("0 2 * * *", chrono_tz::America::New_York).unwrap();
        assert_eq!(
            s.next_after(at("2026-11-21T00:00:00Z")),
            Some(at("2026-11-21T07:00:00Z"))
        );
    }

    #[test]
    fn bad_expressions_say_why() {
        assert!(CronSchedule::parse("* * *", chrono_tz::UTC)
            .unwrap_err()
            .contains("has 3"));
        assert!(CronSchedule::parse("61 * * * *", chrono_tz::UTC).is_err());
        assert!(CronSchedule::parse("0 0 0 1 1 * 2001", chrono_tz::UTC)
            .unwrap_err()
            .contains("never"));
    }
}
