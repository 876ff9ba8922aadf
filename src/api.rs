//! The local API (loopback by default, unauthenticated; on the IP of `engine.api.listen` and the
//! port of the effective `webServer.port`, which the engine moves live, see `crate::engine`):
//! `GET /` (the status page) and `GET /api/overview` (what it shows, `crate::status_page`),
//! `GET /health` (200 when every actor runs; the launcher's probation probe), `GET /status`
//! (JSON for humans and `oibus-agent status`), `GET /metrics` (OpenMetrics to a scraper that asks for it, else Prometheus text),
//! `GET /api/metrics/documents` and `/api/metrics/series` (time-series windows),
//! `POST /api/registration` (`{"force": bool}`), `DELETE /api/registration`, and `GET
//! /api/entities` (what remote commands configured, without settings or secrets). The same
//! routes on a Unix socket (mode 0660), where the state-changing ones need no token.

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use chrono::{DateTime, Utc};
use oibus_actors::data_flow::{DataFlow, GetDataFlowStatus};
use oibus_actors::events::{self, ControlPanelOperation, LocalQueryServed};
use oibus_actors::log_shipper::{GetLogShipperStats, LogShipper};
use oibus_actors::metrics_aggregator::actor::read_documents;
use oibus_actors::metrics_aggregator::{series, Family, WindowType};
use oibus_actors::registration::actor::{GetRegistration, Register, Registration, Unregister};
use oibus_actors::supervision::{ChildState, GetChildren};
use serde_json::json;
use std::net::SocketAddr;

use crate::shared::Engine;

/// Every route, on both listeners.
fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/", web::get().to(crate::status_page::page))
        .route("/api/overview", web::get().to(crate::status_page::overview))
        .route("/health", web::get().to(health))
        .route("/status", web::get().to(status))
        .route("/metrics", web::get().to(prometheus))
        .route("/api/metrics/documents", web::get().to(metric_documents))
        .route("/api/metrics/series", web::get().to(metric_series))
        .route("/api/registration", web::post().to(register))
        .route("/api/registration", web::delete().to(unregister))
        .route("/api/entities", web::get().to(entities));
}

/// Bind on `listen` (an error if the port is taken) and serve from then on.
pub fn start(engine: Engine, listen: SocketAddr) -> std::io::Result<ServerHandle> {
    let data = web::Data::new(engine);
    let server = HttpServer::new(move || App::new().app_data(data.clone()).configure(routes))
        .workers(1)
        .disable_signals()
        .shutdown_timeout(2)
        .bind(listen)?
        .run();
    let handle = server.handle();
    actix_rt::spawn(server);
    tracing::info!(%listen, "local API listening");
    Ok(handle)
}

/// The same API on a Unix socket at `path` (a stale one is replaced), mode 0660: the service
/// user and its group may connect, and a request that comes through it needs no token (the
/// socket's permissions are the authentication), so operators in the group change the agent
/// without reading the token file.
pub fn start_unix(engine: Engine, path: &std::path::Path) -> std::io::Result<ServerHandle> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let data = web::Data::new(engine);
    let server = HttpServer::new(move || App::new().app_data(data.clone()).configure(routes))
        .workers(1)
        .disable_signals()
        .shutdown_timeout(2)
        .bind_uds(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(server);
    tracing::info!(socket = %path.display(), "local API listening on its Unix socket too");
    Ok(handle)
}

async fn health(engine: web::Data<Engine>) -> HttpResponse {
    match engine.supervisor.send(GetChildren).await {
        Ok(children) => {
            let down: Vec<_> = children
                .iter()
                .filter(|c| c.state != ChildState::Running)
                .map(|c| c.name)
                .collect();
            if down.is_empty() {
                HttpResponse::Ok().json(json!({"status": "ok", "version": oibus_actors::VERSION}))
            } else {
                HttpResponse::ServiceUnavailable()
                    .json(json!({"status": "degraded", "not_running": down}))
            }
        }
        Err(_) => HttpResponse::ServiceUnavailable().json(json!({"status": "stopping"})),
    }
}

