//! The admin API under `/admin/` (documented in the module doc of `sim`): JSON in, JSON out,
//! errors as `{"error": "..."}` with 400, 404 or 409.
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::assets::AssetError;
use super::state::{
    latest_statuses, AdminError, MessageKind, Received, Registration, Selector, Store,
};
use super::traffic::Fault;
use super::{lock, Sim};

/// Default page size of the record listings.
const DEFAULT_LIMIT: usize = 100_000;

pub fn configure(config: &mut web::ServiceConfig) {
    config.service(
        web::scope("/admin")
            .route("/agents", web::get().to(agents))
            .route(
                "/registrations/{action}",
                web::post().to(registration_action),
            )
            .route("/commands", web::get().to(commands))
            .route("/commands", web::post().to(queue_commands))
            .route("/commands/{id}/cancel", web::post().to(cancel_command))
            .route("/assets", web::get().to(assets))
            .route("/assets/{asset_id}", web::put().to(put_asset))
            .route("/statuses", web::get().to(statuses))
            .route("/messages", web::get().to(messages))
            .route("/logs", web::get().to(logs))
            .route("/requests", web::get().to(requests))
            .route("/requests", web::delete().to(clear_requests))
            .route("/violations", web::get().to(violations))
            .route("/violations", web::delete().to(clear_violations))
            .route("/faults", web::get().to(faults))
            .route("/faults", web::post().to(add_faults))
            .route("/faults", web::delete().to(clear_faults))
            .route("/data", web::get().to(data))
            .route("/data", web::delete().to(clear_data))
            .route("/data/files", web::get().to(data_files))
            .default_service(web::to(|| async {
                failure(
                    StatusCode::NOT_FOUND,
                    "no such admin route (see the crate doc of sim/src/lib.rs)",
                )
            })),
    );
}

fn ok(value: Value) -> HttpResponse {
    HttpResponse::Ok().json(value)
}

fn failure(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({"error": message}))
}

fn admin_failure(err: AdminError) -> HttpResponse {
    let status = match &err {
        AdminError::BadRequest(_) => StatusCode::BAD_REQUEST,
        AdminError::NotFound(_) => StatusCode::NOT_FOUND,
        AdminError::Conflict(_) => StatusCode::CONFLICT,
        AdminError::Journal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    failure(status, &err.to_string())
}

/// The body as JSON, or the reason it is not (answered with a 400).
fn parse_json(body: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|err| format!("body is not JSON: {err}"))
}

/// Filters and paging shared by the listings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Filter {
    /// An `oibusId`.
    agent: Option<String>,
    /// A command id (statuses).
    id: Option<String>,
    /// `full-config` or `history-queries` (messages).
    kind: Option<String>,
    /// First `seq` to return.
    since: Option<u64>,
    limit: Option<usize>,
}

impl Filter {
    fn agent_matches(&self, agent: Option<&str>) -> bool {
        self.agent
            .as_deref()
            .is_none_or(|wanted| agent == Some(wanted))
    }
}

/// `seq`-ordered records from `filter.since`, up to `filter.limit`, and the `since` of the next page.
fn page<'a, T>(
    items: &'a [T],
    seq_of: impl Fn(&T) -> u64,
    keep: impl Fn(&T) -> bool,
    filter: &Filter,
) -> (Vec<&'a T>, u64) {
    let since = filter.since.unwrap_or(0);
    let limit = filter.limit.unwrap_or(DEFAULT_LIMIT);
    // Every listing is stored in seq order with seq = index, so `since` is a slice start.
    let start = usize::try_from(since)
        .unwrap_or(usize::MAX)
        .min(items.len());
    let mut selected = Vec::new();
    for item in &items[start..] {
        if selected.len() == limit {
            return (selected, seq_of(item));
        }
        if keep(item) {
            selected.push(item);
        }
    }
    (selected, items.len() as u64)
}

fn received_view(received: &Received) -> Value {
    json!({"seq": received.seq, "agent": received.agent, "at": received.at, "record": received.body})
}

async fn agents(sim: web::Data<Sim>) -> HttpResponse {
    let now = Utc::now();
    let mut store = lock(&sim.store);
    if let Err(err) = store.refresh(now) {
        return admin_failure(err.into());
    }
    let agents: Vec<Value> = store
        .state()
        .registrations()
        .iter()
        .map(|r| r.view(now))
        .collect();
    ok(json!({"count": agents.len(), "agents": agents}))
}

