//! `oibus-sim`: what the tests, the benchmarks and the demo run against, never part of a release
//! binary (the `oibus-agent` feature `sim` links it for the `sim` and `demo` subcommands).
//!
//! `oibus-agent sim`: an OIAnalytics simulator, the server side of
//! `spec/oianalytics-protocol.md`, strict about what agents send, with an admin API for tests
//! and the demo.
//!
//! # Command line
//! `oibus-agent sim [--listen 127.0.0.1:0] [--data DIR] [--registration-ttl 10m]
//! [--auto-complete 2s] [--gateway-prefix /gw --gateway-header x-gw:secret]
//! [--tls-cert cert.pem --tls-key key.pem] [--workers 2]`
//!
//! The first line on stdout is exactly `listening on http://127.0.0.1:PORT` (`https://` with
//! TLS); logs go to stderr. SIGTERM or SIGINT stops it. With `--data DIR`, registrations,
//! commands, statuses, messages, logs and violations are journaled to `DIR/journal.jsonl` and
//! assets stored in `DIR/assets/`, so a restarted simulator carries on where it stopped. The
//! request log and the fault queue are per process.
//!
//! # OIA routes (E1–E10, behind `--gateway-prefix` when given)
//! `P = /api/oianalytics/oibus`. Route names (used by faults and `/admin/requests`) in brackets.
//! - `POST P/registration` [registration] → `{redirectUrl: "P/check-registration?id=<id>",
//!   expirationDate, activationCode}`. `redirectUrl` is a path: the agent adds host and prefix.
//! - `GET P/check-registration?id=` [check-registration] → `{status: PENDING|COMPLETED|REJECTED,
//!   expired, accessToken|null}`; 404 for an unknown id. `--auto-complete D` completes a pending
//!   registration D after E1; once expired it never completes.
//! - Bearer routes (401 without a live token): `GET P/commands/pending` [commands-pending] (the
//!   queued commands without any status from this agent, not cancelled; an element without a
//!   string `id` is served once, then dropped), `GET P/commands/list-by-ids?ids=a&ids=b`
//!   [commands-list-by-ids] (the cancelled ones among them), `PUT P/commands/status`
//!   [commands-status], `PUT P/configuration` [configuration], `PUT P/configuration/history-query`
//!   [history-query], `POST P/logs` [logs] (204), `GET P/upgrade/asset?assetId=` [upgrade-asset]
//!   (streamed, 404 if unknown), `GET P/status` [status] (200 `{}`).
//! - North OIAnalytics data routes (Bearer, `?dataSourceId=<north name>` required, 204 when
//!   accepted, 400 naming the problems otherwise): `POST P/time-values` [time-values] with a JSON
//!   array of `{pointId, timestamp, data: {value, …}}`; `POST P/time-values/compressed`
//!   [time-values-compressed], the same gzipped (no `Content-Encoding`; both `Content-Type:
//!   application/json`); `POST /api/oianalytics/file-uploads` [file-uploads], multipart with
//!   exactly one part named `file` (gunzipped when its filename ends `.gz`).
//! - A token belongs to the agent (`oibusId`) of its registration; completing a new registration
//!   of the same `oibusId` revokes the older tokens.
//! - Violations (recorded, see `/admin/violations`): wrong gateway header (401 missing, 403
//!   wrong), unknown path (404), wrong method (405), a User-Agent other than exactly
//!   `OIBus/X.Y.Z (https://oibus.optimistik.com/)` (400; on E1 its version must equal
//!   `oibusVersion`), missing, doubled or unknown Bearer token (401), `Authorization` on E1/E2,
//!   `Content-Type` other than `application/json` (415), bodies that do not match the spec (400
//!   with a Spring-like body `{timestamp, status, error: "Bad Request", message, path}`; an E5
//!   PUT naming a command id twice is one), and tolerated deviations that are accepted anyway:
//!   `ack: true`, `completedDate` inconsistent with the status, `updatedAt` ≠ `createdAt` on E5,
//!   E2 without `Content-Type: application/json`, `""` for a nullable E8 field, a non-null
//!   `scopeName` on an INTERNAL log, extra keys in E1 or log records, unexpected query
//!   parameters.
//!
//! # Admin API (`/admin/...`, never behind the gateway, no auth, JSON)
//! Errors are `{"error": "..."}` with 400, 404 or 409. Listings take `?agent=<oibusId>`, and the
//! record listings `?since=<seq>&limit=<n>` (default limit 100000); `count` is the number of
//! records matching the filter (all pages), `next` the `since` of the next page.
//! - `GET /admin/agents` → `{count, agents: [{id, activationCode, oibusId, oibusName,
//!   oibusVersion, oibusOs, oibusArch, publicKey, createdAt, expirationDate, status, token,
//!   completedAt, revoked, expired}]}`.
//! - `POST /admin/registrations/{complete|reject|expire}` with `{"activationCode": ".."}` (the
//!   newest registration with that code) or `{"id": ".."}` → the registration as above; 409 when
//!   completing an expired or rejected one, or rejecting/expiring a completed one. `expire` sets
//!   the expiry to now.
//! - `POST /admin/commands[?agent=<oibusId>]` with one JSON value, or an array of values (any
//!   JSON, malformed on purpose or not), queued in order for every agent or only the one given →
//!   `{queued, seqs}`. `GET /admin/commands` → `{count, commands: [{seq, id, agent, queuedAt,
//!   cancelled, dropped, command}]}`. `POST /admin/commands/{id}/cancel` → `{cancelled: n}`
//!   (404 if no command has that id).
//! - `PUT /admin/assets/{assetId}` with the raw bytes → `{assetId, size}` (ids are
//!   `[A-Za-z0-9._-]{1,128}`); `GET /admin/assets` → `{count, assets: [{assetId, size}]}`.
//! - `GET /admin/statuses[?agent=&id=]` → `{count, next, records: [{seq, agent, at, record}],
//!   latest: {<command id>: {status, agent, at, seq, record}}}`; `latest` prefers a final status
//!   over a late RETRIEVED or RUNNING (reports may arrive out of order).
//! - `GET /admin/messages[?kind=full-config|history-queries]` → `{count, next, messages: [{seq,
//!   kind, agent, at, body}]}`.
//! - `GET /admin/logs[?since=N]` → `{count, next, records: [{seq, agent, at, record}]}`, in
//!   arrival order.
//! - `GET /admin/requests` → `{total, routes: {<route name>|unknown: {count, recent: [{at,
//!   method, path, headers, status, agent, fault}]}}}` (last 50 per route); `DELETE` resets.
//! - `GET /admin/violations` → `{count, violations: [{route, agent, reason, at, method, path}]}`;
//!   `DELETE` clears them.
//! - `POST /admin/faults` with `{route, count?: 1, kind}` or an array of them → `{queued,
//!   faults}`. The next `count` requests on `route` get the fault, faults of a route applying in
//!   the order queued. Kinds: `{"status": 500, "body": "..."}` (answered at once, nothing
//!   stored; a JSON body is sent as JSON), `{"delay_ms": 3000}` (then served normally),
//!   `{"close": true}` (the connection is dropped before any byte of the response; nothing
//!   stored), `{"slow_body_ms": 200, "chunk_bytes": 1024}` (served normally, then the body is
//!   sent in `chunk_bytes` pieces each after the delay; an empty body ends after one delay).
//!   `GET /admin/faults` → `{count, faults}`; `DELETE /admin/faults` → `{cleared}`.
//! - `GET /admin/data` → `{values, files, duplicates, requests, bySource: {<dataSourceId>:
//!   {values, files}}, recentValues: [{dataSourceId, at, value}], recentFiles: [{dataSourceId,
//!   at, name, size, sha256}]}`: accepted data requests, values seen twice (same pointId and
//!   timestamp, among the last million), the last 100 values and 20 files (size and sha256 of
//!   the content after gunzip), and `latencyMs: {count, p50, p99, max}`: receipt time minus
//!   value timestamp over the last 100,000 values. In memory only; `DELETE /admin/data` →
//!   `{cleared: true}`. `GET /admin/data/files` → `{files: [{name, copies, sha256}]}`: every
//!   file name received (up to 100,000), with its copies.
mod admin;
mod assets;
mod data;
pub mod demo;
mod journal;
mod oia;
mod reply;
mod state;
mod traffic;
mod validate;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{web, App, HttpServer};
use anyhow::Context;