async fn status(engine: web::Data<Engine>) -> HttpResponse {
    let actors = engine
        .supervisor
        .send(GetChildren)
        .await
        .unwrap_or_default();
    let config = engine.config.borrow().clone();
    let reload = engine
        .reloads
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let (api_listen, api_error) = {
        let api = engine.api.lock().unwrap_or_else(|p| p.into_inner());
        (api.listen, api.error.clone())
    };
    let registration = engine.peers.ask::<Registration, _>(GetRegistration).await;
    let logs = engine.peers.ask::<LogShipper, _>(GetLogShipperStats).await;
    let data_flow = engine.peers.ask::<DataFlow, _>(GetDataFlowStatus).await;
    let settings = oibus_actors::entities::settings_in_force(
        &config,
        engine.entities.engine_settings().ok().flatten().as_ref(),
        engine
            .entities
            .registration_settings()
            .ok()
            .flatten()
            .as_ref(),
    );
    HttpResponse::Ok().json(json!({
        "version": oibus_actors::VERSION,
        "registration": registration,
        "settings": settings,
        "logs": logs,
        "data_flow": data_flow,
        "engine_id": engine.engine_id,
        "name": config.engine.name,
        "pid": std::process::id(),
        "uptime_s": engine.started.elapsed().as_secs(),
        "actors": actors,
        "config": {
            "path": engine.config_path,
            "loaded_at": reload.loaded_at,
            "last_reload": reload.last_reload,
            "console_level": config.engine.log.console,
            "oia_level": config.engine.log.oia,
        },
        "store": { "quarantined": engine.store.quarantined() },
        "api": { "listen": api_listen, "error": api_error },
    }))
}

async fn entities(engine: web::Data<Engine>) -> HttpResponse {
    let config = engine.config.borrow().clone();
    match engine.entities.summary(&config) {
        Ok(summary) => HttpResponse::Ok().json(summary),
        Err(e) => HttpResponse::InternalServerError().json(json!({ "error": e.to_string() })),
    }
}

/// The Unix user the CLI says it runs as (the `user` tag of control-panel metrics).
fn caller(req: &HttpRequest) -> String {
    req.headers()
        .get("x-oibus-user")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("local")
        .to_string()
}

#[derive(serde::Deserialize, Default)]
struct RegisterBody {
    #[serde(default)]
    force: bool,
}

async fn register(
    engine: web::Data<Engine>,
    req: HttpRequest,
    body: Option<web::Json<RegisterBody>>,
) -> HttpResponse {
    if let Some(refused) = unauthorized(&engine, &req) {
        return refused;
    }
    let force = body.map(|b| b.force).unwrap_or_default();
    let user = caller(&req);
    registration_call(&engine, &user, "register", Register { force }).await
}

async fn unregister(engine: web::Data<Engine>, req: HttpRequest) -> HttpResponse {
    if let Some(refused) = unauthorized(&engine, &req) {
        return refused;
    }
    let user = caller(&req);
    registration_call(&engine, &user, "unregister", Unregister).await
}

/// The routes that change state need the token of `<data_dir>/api-token` over TCP: any local
/// user can reach loopback, only the service's group can read the file. Through the Unix
/// socket they need nothing more.
fn unauthorized(engine: &Engine, req: &HttpRequest) -> Option<HttpResponse> {
    // No peer address: the request came through the Unix socket (mode 0660, the service's
    // group), whose permissions already said who may connect.
    let _tcp_peer = req.peer_addr()?;
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if oibus_actors::api_token::authorizes(&engine.api_token, header) {
        return None;
    }
    tracing::warn!(caller = %caller(req), path = %req.path(), "local API call refused: no valid token");
    Some(HttpResponse::Unauthorized().json(json!({
        "error": "this route changes the agent: send `Authorization: Bearer <token>` with the token of <engine.data_dir>/api-token (readable by the service's group), as `oibus-agent register` does"
    })))
}