async fn registration_action(
    sim: web::Data<Sim>,
    action: web::Path<String>,
    body: Bytes,
) -> HttpResponse {
    let selector = parse_json(&body).and_then(|value| {
        serde_json::from_value::<Selector>(value)
            .map_err(|err| format!("expected {{\"id\"}} or {{\"activationCode\"}}: {err}"))
    });
    let selector = match selector {
        Ok(selector) => selector,
        Err(reason) => return failure(StatusCode::BAD_REQUEST, &reason),
    };
    let now = Utc::now();
    let action: fn(&mut Store, &Selector, DateTime<Utc>) -> Result<Registration, AdminError> =
        match action.as_str() {
            "complete" => Store::complete,
            "reject" => Store::reject,
            "expire" => Store::expire,
            other => {
                return failure(
                    StatusCode::NOT_FOUND,
                    &format!("unknown registration action {other:?}"),
                )
            }
        };
    let result = action(&mut lock(&sim.store), &selector, now);
    match result {
        Ok(registration) => {
            tracing::info!(id = %registration.id, status = ?registration.status, "registration changed by admin");
            ok(registration.view(now))
        }
        Err(err) => admin_failure(err),
    }
}

async fn commands(sim: web::Data<Sim>, filter: web::Query<Filter>) -> HttpResponse {
    let store = lock(&sim.store);
    let commands: Vec<Value> = store
        .state()
        .commands()
        .iter()
        .filter(|command| command.agent.is_none() || filter.agent_matches(command.agent.as_deref()))
        .map(|command| {
            json!({"seq": command.seq, "id": command.id(), "agent": command.agent, "queuedAt": command.queued_at,
                   "cancelled": command.cancelled, "dropped": command.dropped, "command": command.command})
        })
        .collect();
    ok(json!({"count": commands.len(), "commands": commands}))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Target {
    agent: Option<String>,
}

async fn queue_commands(
    sim: web::Data<Sim>,
    target: web::Query<Target>,
    body: Bytes,
) -> HttpResponse {
    let commands = match parse_json(&body) {
        Ok(Value::Array(commands)) => commands,
        Ok(command) => vec![command],
        Err(reason) => return failure(StatusCode::BAD_REQUEST, &reason),
    };
    let count = commands.len();
    let queued = lock(&sim.store).queue_commands(target.into_inner().agent, commands, Utc::now());
    match queued {
        Ok(seqs) => {
            tracing::info!(count, "commands queued");
            ok(json!({"queued": count, "seqs": seqs}))
        }
        Err(err) => admin_failure(err.into()),
    }
}

async fn cancel_command(sim: web::Data<Sim>, id: web::Path<String>) -> HttpResponse {
    let cancelled = lock(&sim.store).cancel(&id);
    match cancelled {
        Ok(count) => ok(json!({"cancelled": count})),
        Err(err) => admin_failure(err),
    }
}

async fn assets(sim: web::Data<Sim>) -> HttpResponse {
    match sim.assets.list() {
        Ok(list) => {
            let assets: Vec<Value> = list
                .into_iter()
                .map(|(id, size)| json!({"assetId": id, "size": size}))
                .collect();
            ok(json!({"count": assets.len(), "assets": assets}))
        }
        Err(err) => failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot list assets: {err}"),
        ),
    }
}

async fn put_asset(
    sim: web::Data<Sim>,
    id: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    match sim.assets.put(&id, payload).await {
        Ok(size) => {
            tracing::info!(asset = %id, size, "asset uploaded");
            ok(json!({"assetId": id.as_str(), "size": size}))
        }
        Err(err @ AssetError::BadId(_)) => failure(StatusCode::BAD_REQUEST, &err.to_string()),
        Err(err) => failure(StatusCode::INTERNAL_SERVER_ERROR, &err.to_string()),
    }
}

async fn statuses(sim: web::Data<Sim>, filter: web::Query<Filter>) -> HttpResponse {
    let store = lock(&sim.store);
    let keep = |received: &Received| {
        filter.agent_matches(Some(&received.agent))
            && filter
                .id
                .as_deref()
                .is_none_or(|id| received.body.get("id").and_then(Value::as_str) == Some(id))
    };
    let all = store.state().statuses();
    let (records, next) = page(all, |received| received.seq, keep, &filter);
    let count = all.iter().filter(|received| keep(received)).count();
    let latest = latest_statuses(all.iter().filter(|received| keep(received)));
    let records: Vec<Value> = records.into_iter().map(received_view).collect();
    ok(json!({"count": count, "next": next, "records": records, "latest": latest}))
}

async fn messages(sim: web::Data<Sim>, filter: web::Query<Filter>) -> HttpResponse {
    let kind = match filter.kind.as_deref().map(MessageKind::parse) {
        None => None,
        Some(Some(kind)) => Some(kind),
        Some(None) => {
            return failure(
                StatusCode::BAD_REQUEST,
                "kind: expected full-config or history-queries",
            )
        }
    };
    let store = lock(&sim.store);
    let keep = |message: &super::state::Message| {
        kind.is_none_or(|kind| message.kind == kind)
            && filter.agent_matches(Some(&message.received.agent))
    };
    let all = store.state().messages();
    let (selected, next) = page(all, |message| message.received.seq, keep, &filter);
    let count = all.iter().filter(|message| keep(message)).count();
    let messages: Vec<Value> = selected
        .into_iter()
        .map(|message| {
            let received = &message.received;
            json!({"seq": received.seq, "kind": message.kind, "agent": received.agent, "at": received.at, "body": received.body})
        })
        .collect();
    ok(json!({"count": count, "next": next, "messages": messages}))
}

