//! The OIA side (E1–E10): one entry point that names the route, applies a queued fault, checks
//! the transport (gateway, method, headers, token), validates the body and answers like OIA.
//!
//! Every deviation from what OIBus sends is recorded as a violation; the answer is still the one
//! OIA would give (400 with `Bad Request` for an unreadable body, 401 without a valid token...).
use std::time::Duration;

use actix_web::http::header::{self, HeaderMap};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use oibus_actors::protocol::{iso, RegistrationRequest};
use serde_json::{json, Value};

use super::data;
use super::reply::Reply;

use super::state::MessageKind::{FullConfig, HistoryQueries};
use super::state::{Records, Violation};
use super::traffic::{FaultKind, RecordedHeaders, RequestRecord, Route, BASE};
use super::validate::{self, Problems};
use super::{lock, Sim};

/// What is learnt about one request while serving it.
struct Exchange {
    now: DateTime<Utc>,
    route: Option<Route>,
    method: String,
    path: String,
    agent: Option<String>,
    violations: Vec<String>,
}

impl Exchange {
    fn violation(&mut self, reason: impl Into<String>) {
        self.violations.push(reason.into());
    }

    fn error(&self, status: StatusCode, message: &str) -> Reply {
        Reply::error(status, message, &self.path)
    }

    /// A 400 listing every problem, recorded as one violation.
    fn bad_request(&mut self, problems: &[String]) -> Reply {
        let message = problems.join("; ");
        self.violations.push(message.clone());
        self.error(StatusCode::BAD_REQUEST, &message)
    }

    /// The answer to a store write: a journal failure is OIA failing, not the agent.
    fn stored(&self, result: std::io::Result<()>, success: StatusCode) -> Reply {
        match result {
            Ok(()) => Reply::empty(success),
            Err(err) => {
                tracing::error!(%err, "simulator journal write failed");
                self.error(StatusCode::INTERNAL_SERVER_ERROR, &err.to_string())
            }
        }
    }
}

/// Default service of the app: every path that is not under `/admin/`.
pub async fn entry(req: HttpRequest, body: Bytes, sim: web::Data<Sim>) -> HttpResponse {
    let route = Route::from_path(req.path(), &sim.gateway.prefix);
    let mut exchange = Exchange {
        now: Utc::now(),
        route,
        method: req.method().to_string(),
        path: req
            .uri()
            .path_and_query()
            .map_or_else(|| req.path().to_owned(), |pq| pq.to_string()),
        agent: None,
        violations: Vec::new(),
    };
    let fault = route.and_then(|route| lock(&sim.traffic).take_fault(route));
    let reply = match &fault {
        Some(FaultKind::Status { status, body }) => fault_status(*status, body),
        Some(FaultKind::Close { .. }) => Reply::cut(),
        Some(FaultKind::Delay { delay_ms }) => {
            tokio::time::sleep(Duration::from_millis(*delay_ms)).await;
            serve(&sim, &mut exchange, &req, body).await
        }
        Some(FaultKind::SlowBody {
            slow_body_ms,
            chunk_bytes,
        }) => serve(&sim, &mut exchange, &req, body)
            .await
            .slowed(Duration::from_millis(*slow_body_ms), *chunk_bytes),
        None => serve(&sim, &mut exchange, &req, body).await,
    };
    finish(&sim, exchange, req.headers(), reply.status, fault);
    reply.into_response()
}

fn fault_status(status: u16, body: &str) -> Reply {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match serde_json::from_str::<Value>(body) {
        Ok(json) if !body.trim().is_empty() => Reply::json(status, &json),
        _ => Reply::text(status, body.to_owned()),
    }
}

/// Records the violations (in the store, so they persist) and the request (in the traffic log).
fn finish(
    sim: &Sim,
    exchange: Exchange,
    headers: &HeaderMap,
    status: StatusCode,
    fault: Option<FaultKind>,
) {
    let route_name = exchange.route.map_or("unknown", Route::name);
    if !exchange.violations.is_empty() {
        let mut store = lock(&sim.store);
        for reason in exchange.violations {
            tracing::warn!(route = route_name, agent = ?exchange.agent, %reason, path = %exchange.path, "protocol violation");
            let violation = Violation {
                route: route_name.to_owned(),
                agent: exchange.agent.clone(),
                reason,
                at: exchange.now,
                method: exchange.method.clone(),
                path: exchange.path.clone(),
            };
            if let Err(err) = store.record_violation(violation) {
                tracing::error!(%err, "cannot journal a violation");
            }
        }
    }
    let headers = headers
        .iter()
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let record = RequestRecord {
        at: exchange.now,
        method: exchange.method,
        path: exchange.path,
        headers: RecordedHeaders(headers),
        status: status.as_u16(),
        agent: exchange.agent,
        fault,
    };
    lock(&sim.traffic).record(route_name, record);
}