async fn registration_call<M>(engine: &Engine, user: &str, operation: &str, msg: M) -> HttpResponse
where
    M: actix::Message<
            Result = Result<
                oibus_actors::registration::actor::RegistrationView,
                oibus_actors::registration::actor::RegistrationError,
            >,
        > + Send
        + 'static,
    Registration: actix::Handler<M>,
{
    let Some(addr) = engine.peers.get::<Registration>() else {
        return HttpResponse::ServiceUnavailable()
            .json(json!({"error": "the registration actor is not running; see /status"}));
    };
    let outcome = match addr.send(msg).await {
        Ok(Ok(view)) => Ok(view),
        Ok(Err(e)) => Err((409, e.to_string())),
        Err(e) => Err((503, format!("the registration actor did not answer: {e}"))),
    };
    ControlPanelOperation {
        operation,
        ok: outcome.is_ok(),
        user,
    }
    .emit();
    match outcome {
        Ok(view) => HttpResponse::Ok().json(view),
        Err((code, error)) => HttpResponse::build(
            actix_web::http::StatusCode::from_u16(code)
                .unwrap_or(actix_web::http::StatusCode::CONFLICT),
        )
        .json(json!({ "error": error })),
    }
}

/// Every family of `oibus_actors::events`, as OpenMetrics text.
/// OpenMetrics to a scraper that asks for it, else Prometheus' text format, as Prometheus'
/// own clients do: `curl /metrics | promtool check metrics` then passes.
async fn prometheus(req: HttpRequest) -> HttpResponse {
    let open_metrics = req
        .headers()
        .get(actix_web::http::header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("application/openmetrics-text"));
    let (text, content_type) = if open_metrics {
        (events::encode(), events::CONTENT_TYPE)
    } else {
        (events::encode_text(), events::TEXT_CONTENT_TYPE)
    };
    LocalQueryServed {
        resource: "prometheus",
        ok: true,
        user: &caller(&req),
    }
    .emit();
    HttpResponse::Ok().content_type(content_type).body(text)
}

#[derive(serde::Deserialize)]
struct MetricsQuery {
    window: String,
    family: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// What a metrics query selects, validated.
struct Selection {
    window: WindowType,
    family: Option<Family>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

impl Selection {
    fn documents(
        &self,
        store: &oibus_actors::store::Store,
    ) -> Result<Vec<oibus_actors::metrics_aggregator::Document>, String> {
        read_documents(store, self.window, self.family, self.from, self.to)
            .map_err(|e| e.to_string())
    }
}

/// The query's window, family and time range (default: the current window).
fn parse_metrics_query(q: &MetricsQuery) -> Result<Selection, String> {
    let window: WindowType = q.window.parse().map_err(|e| format!("{e}"))?;
    let family = q
        .family
        .as_deref()
        .map(str::parse::<Family>)
        .transpose()
        .map_err(|e| e.to_string())?;
    let time = |name: &str, v: &Option<String>, default: DateTime<Utc>| match v {
        None => Ok(default),
        Some(t) => DateTime::parse_from_rfc3339(t)
            .map(Into::into)
            .map_err(|e| {
                format!("{name}={t:?} is not an ISO-8601 date like 2026-11-23T10:00:00Z: {e}")
            }),
    };
    let now = Utc::now();
    let from = time("from", &q.from, window.start(now))?;
    let to = time("to", &q.to, now)?;
    Ok(Selection {
        window,
        family,
        from,
        to,
    })
}

async fn metric_documents(
    engine: web::Data<Engine>,
    req: HttpRequest,
    q: web::Query<MetricsQuery>,
) -> HttpResponse {
    let result = parse_metrics_query(&q).and_then(|sel| sel.documents(&engine.store));
    metrics_answer(&req, "documents", result.map(serde_json::to_value))
}

async fn metric_series(
    engine: web::Data<Engine>,
    req: HttpRequest,
    q: web::Query<MetricsQuery>,
) -> HttpResponse {
    let result = parse_metrics_query(&q).and_then(|sel| {
        let docs = sel.documents(&engine.store)?;
        series(&docs, sel.window, sel.from, sel.to).map_err(|e| e.to_string())
    });
    metrics_answer(&req, "series", result.map(serde_json::to_value))
}

fn metrics_answer(
    req: &HttpRequest,
    resource: &str,
    result: Result<Result<serde_json::Value, serde_json::Error>, String>,
) -> HttpResponse {
    let result = result.and_then(|v| v.map_err(|e| e.to_string()));
    LocalQueryServed {
        resource,
        ok: result.is_ok(),
        user: &caller(req),
    }
    .emit();
    match result {
        Ok(value) => HttpResponse::Ok().json(value),
        Err(error) => HttpResponse::BadRequest().json(json!({ "error": error })),
    }
}