use assets::Assets;
use state::{RegistrationPolicy, Store};
use traffic::Traffic;

/// Largest JSON body accepted (a full-config with many connectors stays far below).
const BODY_LIMIT: usize = 256 * 1024 * 1024;

#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Address to listen on, e.g. 127.0.0.1:0 for an ephemeral port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    /// Folder where everything received is kept across restarts (in memory when absent).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// How long a registration can be completed after E1.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub registration_ttl: Duration,
    /// Complete every registration automatically this long after E1 (e.g. 2s).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub auto_complete: Option<Duration>,
    /// Serve the OIA routes under this API gateway path prefix, e.g. /gw.
    #[arg(long, value_parser = parse_prefix)]
    pub gateway_prefix: Option<String>,
    /// Require this API gateway header on every OIA route, as NAME:VALUE.
    #[arg(long, value_parser = parse_header)]
    pub gateway_header: Option<GatewayHeader>,
    /// Serve HTTPS with this PEM certificate chain.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// HTTP worker threads.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
}

#[derive(Clone, Debug)]
pub struct GatewayHeader {
    name: HeaderName,
    value: HeaderValue,
}

fn parse_prefix(text: &str) -> Result<String, String> {
    let trimmed = text.trim_end_matches('/');
    if !trimmed.is_empty() && !trimmed.starts_with('/') {
        return Err(format!("{text:?} must start with '/'"));
    }
    Ok(trimmed.to_owned())
}