async fn serve(sim: &Sim, exchange: &mut Exchange, req: &HttpRequest, body: Bytes) -> Reply {
    let Some(route) = exchange.route else {
        let reason = format!("no OIA route at {} {}", exchange.method, req.path());
        exchange.violation(reason.clone());
        return exchange.error(StatusCode::NOT_FOUND, &reason);
    };
    if let Err(reply) = check_transport(sim, exchange, req, route) {
        return reply;
    }
    match route {
        Route::Registration => register(sim, exchange, req, &body),
        Route::CheckRegistration => check_registration(sim, exchange, req),
        Route::CommandsPending => pending(sim, exchange),
        Route::CommandsListByIds => list_by_ids(sim, exchange, req),
        Route::CommandsStatus => record(sim, exchange, req, &body, Records::Statuses),
        Route::Configuration => record(sim, exchange, req, &body, Records::Message(FullConfig)),
        Route::HistoryQuery => record(sim, exchange, req, &body, Records::Message(HistoryQueries)),
        Route::Logs => record(sim, exchange, req, &body, Records::Logs),
        Route::UpgradeAsset => asset(sim, exchange, req).await,
        Route::Status => Reply::json(StatusCode::OK, &json!({})),
        Route::TimeValues => values(sim, exchange, req, &body, false),
        Route::TimeValuesCompressed => values(sim, exchange, req, &body, true),
        Route::FileUploads => upload(sim, exchange, req, &body),
    }
}

/// Gateway header, method, User-Agent and Bearer token (§1). Sets `exchange.agent`.
fn check_transport(
    sim: &Sim,
    exchange: &mut Exchange,
    req: &HttpRequest,
    route: Route,
) -> Result<(), Reply> {
    let headers = req.headers();
    if let Some((name, expected)) = &sim.gateway.header {
        match headers.get(name) {
            None => {
                exchange.violation(format!("missing API gateway header {name}"));
                return Err(exchange.error(StatusCode::UNAUTHORIZED, "missing API gateway header"));
            }
            Some(value) if value.as_bytes() != expected.as_bytes() => {
                exchange.violation(format!("wrong value of API gateway header {name}"));
                return Err(exchange.error(StatusCode::FORBIDDEN, "wrong API gateway header"));
            }
            Some(_) => {}
        }
    }
    if *req.method() != route.method() {
        let reason = format!(
            "{} expects {}, got {}",
            route.name(),
            route.method(),
            req.method()
        );
        exchange.violation(reason.clone());
        return Err(exchange.error(StatusCode::METHOD_NOT_ALLOWED, &reason));
    }
    // OIBus names itself on every request; anything else is not OIBus to a gateway or to OIA.
    let user_agent = headers
        .get(header::USER_AGENT)
        .map(|value| value.to_str().unwrap_or("\u{fffd}"));
    if let Err(reason) = validate::user_agent(user_agent) {
        exchange.violation(reason.clone());
        return Err(exchange.error(StatusCode::BAD_REQUEST, &reason));
    }
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|value| value.to_str().unwrap_or("\u{fffd}"));
    if !route.authenticated() {
        if authorization.is_some() {
            exchange.violation("Authorization header sent on a route that takes none (E1/E2)");
        }
        return Ok(());
    }
    let token = match authorization {
        None => Err("missing Authorization header".to_owned()),
        Some(value) if value.starts_with("Bearer Bearer") => {
            Err("double `Bearer ` prefix in Authorization".to_owned())
        }
        Some(value) => match value.strip_prefix("Bearer ") {
            None => Err(format!(
                "Authorization is not `Bearer <token>`: {:?}",
                abbreviate(value)
            )),
            Some("") => Err("empty Bearer token".to_owned()),
            Some(token) => Ok(token),
        },
    };
    let reason = match token {
        Ok(token) => match lock(&sim.store).state().agent_for_token(token) {
            Some(agent) => {
                exchange.agent = Some(agent.to_owned());
                return Ok(());
            }
            None => "unknown or revoked Bearer token".to_owned(),
        },
        Err(reason) => reason,
    };
    exchange.violation(reason.clone());
    Err(exchange.error(StatusCode::UNAUTHORIZED, &reason))
}

