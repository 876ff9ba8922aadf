//! The status page: `GET /` serves one static HTML page (`status_page.html`, embedded, no build
//! step, nothing fetched from elsewhere), whose script reads `GET /api/overview` every 2 s and
//! draws it. Both are read-only and open on loopback like `/status`.
//!
//! The overview: registration, last poll and last acknowledgement, open commands and waiting
//! reports, the 20 latest commands with their results, log shipping, every connector, and two
//! series for the sparklines: commands executed per minute over the last hour (the metrics
//! documents, `MetricsOperation` with `source` COMMANDEXECUTOR) and values read per second by
//! the souths over the last 10 minutes (sampled every 5 s by [`sample_values`]: values are
//! counted by the connectors, not in the metrics documents).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use actix_web::{http::header, web, HttpResponse};
use chrono::{DateTime, TimeZone, Utc};
use oibus_actors::data_flow::{DataFlow, GetDataFlowStatus};
use oibus_actors::log_shipper::{GetLogShipperStats, LogShipper};
use oibus_actors::metrics_aggregator::actor::read_documents;
use oibus_actors::metrics_aggregator::{format_millis, series, Family, Source, WindowType};
use oibus_actors::registration::actor::{GetRegistration, Registration};
use oibus_actors::supervision::GetChildren;
use serde_json::{json, Value};

use crate::shared::Engine;

const PAGE: &str = include_str!("status_page.html");
/// Latest commands shown.
const RECENT: usize = 20;
/// Value samples kept: 10 minutes at one every 5 s.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);
const SAMPLES_KEPT: usize = 121;

/// `(Unix milliseconds, values read by every south so far)`, oldest first.
static VALUE_SAMPLES: Mutex<VecDeque<(i64, u64)>> = Mutex::new(VecDeque::new());

pub async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        // Nothing but this page's own inline script and style, and its own API.
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; frame-ancestors 'none'",
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(PAGE)
}

pub async fn overview(engine: web::Data<Engine>) -> HttpResponse {
    let registration = engine.peers.ask::<Registration, _>(GetRegistration).await;
    let logs = engine.peers.ask::<LogShipper, _>(GetLogShipperStats).await;
    let connectors = engine.peers.ask::<DataFlow, _>(GetDataFlowStatus).await;
    let actors = engine
        .supervisor
        .send(GetChildren)
        .await
        .unwrap_or_default();
    let last = oibus_actors::events::last_successes();
    let last_at = |name: &str| {
        last.iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, t)| Utc.timestamp_opt(*t, 0).single())
            .map(format_millis)
    };
    let recent: Vec<Value> = engine
        .journal
        .recent(RECENT)
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            json!({
                "id": r.id,
                "type": r.command_type,
                "status": r.status.as_str(),
                "retrieved": r.retrieved_date,
                "completed": r.completed_date,
                "result": r.result,
            })
        })
        .collect();
    let config = engine.config.borrow().clone();
    let now = Utc::now();
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({
            "now": format_millis(now),
            "version": oibus_actors::VERSION,
            "name": config.engine.name,
            "engine_id": engine.engine_id,
            "uptime_s": engine.started.elapsed().as_secs(),
            "registration": registration,
            "last_poll": last_at("poll_cycle"),
            "last_ack": last_at("status_report_flush"),
            "commands": {
                "open": engine.journal.commands_open(),
                "reports_waiting": engine.journal.reports_waiting(),
                "recent": recent,
            },
            "logs": logs,
            "connectors": connectors,
            "actors": actors,
            "sparklines": {
                "commands_per_minute": commands_per_minute(&engine, now),
                "values_per_second": values_per_second(),
            },
        }))
}

/// Commands executed in each of the last 60 minutes, from the hourly metrics documents.
fn commands_per_minute(engine: &Engine, now: DateTime<Utc>) -> Vec<Value> {
    let from = now - chrono::Duration::minutes(59);
    let docs = read_documents(
        &engine.store,
        WindowType::Hours,
        Some(Family::Operation),
        from,
        now,
    )
    .unwrap_or_default()
    .into_iter()
    .filter(|d| d.sample().tag("source") == Some(Source::CommandExecutor.as_str()))
    .collect::<Vec<_>>();
    let first_minute = from
        .with_timezone(&Utc)
        .timestamp()
        .div_euclid(60)
        .saturating_mul(60);
    series(&docs, WindowType::Hours, from, now)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.timestamp.timestamp() >= first_minute && p.timestamp <= now)
        .map(|p| json!({"t": format_millis(p.timestamp), "v": p.value}))
        .collect()
}

/// Values per second between consecutive samples (a connector restarted in between counts 0).
fn values_per_second() -> Vec<Value> {
    let samples = VALUE_SAMPLES.lock().unwrap_or_else(|p| p.into_inner());
    samples
        .iter()
        .zip(samples.iter().skip(1))
        .filter_map(|(&(t0, n0), &(t1, n1))| {
            let seconds = (t1 - t0) as f64 / 1000.0;
            (seconds > 0.0).then(|| {
                let rate = n1.saturating_sub(n0) as f64 / seconds;
                let at = Utc.timestamp_millis_opt(t1).single().map(format_millis);
                json!({"t": at, "v": (rate * 10.0).round() / 10.0})
            })
        })
        .collect()
}

/// Every [`SAMPLE_EVERY`]: how many values the souths have read so far.
pub async fn sample_values(engine: Engine) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    loop {
        tick.tick().await;
        let Some(addr) = engine.peers.get::<DataFlow>() else {
            continue;
        };
        let Ok(status) = addr.send(GetDataFlowStatus).await else {
            continue;
        };
        let read: u64 = status.souths.iter().map(|s| s.read_elements).sum();
        let mut samples = VALUE_SAMPLES.lock().unwrap_or_else(|p| p.into_inner());
        samples.push_back((Utc::now().timestamp_millis(), read));
        while samples.len() > SAMPLES_KEPT {
            samples.pop_front();
        }
    }
}