async fn logs(sim: web::Data<Sim>, filter: web::Query<Filter>) -> HttpResponse {
    let store = lock(&sim.store);
    let keep = |received: &Received| filter.agent_matches(Some(&received.agent));
    let all = store.state().logs();
    let (records, next) = page(all, |received| received.seq, keep, &filter);
    let count = match filter.agent {
        None => all.len(),
        Some(_) => all.iter().filter(|received| keep(received)).count(),
    };
    let records: Vec<Value> = records.into_iter().map(received_view).collect();
    ok(json!({"count": count, "next": next, "records": records}))
}

async fn requests(sim: web::Data<Sim>) -> HttpResponse {
    ok(lock(&sim.traffic).view())
}

async fn clear_requests(sim: web::Data<Sim>) -> HttpResponse {
    lock(&sim.traffic).clear_requests();
    ok(json!({"cleared": true}))
}

async fn violations(sim: web::Data<Sim>, filter: web::Query<Filter>) -> HttpResponse {
    let store = lock(&sim.store);
    let violations: Vec<&super::state::Violation> = store
        .state()
        .violations()
        .iter()
        .filter(|violation| filter.agent_matches(violation.agent.as_deref()))
        .collect();
    ok(json!({"count": violations.len(), "violations": violations}))
}

async fn clear_violations(sim: web::Data<Sim>) -> HttpResponse {
    let cleared = lock(&sim.store).commit(vec![super::state::Event::ViolationsCleared]);
    match cleared {
        Ok(()) => ok(json!({"cleared": true})),
        Err(err) => admin_failure(err.into()),
    }
}

async fn faults(sim: web::Data<Sim>) -> HttpResponse {
    let traffic = lock(&sim.traffic);
    ok(json!({"count": traffic.faults().len(), "faults": traffic.faults()}))
}

async fn add_faults(sim: web::Data<Sim>, body: Bytes) -> HttpResponse {
    let specs = match parse_json(&body) {
        Ok(Value::Array(specs)) => specs,
        Ok(spec) => vec![spec],
        Err(reason) => return failure(StatusCode::BAD_REQUEST, &reason),
    };
    let parsed: Result<Vec<Fault>, String> = specs.iter().map(Fault::from_json).collect();
    let faults = match parsed {
        Ok(faults) => faults,
        Err(reason) => return failure(StatusCode::BAD_REQUEST, &reason),
    };
    let mut traffic = lock(&sim.traffic);
    let count = faults.len();
    for fault in faults {
        tracing::info!(route = fault.route.name(), count = fault.remaining, kind = ?fault.kind, "fault queued");
        traffic.add_fault(fault);
    }
    ok(json!({"queued": count, "faults": traffic.faults()}))
}

async fn clear_faults(sim: web::Data<Sim>) -> HttpResponse {
    let mut traffic = lock(&sim.traffic);
    let count = traffic.faults().len();
    traffic.clear_faults();
    ok(json!({"cleared": count}))
}

async fn data(sim: web::Data<Sim>) -> HttpResponse {
    ok(lock(&sim.data).view())
}

async fn data_files(sim: web::Data<Sim>) -> HttpResponse {
    ok(lock(&sim.data).files_view())
}

async fn clear_data(sim: web::Data<Sim>) -> HttpResponse {
    lock(&sim.data).reset();
    ok(json!({"cleared": true}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assets::Assets;

    #[test]
    fn page_starts_at_since_and_tells_where_to_resume() {
        let items: Vec<u64> = (0..10).collect();
        let filter = Filter {
            since: Some(3),
            limit: Some(4),
            ..Filter::default()
        };
        let (selected, next) = page(&items, |item| *item, |item| item % 2 == 1, &filter);
        assert_eq!(selected, vec![&3, &5, &7, &9]);
        assert_eq!(next, 10);
        let filter = Filter {
            since: Some(3),
            limit: Some(2),
            ..Filter::default()
        };
        let (selected, next) = page(&items, |item| *item, |_| true, &filter);
        assert_eq!(selected, vec![&3, &4]);
        assert_eq!(next, 5);
    }

    #[test]
    fn asset_ids_cannot_escape_the_assets_folder() {
        assert!(Assets::valid_id("oibus-linux_x64-3.8.9.zip"));
        assert!(!Assets::valid_id("../etc/passwd"));
        assert!(!Assets::valid_id(".upload-x"));
        assert!(!Assets::valid_id(""));
    }
}
