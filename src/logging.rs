//! Console logging for the binary: structured `tracing` events to stderr, with a level that
//! SIGHUP or a remote command can change while running. The engine adds the OIA log layer
//! (`oibus_actors::log_shipper`), which has its own level handle.
//!
//! Under systemd (stderr is the journal stream `JOURNAL_STREAM` names), each line starts with
//! its syslog priority (`<3>` for errors, as `sd-daemon(3)` reads it) and carries no timestamp
//! (the journal keeps its own) and no colour, so `journalctl -p err` finds the errors. Colour
//! is used only on a terminal. `RUST_LOG` directives refine the level per target, e.g.
//! `RUST_LOG=actix_server=warn` to quiet actix while the agent stays at info.
//!
//! `engine.log.format: json` (or `--log-format json`, `OIBUS_AGENT_LOG_FORMAT=json`) writes one
//! JSON object per line instead, fields flattened; under the journal each object is still
//! prefixed with its priority, which the journal strips, so `MESSAGE` is the JSON alone.

use std::fmt;
use std::io::IsTerminal;

use oibus_actors::config::{LogFormat, LogLevel};
use oibus_actors::log_shipper::OiaLogLayer;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{Directive, EnvFilter, LevelFilter};
use tracing_subscriber::fmt::format::{DefaultFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt as tfmt, reload, Layer, Registry};

/// Changes the console level of a running process.
#[derive(Clone)]
pub struct ConsoleLevel(reload::Handle<EnvFilter, Registry>);

impl ConsoleLevel {
    pub fn set(&self, level: LogLevel) {
        // Fails only if the subscriber is gone, i.e. at process exit: nothing left to filter.
        let _ = self.0.reload(console_filter(level));
    }
}

pub fn level_filter(level: LogLevel) -> LevelFilter {
    level
        .max_tracing_level()
        .map_or(LevelFilter::OFF, LevelFilter::from_level)
}

/// The configured level, refined by the `RUST_LOG` directives (a bad one is skipped, and said).
fn console_filter(level: LogLevel) -> EnvFilter {
    let mut filter = EnvFilter::default().add_directive(level_filter(level).into());
    // The OPC UA library traces every request at debug and warns of every disconnection; the
    // opcua connectors log what matters themselves, naming the connector.
    for noisy in [
        "opcua_client",
        "opcua_core",
        "opcua_crypto",
        "opcua_types",
        "opcua_server",
    ] {
        if let Ok(directive) = format!("{noisy}=error").parse::<Directive>() {
            filter = filter.add_directive(directive);
        }
    }
    if let Ok(directives) = std::env::var("RUST_LOG") {
        for text in directives.split(',').filter(|d| !d.trim().is_empty()) {
            match text.trim().parse::<Directive>() {
                Ok(directive) => filter = filter.add_directive(directive),
                Err(e) => eprintln!("RUST_LOG: ignoring '{text}': {e}"),
            }
        }
    }
    filter
}

/// Whether stderr is the journal stream systemd set up (`JOURNAL_STREAM=<dev>:<inode>`).
fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    // fstat of the descriptor itself: the journal stream is a socket, which cannot be reopened.
    let Ok(stderr) = nix::sys::stat::fstat(std::io::stderr()) else {
        return false;
    };
    dev.parse() == Ok(stderr.st_dev) && ino.parse() == Ok(stderr.st_ino)
}

/// syslog priority of a tracing level (`sd-daemon(3)` prefixes).
fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// The environment variable that overrides `engine.log.format` (`--log-format` sets it, so the
/// engine the launcher starts gets it too).
pub const FORMAT_ENV: &str = "OIBUS_AGENT_LOG_FORMAT";

/// `engine.log.format`, unless `OIBUS_AGENT_LOG_FORMAT` says `text` or `json`.
pub fn effective_format(configured: LogFormat) -> LogFormat {
    match std::env::var(FORMAT_ENV).ok().as_deref().map(str::trim) {
        Some(v) if v.eq_ignore_ascii_case("json") => LogFormat::Json,
        Some(v) if v.eq_ignore_ascii_case("text") => LogFormat::Text,
        Some("") | None => configured,
        Some(other) => {
            eprintln!("{FORMAT_ENV}: ignoring '{other}' (text or json)");
            configured
        }
    }
}

/// Another event format with the syslog priority in front (JSON lines under the journal).
struct Prioritized<F>(F);

impl<S, N, F> FormatEvent<S, N> for Prioritized<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(writer, "<{}>", priority(event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

/// `<priority>message key=value…`: what the journal stores with that priority.
struct JournalFormat;

impl<S, N> FormatEvent<S, N> for JournalFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(writer, "<{}>", priority(event.metadata().level()))?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Install the global subscriber: console output at `level` in `format` (after
/// [`effective_format`]), and the records for OIAnalytics when `oia` is given. The OIA layer
/// goes last so the console filter keeps its type.
pub fn init(level: LogLevel, format: LogFormat, oia: Option<OiaLogLayer>) -> ConsoleLevel {
    let (filter, handle) = reload::Layer::new(console_filter(level));
    let journal = stderr_is_journal();
    let console = if effective_format(format) == LogFormat::Json {
        let json = tfmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(std::io::stderr);
        if journal {
            json.event_format(Prioritized(
                tfmt::format()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false)
                    .without_time(),
            ))
            .boxed()
        } else {
            json.boxed()
        }
    } else if journal {
        tfmt::layer()
            .with_writer(std::io::stderr)
            .fmt_fields(DefaultFields::new())
            .event_format(JournalFormat)
            .with_ansi(false)
            .boxed()
    } else {
        tfmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_ansi(std::io::stderr().is_terminal())
            .boxed()
    };
    let _ = tracing_subscriber::registry()
        .with(console.with_filter(filter))
        .with(oia)
        .try_init();
    ConsoleLevel(handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_variable_overrides_the_yaml_in_any_case() {
        // One test touches the variable, so no other reads it meanwhile.
        std::env::set_var(FORMAT_ENV, "JSON");
        assert_eq!(effective_format(LogFormat::Text), LogFormat::Json);
        std::env::set_var(FORMAT_ENV, "text");
        assert_eq!(effective_format(LogFormat::Json), LogFormat::Text);
        std::env::set_var(FORMAT_ENV, "xml");
        assert_eq!(effective_format(LogFormat::Json), LogFormat::Json);
        std::env::remove_var(FORMAT_ENV);
        assert_eq!(effective_format(LogFormat::Json), LogFormat::Json);
    }

    #[test]
    fn errors_are_priority_3_and_debug_is_7() {
        assert_eq!(priority(&Level::ERROR), 3);
        assert_eq!(priority(&Level::WARN), 4);
        assert_eq!(priority(&Level::INFO), 6);
        assert_eq!(priority(&Level::TRACE), 7);
    }
}
