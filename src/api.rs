//! The local API on `engine.api.listen` (loopback by default, unauthenticated):
//! `GET /health` (200 when every actor runs; the launcher's probation probe), `GET /status`
//! (JSON for humans and `oibus-agent status`), `POST /api/registration` (`{"force": bool}`)
//! and `DELETE /api/registration`.

use std::net::SocketAddr;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use oibus_actors::log_shipper::{GetLogShipperStats, LogShipper};
use oibus_actors::registration::actor::{GetRegistration, Register, Registration, Unregister};
use oibus_actors::supervision::{ChildState, GetChildren};
use serde_json::json;

use crate::engine::Engine;

pub fn start(engine: Engine, listen: SocketAddr) -> std::io::Result<ServerHandle> {
    let data = web::Data::new(engine);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/health", web::get().to(health))
            .route("/status", web::get().to(status))
            .route("/api/registration", web::post().to(register))
            .route("/api/registration", web::delete().to(unregister))
    })
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
    let registration = match engine.peers.get::<Registration>() {
        Some(addr) => addr.send(GetRegistration).await.ok(),
        None => None,
    };
    let logs = match engine.peers.get::<LogShipper>() {
        Some(addr) => addr.send(GetLogShipperStats).await.ok(),
        None => None,
    };
    HttpResponse::Ok().json(json!({
        "version": oibus_actors::VERSION,
        "registration": registration,
        "logs": logs,
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
    }))
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
    let force = body.map(|b| b.force).unwrap_or_default();
    let user = caller(&req);
    registration_call(&engine, &user, "register", Register { force }).await
}

async fn unregister(engine: web::Data<Engine>, req: HttpRequest) -> HttpResponse {
    let user = caller(&req);
    registration_call(&engine, &user, "unregister", Unregister).await
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
    oibus_actors::events::control_panel(operation, outcome.is_ok(), user);
    match outcome {
        Ok(view) => HttpResponse::Ok().json(view),
        Err((code, error)) => HttpResponse::build(
            actix_web::http::StatusCode::from_u16(code)
                .unwrap_or(actix_web::http::StatusCode::CONFLICT),
        )
        .json(json!({ "error": error })),
    }
}
