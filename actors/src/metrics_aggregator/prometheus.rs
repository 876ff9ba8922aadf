//! The cumulative counters in Prometheus text format, for `GET /metrics`.
//!
//! The totals come from [`MetricsHandle::totals`](super::MetricsHandle::totals): the handle
//! keeps them next to the pending counts, so `/metrics` is live (not one flush behind) and
//! counts since process start, as Prometheus counters do.

use std::fmt::Write as _;

use super::Sample;

/// The counter name; labels are `family` plus the family's tags.
pub const PROMETHEUS_COUNTER: &str = "oibus_agent_operations_total";

/// Renders one line per sample, e.g.
/// `oibus_agent_operations_total{family="MetricsOperation",result="OK",user="edge01",operationType="POLL",source="COMMANDPOLLER"} 3`.
pub fn render_prometheus(totals: &[(Sample, u64)]) -> String {
    let mut out = String::with_capacity(200 + totals.len() * 120);
    // Writing to a String cannot fail, hence the ignored results.
    let _ = writeln!(
        out,
        "# HELP {PROMETHEUS_COUNTER} Operations counted by the agent since the process started, by metrics family and tags."
    );
    let _ = writeln!(out, "# TYPE {PROMETHEUS_COUNTER} counter");
    for (sample, total) in totals {
        let _ = write!(out, "{PROMETHEUS_COUNTER}{{family=\"{}\"", sample.family());
        for (name, value) in sample.tags() {
            let _ = write!(out, ",{name}=\"");
            escape_label_value(&mut out, value);
            out.push('"');
        }
        let _ = writeln!(out, "}} {total}");
    }
    out
}

/// Label values escape backslash, double quote and line feed (text exposition format).
fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Outcome, Source};
    use super::*;

    #[test]
    fn counters_render_with_family_and_every_tag_as_labels() {
        let totals = [
            (
                Sample::operation(Source::CommandPoller, "POLL", Outcome::Ok, "edge01"),
                3,
            ),
            (
                Sample::api("/api/\"x\"\\y\n", "GET", "timeout", "edge01"),
                1,
            ),
        ];
        let text = render_prometheus(&totals);
        let expected = concat!(
            "# HELP oibus_agent_operations_total Operations counted by the agent since the process started, by metrics family and tags.\n",
            "# TYPE oibus_agent_operations_total counter\n",
            r#"oibus_agent_operations_total{family="MetricsOperation",result="OK",user="edge01",operationType="POLL",source="COMMANDPOLLER"} 3"#,
            "\n",
            r#"oibus_agent_operations_total{family="MetricsApi",result="timeout",user="edge01",api="/api/\"x\"\\y\n",operationType="GET"} 1"#,
            "\n",
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn no_counts_still_declare_the_counter() {
        assert_eq!(render_prometheus(&[]).lines().count(), 2);
    }
}
