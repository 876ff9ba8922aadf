//! Scan-mode schedules: when a 6-field cron (seconds first, as OIBus's `cron` package reads
//! it, in the gateway's local time) fires next. `subscription` has no cron and never fires.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Local};
use croner::parser::{CronParser, Seconds};
use croner::Cron;

/// A parsed scan-mode cron.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
}

impl Schedule {
    /// `None` for an empty cron (`subscription`); `Err` says what does not parse.
    pub fn parse(expr: &str) -> Result<Option<Schedule>, String> {
        if expr.trim().is_empty() {
            return Ok(None);
        }
        // Validated at intake with OIBus's rules; this catches what croner reads differently.
        CronParser::builder()
            .seconds(Seconds::Required)
            .build()
            .parse(expr)
            .map(|cron| Some(Schedule { cron }))
            .map_err(|e| format!("cron '{expr}': {e}"))
    }

    /// How long from `now` until the next tick (never zero: a tick due now fires next time).
    pub fn delay_from(&self, now: DateTime<Local>) -> Option<Duration> {
        let next = self.cron.find_next_occurrence(&now, false).ok()?;
        (next - now)
            .to_std()
            .ok()
            .map(|d| d.max(Duration::from_millis(1)))
    }
}

impl FromStr for Schedule {
    type Err = String;
    fn from_str(expr: &str) -> Result<Self, String> {
        Schedule::parse(expr)?.ok_or_else(|| "an empty cron never fires".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn every_ten_seconds_fires_at_the_next_multiple_of_ten() {
        let schedule: Schedule = "*/10 * * * * *".parse().unwrap();
        let now = Local.with_ymd_and_hms(2026, 12, 7, 10, 0, 3).unwrap();
        assert_eq!(schedule.delay_from(now), Some(Duration::from_secs(7)));
    }

    #[test]
    fn subscription_has_no_schedule() {
        assert!(Schedule::parse("").unwrap().is_none());
    }

    #[test]
    fn a_five_field_cron_is_refused_with_its_text() {
        let error = Schedule::parse("* * * * *").unwrap_err();
        assert!(error.starts_with("cron '* * * * *'"), "{error}");
    }
}