fn parse_header(text: &str) -> Result<GatewayHeader, String> {
    let (name, value) = text
        .split_once(':')
        .ok_or("expected NAME:VALUE, e.g. x-gw:secret")?;
    let name =
        HeaderName::try_from(name.trim()).map_err(|err| format!("header name {name:?}: {err}"))?;
    let value =
        HeaderValue::try_from(value.trim()).map_err(|err| format!("header value: {err}"))?;
    Ok(GatewayHeader { name, value })
}

/// The API gateway in front of the OIA routes.
pub struct Gateway {
    /// `""` without a gateway.
    prefix: String,
    header: Option<(HeaderName, HeaderValue)>,
}

/// Shared by all workers. Locks are held only for in-memory work and one journal append.
pub struct Sim {
    store: Mutex<Store>,
    /// What north OIAnalytics connectors sent (in memory).
    data: Mutex<data::Data>,
    traffic: Mutex<Traffic>,
    assets: Assets,
    gateway: Gateway,
}

#[cfg(test)]
impl Sim {
    /// An in-memory simulator without a gateway, for the handler tests.
    fn for_tests() -> Sim {
        let policy = RegistrationPolicy {
            ttl: Duration::from_secs(600),
            auto_complete: None,
        };
        Sim {
            store: Mutex::new(Store::open(None, policy).expect("an in-memory store")),
            data: Mutex::default(),
            traffic: Mutex::new(Traffic::default()),
            assets: Assets::open(None).expect("in-memory assets"),
            gateway: Gateway {
                prefix: String::new(),
                header: None,
            },
        }
    }

    /// The app `run` serves, over `sim`.
    fn app(
        sim: web::Data<Sim>,
    ) -> App<
        impl actix_web::dev::ServiceFactory<
            actix_web::dev::ServiceRequest,
            Config = (),
            Response = actix_web::dev::ServiceResponse,
            Error = actix_web::Error,
            InitError = (),
        >,
    > {
        App::new()
            .app_data(sim)
            .app_data(web::PayloadConfig::new(BODY_LIMIT))
            .configure(admin::configure)
            .default_service(web::to(oia::entry))
    }
}

/// A panic in one handler must not make the simulator unusable for the rest of a test run.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub fn run(args: SimArgs) -> anyhow::Result<ExitCode> {
    // Another subscriber may already be installed by main; keep it then.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::INFO)
        .try_init();

    if let Some(data) = &args.data {
        std::fs::create_dir_all(data)
            .with_context(|| format!("cannot create --data {}", data.display()))?;
    }
    let policy = RegistrationPolicy {
        ttl: args.registration_ttl,
        auto_complete: args.auto_complete,
    };
    let store =
        Store::open(args.data.as_deref(), policy).context("cannot open the simulator journal")?;
    let assets = Assets::open(args.data.as_deref()).context("cannot open the assets folder")?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(tls_config(cert, key)?),
        _ => None,
    };
    let listener = std::net::TcpListener::bind(&args.listen)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener
        .local_addr()
        .context("cannot read the bound address")?;
    let sim = web::Data::new(Sim {
        store: Mutex::new(store),
        data: Mutex::default(),
        traffic: Mutex::new(Traffic::default()),
        assets,
        gateway: Gateway {
            prefix: args.gateway_prefix.unwrap_or_default(),
            header: args
                .gateway_header
                .map(|header| (header.name, header.value)),
        },
    });
    let scheme = if tls.is_some() { "https" } else { "http" };
    let workers = args.workers.max(1);

    actix_web::rt::System::new().block_on(async move {
        let server = HttpServer::new(move || {
            App::new()
                .app_data(sim.clone())
                .app_data(web::PayloadConfig::new(BODY_LIMIT))
                .configure(admin::configure)
                .default_service(web::to(oia::entry))
        })
        .workers(workers)
        .shutdown_timeout(2);
        let server = match tls {
            Some(config) => server.listen_rustls_0_23(listener, config),
            None => server.listen(listener),
        }
        .context("cannot start the HTTP server")?;
        let running = server.run();
        let mut stdout = std::io::stdout();
        writeln!(stdout, "listening on {scheme}://{address}")
            .and_then(|()| stdout.flush())
            .context("cannot write the listening line to stdout")?;
        tracing::info!(%address, scheme, workers, "OIAnalytics simulator ready");
        running.await.context("the HTTP server failed")
    })?;
    tracing::info!("OIAnalytics simulator stopped");
    Ok(ExitCode::SUCCESS)
}

fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> anyhow::Result<rustls::ServerConfig> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};

    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| {
            format!(
                "cannot read the PEM certificates of --tls-cert {}",
                cert.display()
            )
        })?;
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| {
        format!(
            "cannot read the PEM private key of --tls-key {}",
            key.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("--tls-cert and --tls-key do not make a usable certificate")?;
    Ok(config)
}