fn abbreviate(text: &str) -> String {
    text.chars().take(24).collect()
}

fn content_type(req: &HttpRequest) -> &str {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
}

/// `Content-Type: application/json` (OIBus sends it on gzipped values too), else 415.
fn require_json(exchange: &mut Exchange, req: &HttpRequest) -> Result<(), Reply> {
    let content_type = content_type(req);
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        let reason = format!("Content-Type must be application/json, got {content_type:?}");
        exchange.violation(reason.clone());
        return Err(exchange.error(StatusCode::UNSUPPORTED_MEDIA_TYPE, &reason));
    }
    Ok(())
}

/// `Content-Type: application/json`, JSON syntax and the route's validation.
fn json_body(
    exchange: &mut Exchange,
    req: &HttpRequest,
    body: &[u8],
    validate: fn(&Value) -> Problems,
) -> Result<Value, Reply> {
    require_json(exchange, req)?;
    let value: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(err) => return Err(exchange.bad_request(&[format!("body is not JSON: {err}")])),
    };
    let problems = validate(&value);
    let mut hard = problems.hard;
    if problems.omitted > 0 {
        hard.push(format!("and {} more problems", problems.omitted));
    }
    if !problems.soft.is_empty() {
        exchange.violation(problems.soft.join("; "));
    }
    if !hard.is_empty() {
        return Err(exchange.bad_request(&hard));
    }
    Ok(value)
}

/// Query pairs, keeping repeated keys (`ids=a&ids=b`).
fn query(req: &HttpRequest) -> Vec<(String, String)> {
    web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .unwrap_or_default()
}

/// The single value of query parameter `key`; other parameters are violations.
fn single_param(exchange: &mut Exchange, req: &HttpRequest, key: &str) -> Result<String, Reply> {
    let mut found = None;
    for (name, value) in query(req) {
        if name == key && found.is_none() {
            found = Some(value);
        } else {
            exchange.violation(format!("unexpected query parameter {name:?}"));
        }
    }
    match found {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(exchange.bad_request(&[format!("missing query parameter {key:?}")])),
    }
}

fn agent(exchange: &Exchange) -> &str {
    // check_transport sets it on every authenticated route before the handlers run.
    exchange.agent.as_deref().unwrap_or_default()
}

fn register(sim: &Sim, exchange: &mut Exchange, req: &HttpRequest, body: &[u8]) -> Reply {
    let value = match json_body(exchange, req, body, validate::registration) {
        Ok(value) => value,
        Err(reply) => return reply,
    };
    // OIBus puts the same version in both: one that differs is not an OIBus.
    let agent_version = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(validate::user_agent_version);
    let body_version = value.get("oibusVersion").and_then(Value::as_str);
    if agent_version != body_version {
        return exchange.bad_request(&[format!(
            "body.oibusVersion: {body_version:?} differs from the User-Agent's OIBus version {agent_version:?}"
        )]);
    }
    let request: RegistrationRequest = match serde_json::from_value(value) {
        Ok(request) => request,
        Err(err) => return exchange.bad_request(&[format!("body: {err}")]),
    };
    let registration = match lock(&sim.store).register(request, exchange.now) {
        Ok(registration) => registration,
        Err(err) => return exchange.stored(Err(err), StatusCode::OK),
    };
    let request = &registration.request;
    tracing::info!(id = %registration.id, code = %request.activation_code, oibus = %request.oibus_id, "registration started");
    exchange.agent = Some(request.oibus_id.clone());
    // A path, not a URL: the agent puts its host and gateway prefix in front (§3.2).
    let redirect = format!("{BASE}check-registration?id={}", registration.id);
    let answer = json!({
        "redirectUrl": redirect,
        "expirationDate": iso(registration.expiration_date),
        "activationCode": registration.request.activation_code,
    });
    Reply::json(StatusCode::OK, &answer)
}

fn check_registration(sim: &Sim, exchange: &mut Exchange, req: &HttpRequest) -> Reply {
    // OIBus sets it on this GET although there is no body; OIA does not need it, so it is
    // recorded, not refused.
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok());
    if content_type != Some("application/json") {
        exchange.violation(format!(
            "E2 without Content-Type: application/json (OIBus sends it), got {content_type:?}"
        ));
    }
    let id = match single_param(exchange, req, "id") {
        Ok(id) => id,
        Err(reply) => return reply,
    };
    let found = lock(&sim.store).check_registration(&id, exchange.now);
    match found {
        Err(err) => exchange.stored(Err(err), StatusCode::OK),
        Ok(None) => exchange.error(
            StatusCode::NOT_FOUND,
            &format!("registration {id} not found"),
        ),
        Ok(Some(registration)) => {
            exchange.agent = Some(registration.request.oibus_id.clone());
            let answer = json!({
                "status": registration.status,
                "expired": registration.expired(exchange.now),
                "accessToken": registration.token,
            });
            Reply::json(StatusCode::OK, &answer)
        }
    }
}

