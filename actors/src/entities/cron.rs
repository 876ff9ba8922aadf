//! Validation of scan-mode crons: 6 fields with seconds (reference §6), as OIBus's cron library
//! reads them: `second minute hour day-of-month month day-of-week`.
//!
//! Each field is a comma-separated list of `*`, `?` (day fields only), a value, a range `a-b`,
//! each optionally followed by a step `/n`. Months and week days also take their English
//! three-letter names (`JAN`, `MON`, any case); week day 7 is Sunday like 0.

/// Why a cron is rejected; the message names the field and the offending part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    #[error("cron '{expr}' must have 6 fields (second minute hour day-of-month month day-of-week), found {found}")]
    FieldCount { expr: String, found: usize },
    #[error("cron '{expr}': {field} field '{part}' {problem}")]
    Field {
        expr: String,
        field: &'static str,
        part: String,
        problem: String,
    },
}

struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// `?` allowed (day-of-month and day-of-week).
    any: bool,
}

const MONTHS: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

const FIELDS: [FieldSpec; 6] = [
    FieldSpec {
        name: "second",
        min: 0,
        max: 59,
        names: &[],
        any: false,
    },
    FieldSpec {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
        any: false,
    },
    FieldSpec {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
        any: false,
    },
    FieldSpec {
        name: "day-of-month",
        min: 1,
        max: 31,
        names: &[],
        any: true,
    },
    FieldSpec {
        name: "month",
        min: 1,
        max: 12,
        names: MONTHS,
        any: false,
    },
    FieldSpec {
        name: "day-of-week",
        min: 0,
        max: 7,
        names: DAYS,
        any: true,
    },
];

/// Check a 6-field cron expression.
pub fn validate(expr: &str) -> Result<(), CronError> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    if fields.len() != FIELDS.len() {
        return Err(CronError::FieldCount {
            expr: expr.to_owned(),
            found: fields.len(),
        });
    }
    for (text, spec) in fields.iter().zip(FIELDS.iter()) {
        for part in text.split(',') {
            check_part(part, spec).map_err(|problem| CronError::Field {
                expr: expr.to_owned(),
                field: spec.name,
                part: part.to_owned(),
                problem,
            })?;
        }
    }
    Ok(())
}

fn check_part(part: &str, spec: &FieldSpec) -> Result<(), String> {
    if part.is_empty() {
        return Err("is empty (two commas in a row?)".into());
    }
    let (range, step) = match part.split_once('/') {
        Some((range, step)) => (range, Some(step)),
        None => (part, None),
    };
    if let Some(step) = step {
        let n: u32 = step
            .parse()
            .map_err(|_| format!("has a step '{step}' that is not a number"))?;
        if n == 0 || n > spec.max.max(1) {
            return Err(format!("has a step of {n}, outside 1-{}", spec.max.max(1)));
        }
    }
    match range {
        "*" => Ok(()),
        "?" if spec.any && step.is_none() => Ok(()),
        "?" => Err("uses '?', allowed only alone in the day fields".into()),
        _ => match range.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (value(a, spec)?, value(b, spec)?);
                if a > b {
                    Err(format!("is a range that goes backwards ({a} > {b})"))
                } else {
                    Ok(())
                }
            }
            None => value(range, spec).map(|_| ()),
        },
    }
}

fn value(text: &str, spec: &FieldSpec) -> Result<u32, String> {
    let n = match text.parse::<u32>() {
        Ok(n) => n,
        Err(_) => spec
            .names
            .iter()
            .position(|name| name.eq_ignore_ascii_case(text))
            .map(|i| i as u32 + spec.min)
            .ok_or_else(|| format!("has '{text}', which is not a number"))?,
    };
    if n < spec.min || n > spec.max {
        return Err(format!("has {n}, outside {}-{}", spec.min, spec.max));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oibus_default_crons_are_valid() {
        for cron in [
            "* * * * * *",
            "*/10 * * * * *",
            "0 * * * * *",
            "0 */10 * * * *",
            "0 0 * * * *",
            "0 0 0 * * *",
        ] {
            assert_eq!(validate(cron), Ok(()), "{cron}");
        }
    }

    #[test]
    fn lists_ranges_steps_and_names_are_accepted() {
        for cron in [
            "0,30 5-10/2 1 ? JAN-mar MON-FRI",
            "59 59 23 31 12 7",
            "0 0 12 ? * sun",
            "  0   0  12 1 1 0 ",
        ] {
            assert_eq!(validate(cron), Ok(()), "{cron}");
        }
    }

    #[test]
    fn a_five_field_unix_cron_is_rejected_with_the_count() {
        let err = validate("*/5 * * * *").unwrap_err();
        assert_eq!(
            err.to_string(),
            "cron '*/5 * * * *' must have 6 fields (second minute hour day-of-month month day-of-week), found 5"
        );
        assert!(matches!(
            validate(""),
            Err(CronError::FieldCount { found: 0, .. })
        ));
    }

    #[test]
    fn out_of_range_values_name_their_field() {
        let err = validate("60 * * * * *").unwrap_err();
        assert_eq!(
            err.to_string(),
            "cron '60 * * * * *': second field '60' has 60, outside 0-59"
        );
        assert!(matches!(
            validate("0 0 24 * * *"),
            Err(CronError::Field { field: "hour", .. })
        ));
        assert!(matches!(
            validate("0 0 0 0 * *"),
            Err(CronError::Field {
                field: "day-of-month",
                ..
            })
        ));
        assert!(matches!(
            validate("0 0 0 * 13 *"),
            Err(CronError::Field { field: "month", .. })
        ));
        assert!(matches!(
            validate("0 0 0 * * 8"),
            Err(CronError::Field {
                field: "day-of-week",
                ..
            })
        ));
    }

    #[test]
    fn malformed_parts_are_rejected() {
        for cron in [
            "*/0 * * * * *",
            "a * * * * *",
            "1,,2 * * * * *",
            "10-5 * * * * *",
            "? * * * * *",
            "0 0 0 ?/2 * *",
            "*/x * * * * *",
        ] {
            assert!(validate(cron).is_err(), "{cron} should be rejected");
        }
    }
}
