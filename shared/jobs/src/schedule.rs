//! Refresh schedules: a five-field cron expression read in an IANA time zone.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use mako_core::repo::dashboards::Schedule;

/// Schedules run at most this often, so a dashboard cannot keep a worker busy on its own.
pub const MIN_INTERVAL_MINUTES: i64 = 5;

/// Checks a schedule and returns why it is invalid, as a sentence.
pub fn check(schedule: &Schedule) -> Result<(), String> {
    let fields = schedule.cron.split_whitespace().count();
    if fields != 5 {
        return Err(format!(
            "\"{}\" has {fields} fields; a schedule has five (minute hour day-of-month month day-of-week), such as \"0 6 * * 1-5\".",
            schedule.cron.chars().take(100).collect::<String>()
        ));
    }
    let cron = parse(&schedule.cron)?;
    let zone = zone(&schedule.timezone)?;
    // Two runs in a row must be far enough apart, checked over a sample of upcoming runs.
    let mut at = Utc::now().with_timezone(&zone);
    for _ in 0..24 {
        let next = cron
            .find_next_occurrence(&at, false)
            .map_err(|error| format!("\"{}\" never runs: {error}", schedule.cron))?;
        let after = cron
            .find_next_occurrence(&next, false)
            .map_err(|error| format!("\"{}\" never runs: {error}", schedule.cron))?;
        if (after - next).num_minutes() < MIN_INTERVAL_MINUTES {
            return Err(format!(
                "\"{}\" runs more often than every {MIN_INTERVAL_MINUTES} minutes; choose a longer interval, such as \"*/15 * * * *\".",
                schedule.cron
            ));
        }
        at = after;
    }
    Ok(())
}

fn parse(pattern: &str) -> Result<Cron, String> {
    Cron::from_str(pattern).map_err(|error| {
        format!(
            "\"{}\" is not a valid cron expression: {error}",
            pattern.chars().take(100).collect::<String>()
        )
    })
}

fn zone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>().map_err(|_| {
        format!(
            "\"{}\" is not an IANA time zone; use a name such as \"UTC\" or \"Europe/Berlin\".",
            name.chars().take(64).collect::<String>()
        )
    })
}

/// Returns the first run strictly after `after`, or `None` when the schedule is invalid or
/// never runs.
pub fn next_run(schedule: &Schedule, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let cron = parse(&schedule.cron).ok()?;
    let zone = zone(&schedule.timezone).ok()?;
    cron.find_next_occurrence(&after.with_timezone(&zone), false)
        .ok()
        .map(|next| next.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn schedule(cron: &str, timezone: &str) -> Schedule {
        Schedule {
            cron: cron.into(),
            timezone: timezone.into(),
        }
    }

    #[test]
    fn next_run_follows_the_time_zone() {
        let after = Utc.with_ymd_and_hms(2026, 12, 4, 12, 0, 0).single().expect("time");
        let next = next_run(&schedule("0 6 * * *", "Europe/Berlin"), after).expect("next");
        assert_eq!(next, Utc.with_ymd_and_hms(2026, 12, 5, 5, 0, 0).single().expect("time"));
        let next = next_run(&schedule("30 9 * * *", "UTC"), after).expect("next");
        assert_eq!(
            next,
            Utc.with_ymd_and_hms(2026, 12, 5, 9, 30, 0).single().expect("time")
        );
    }

    #[test]
    fn bad_schedules_are_explained() {
        assert!(check(&schedule("0 6 * * *", "UTC")).is_ok());
        let message = check(&schedule("* * * * *", "UTC")).expect_err("too often");
        assert!(message.contains("more often"), "{message}");
        let message = check(&schedule("0 6 * *", "UTC")).expect_err("fields");
        assert!(message.contains("4 fields"), "{message}");
        let message = check(&schedule("0 6 * * *", "Mars/Olympus")).expect_err("zone");
        assert!(message.contains("IANA"), "{message}");
        let message = check(&schedule("0 25 * * *", "UTC")).expect_err("hour");
        assert!(message.contains("not a valid cron"), "{message}");
    }
}