fn pending(sim: &Sim, exchange: &mut Exchange) -> Reply {
    let served = lock(&sim.store).pending_for(agent(exchange));
    match served {
        Ok(commands) => Reply::json(StatusCode::OK, &Value::Array(commands)),
        Err(err) => exchange.stored(Err(err), StatusCode::OK),
    }
}

fn list_by_ids(sim: &Sim, exchange: &mut Exchange, req: &HttpRequest) -> Reply {
    let mut ids = Vec::new();
    for (name, value) in query(req) {
        if name == "ids" {
            ids.push(value);
        } else {
            exchange.violation(format!(
                "unexpected query parameter {name:?} (repeat `ids=`)"
            ));
        }
    }
    if ids.is_empty() {
        return exchange.bad_request(&["missing query parameter \"ids\"".to_owned()]);
    }
    let cancelled = lock(&sim.store)
        .state()
        .cancelled_among(agent(exchange), &ids);
    Reply::json(StatusCode::OK, &Value::Array(cancelled))
}

/// E5 status records, an E6/E7 message or E8 log records: checked, then kept as `agent` sent them.
fn record(
    sim: &Sim,
    exchange: &mut Exchange,
    req: &HttpRequest,
    body: &[u8],
    kind: Records,
) -> Reply {
    let (check, answer): (fn(&Value) -> Problems, _) = match kind {
        Records::Statuses => (validate::status_records, StatusCode::OK),
        Records::Message(FullConfig) => (validate::full_config, StatusCode::OK),
        Records::Message(HistoryQueries) => (validate::history_queries, StatusCode::OK),
        Records::Logs => (validate::logs, StatusCode::NO_CONTENT),
    };
    let bodies = match (kind, json_body(exchange, req, body, check)) {
        (_, Err(reply)) => return reply,
        (Records::Message(_), Ok(value)) => vec![value],
        (_, Ok(Value::Array(records))) => records,
        (_, Ok(_)) => Vec::new(),
    };
    let result = lock(&sim.store).record(kind, agent(exchange), bodies, exchange.now);
    exchange.stored(result, answer)
}

async fn asset(sim: &Sim, exchange: &mut Exchange, req: &HttpRequest) -> Reply {
    let id = match single_param(exchange, req, "assetId") {
        Ok(id) => id,
        Err(reply) => return reply,
    };
    match sim.assets.get(&id).await {
        Ok(Some(download)) => {
            Reply::stream(download.len, "application/octet-stream", download.stream)
        }
        Ok(None) => exchange.error(StatusCode::NOT_FOUND, &format!("asset {id} not found")),
        Err(err) => {
            tracing::error!(%err, asset = %id, "cannot read an asset");
            exchange.error(StatusCode::INTERNAL_SERVER_ERROR, &err.to_string())
        }
    }
}

/// North OIAnalytics values (`compressed`: a gzip body, no `Content-Encoding`).
fn values(
    sim: &Sim,
    exchange: &mut Exchange,
    req: &HttpRequest,
    body: &[u8],
    compressed: bool,
) -> Reply {
    let source = match single_param(exchange, req, "dataSourceId") {
        Ok(source) => source,
        Err(reply) => return reply,
    };
    if let Err(reply) = require_json(exchange, req) {
        return reply;
    }
    match data::parse_values(body, compressed) {
        Ok(values) => {
            lock(&sim.data).record_values(&source, values, exchange.now);
            Reply::empty(StatusCode::NO_CONTENT)
        }
        Err(reason) => exchange.bad_request(&[reason]),
    }
}

/// North OIAnalytics files: one multipart part named `file`.
fn upload(sim: &Sim, exchange: &mut Exchange, req: &HttpRequest, body: &[u8]) -> Reply {
    let source = match single_param(exchange, req, "dataSourceId") {
        Ok(source) => source,
        Err(reply) => return reply,
    };
    match data::parse_upload(content_type(req), body) {
        Ok((name, content)) => {
            lock(&sim.data).record_file(&source, &name, &content, exchange.now);
            Reply::empty(StatusCode::NO_CONTENT)
        }
        Err(reason) => exchange.bad_request(&[reason]),
    }
}
