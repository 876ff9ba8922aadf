//! The local API on `engine.api.listen` (loopback by default, unauthenticated):
//! `GET /health` (200 when every actor runs; the launcher's probation probe), `GET /status`
//! (JSON for humans and `oibus-agent status`).

use std::net::SocketAddr;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpResponse, HttpServer};
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
    HttpResponse::Ok().json(json!({
        "version": oibus_actors::VERSION,
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
