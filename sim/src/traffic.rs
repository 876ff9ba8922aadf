//! The OIA routes by name, the recent-requests log, and the fault queue.
//!
//! Neither is persisted: they describe the traffic of this process, not OIA's data.
use std::collections::{HashMap, VecDeque};

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::Method;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Map, Value};

/// Path of the OIA routes E1–E10 and of the values routes, after the optional gateway prefix.
pub const BASE: &str = "/api/oianalytics/oibus/";

/// Where every OIA route is, `file-uploads` included (it is outside [`BASE`]).
const API: &str = "/api/oianalytics/";

/// How many requests are kept per route for `GET /admin/requests`.
const RECENT_PER_ROUTE: usize = 50;

/// The routes E1–E10 and the north OIAnalytics data routes, named as in the admin API (faults,
/// request counts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    Registration,
    CheckRegistration,
    CommandsPending,
    CommandsListByIds,
    CommandsStatus,
    Configuration,
    HistoryQuery,
    Logs,
    UpgradeAsset,
    Status,
    TimeValues,
    TimeValuesCompressed,
    FileUploads,
}

impl Route {
    pub const ALL: [Route; 13] = [
        Route::Registration,
        Route::CheckRegistration,
        Route::CommandsPending,
        Route::CommandsListByIds,
        Route::CommandsStatus,
        Route::Configuration,
        Route::HistoryQuery,
        Route::Logs,
        Route::UpgradeAsset,
        Route::Status,
        Route::TimeValues,
        Route::TimeValuesCompressed,
        Route::FileUploads,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Route::Registration => "registration",
            Route::CheckRegistration => "check-registration",
            Route::CommandsPending => "commands-pending",
            Route::CommandsListByIds => "commands-list-by-ids",
            Route::CommandsStatus => "commands-status",
            Route::Configuration => "configuration",
            Route::HistoryQuery => "history-query",
            Route::Logs => "logs",
            Route::UpgradeAsset => "upgrade-asset",
            Route::Status => "status",
            Route::TimeValues => "time-values",
            Route::TimeValuesCompressed => "time-values-compressed",
            Route::FileUploads => "file-uploads",
        }
    }

    /// The path after [`API`].
    fn suffix(self) -> &'static str {
        match self {
            Route::Registration => "oibus/registration",
            Route::CheckRegistration => "oibus/check-registration",
            Route::CommandsPending => "oibus/commands/pending",
            Route::CommandsListByIds => "oibus/commands/list-by-ids",
            Route::CommandsStatus => "oibus/commands/status",
            Route::Configuration => "oibus/configuration",
            Route::HistoryQuery => "oibus/configuration/history-query",
            Route::Logs => "oibus/logs",
            Route::UpgradeAsset => "oibus/upgrade/asset",
            Route::Status => "oibus/status",
            Route::TimeValues => "oibus/time-values",
            Route::TimeValuesCompressed => "oibus/time-values/compressed",
            Route::FileUploads => "file-uploads",
        }
    }

    pub fn method(self) -> Method {
        match self {
            Route::Registration
            | Route::Logs
            | Route::TimeValues
            | Route::TimeValuesCompressed
            | Route::FileUploads => Method::POST,
            Route::CommandsStatus | Route::Configuration | Route::HistoryQuery => Method::PUT,
            _ => Method::GET,
        }
    }

    /// E1 and E2 carry no Bearer token (§2).
    pub fn authenticated(self) -> bool {
        !matches!(self, Route::Registration | Route::CheckRegistration)
    }

    pub fn parse(name: &str) -> Option<Route> {
        Route::ALL.into_iter().find(|route| route.name() == name)
    }

    /// The route of a request path with the gateway `prefix` (possibly empty) in front.
    pub fn from_path(path: &str, prefix: &str) -> Option<Route> {
        let suffix = path.strip_prefix(prefix)?.strip_prefix(API)?;
        Route::ALL
            .into_iter()
            .find(|route| route.suffix() == suffix)
    }
}

/// One fault behaviour (see the module doc of `sim` for the JSON forms).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum FaultKind {
    Status {
        status: u16,
        body: String,
    },
    Delay {
        delay_ms: u64,
    },
    Close {
        close: bool,
    },
    SlowBody {
        slow_body_ms: u64,
        chunk_bytes: usize,
    },
}

/// Default piece size of a slowed body.
const SLOW_CHUNK_BYTES: usize = 1024;

impl FaultKind {
    pub fn from_json(value: &Value) -> Result<FaultKind, String> {
        let object = value.as_object().ok_or("kind: expected an object")?;
        let number = |key: &str| -> Result<u64, String> {
            object
                .get(key)
                .and_then(Value::as_u64)
                .ok_or_else(|| format!("kind.{key}: expected a non-negative integer"))
        };
        let allowed: &[&str] = if object.contains_key("status") {
            &["status", "body"]
        } else if object.contains_key("delay_ms") {
            &["delay_ms"]
        } else if object.contains_key("close") {
            &["close"]
        } else if object.contains_key("slow_body_ms") {
            &["slow_body_ms", "chunk_bytes"]
        } else {
            return Err("kind: expected one of {status, body?}, {delay_ms}, {close: true}, {slow_body_ms, chunk_bytes?}".into());
        };
        if let Some(extra) = object.keys().find(|key| !allowed.contains(&key.as_str())) {
            return Err(format!("kind.{extra}: unexpected with {}", allowed[0]));
        }
        match allowed[0] {
            "status" => {
                let status = number("status")?;
                if !(200..=599).contains(&status) {
                    return Err("kind.status: expected an HTTP status 200..599".into());
                }
                let body = match object.get("body") {
                    None => String::new(),
                    Some(Value::String(text)) => text.clone(),
                    Some(other) => other.to_string(),
                };
                Ok(FaultKind::Status {
                    status: status as u16,
                    body,
                })
            }
            "delay_ms" => Ok(FaultKind::Delay {
                delay_ms: number("delay_ms")?,
            }),
            "close" => match object.get("close") {
                Some(Value::Bool(true)) => Ok(FaultKind::Close { close: true }),
                _ => Err("kind.close: expected true".into()),
            },
            _ => {
                let chunk_bytes = match object.get("chunk_bytes") {
                    None => SLOW_CHUNK_BYTES,
                    Some(_) => number("chunk_bytes")?.max(1) as usize,
                };
                Ok(FaultKind::SlowBody {
                    slow_body_ms: number("slow_body_ms")?,
                    chunk_bytes,
                })
            }
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Fault {
    #[serde(serialize_with = "serialize_route")]
    pub route: Route,
    pub remaining: u32,
    pub kind: FaultKind,
}

fn serialize_route<S: serde::Serializer>(route: &Route, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(route.name())
}

impl Fault {
    /// Parses `{route, count?, kind}` (count defaults to 1).
    pub fn from_json(value: &Value) -> Result<Fault, String> {
        let object = value.as_object().ok_or("fault: expected an object")?;
        if let Some(extra) = object
            .keys()
            .find(|key| !["route", "count", "kind"].contains(&key.as_str()))
        {
            return Err(format!(
                "fault.{extra}: unexpected key (route, count, kind)"
            ));
        }
        let name = object
            .get("route")
            .and_then(Value::as_str)
            .ok_or("fault.route: expected a string")?;
        let route = Route::parse(name).ok_or_else(|| {
            let names: Vec<&str> = Route::ALL.iter().map(|route| route.name()).collect();
            format!("fault.route: {name:?} is not one of {}", names.join(", "))
        })?;
        let remaining = match object.get("count") {
            None => 1,
            Some(count) => count
                .as_u64()
                .and_then(|count| u32::try_from(count).ok())
                .filter(|&count| count > 0)
                .ok_or("fault.count: expected a positive integer")?,
        };
        let kind = FaultKind::from_json(object.get("kind").unwrap_or(&Value::Null))?;
        Ok(Fault {
            route,
            remaining,
            kind,
        })
    }
}

/// Request headers as received. Kept as cheap clones of the parsed values and turned into a
/// JSON object (`name: value`, repeated headers joined with ", ") only when listed.
#[derive(Clone, Debug)]
pub struct RecordedHeaders(pub Vec<(HeaderName, HeaderValue)>);

impl Serialize for RecordedHeaders {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut object: Map<String, Value> = Map::new();
        for (name, value) in &self.0 {
            let value = String::from_utf8_lossy(value.as_bytes());
            match object.get_mut(name.as_str()) {
                Some(Value::String(previous)) => {
                    previous.push_str(", ");
                    previous.push_str(&value);
                }
                _ => {
                    object.insert(name.as_str().to_owned(), Value::String(value.into_owned()));
                }
            }
        }
        object.serialize(serializer)
    }
}

/// One request as seen on the wire.
#[derive(Clone, Debug, Serialize)]
pub struct RequestRecord {
    pub at: DateTime<Utc>,
    pub method: String,
    pub path: String,
    pub headers: RecordedHeaders,
    pub status: u16,
    pub agent: Option<String>,
    /// The fault applied, if any.
    pub fault: Option<FaultKind>,
}

#[derive(Default)]
struct RouteTraffic {
    count: u64,
    recent: VecDeque<RequestRecord>,
}

#[derive(Default)]
pub struct Traffic {
    routes: HashMap<&'static str, RouteTraffic>,
    faults: VecDeque<Fault>,
}

impl Traffic {
    /// `route` is a [`Route::name`] or `"unknown"`.
    pub fn record(&mut self, route: &'static str, request: RequestRecord) {
        let traffic = self.routes.entry(route).or_default();
        traffic.count += 1;
        if traffic.recent.len() == RECENT_PER_ROUTE {
            traffic.recent.pop_front();
        }
        traffic.recent.push_back(request);
    }

    pub fn view(&self) -> Value {
        let total: u64 = self.routes.values().map(|traffic| traffic.count).sum();
        let routes: Map<String, Value> = self
            .routes
            .iter()
            .map(|(name, traffic)| {
                let view = json!({"count": traffic.count, "recent": traffic.recent});
                ((*name).to_owned(), view)
            })
            .collect();
        json!({"total": total, "routes": routes})
    }

    pub fn clear_requests(&mut self) {
        self.routes.clear();
    }

    pub fn add_fault(&mut self, fault: Fault) {
        self.faults.push_back(fault);
    }

    pub fn faults(&self) -> &VecDeque<Fault> {
        &self.faults
    }

    pub fn clear_faults(&mut self) {
        self.faults.clear();
    }

    /// The fault the next request on `route` gets, oldest queued first.
    pub fn take_fault(&mut self, route: Route) -> Option<FaultKind> {
        let index = self.faults.iter().position(|fault| fault.route == route)?;
        let fault = &mut self.faults[index];
        fault.remaining -= 1;
        let kind = fault.kind.clone();
        if fault.remaining == 0 {
            self.faults.remove(index);
        }
        Some(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_found_behind_the_gateway_prefix_only() {
        assert_eq!(
            Route::from_path("/gw/api/oianalytics/oibus/commands/status", "/gw"),
            Some(Route::CommandsStatus)
        );
        assert_eq!(
            Route::from_path("/api/oianalytics/oibus/commands/status", "/gw"),
            None
        );
        assert_eq!(
            Route::from_path("/api/oianalytics/oibus/configuration/history-query", ""),
            Some(Route::HistoryQuery)
        );
        assert_eq!(
            Route::from_path("/api/oianalytics/oibus/configuration/", ""),
            None
        );
    }

    #[test]
    fn faults_apply_in_order_for_their_count() {
        let mut traffic = Traffic::default();
        let close =
            Fault::from_json(&json!({"route": "logs", "count": 2, "kind": {"close": true}}))
                .expect("valid");
        let delay =
            Fault::from_json(&json!({"route": "logs", "kind": {"delay_ms": 5}})).expect("valid");
        traffic.add_fault(close);
        traffic.add_fault(delay);
        assert_eq!(traffic.take_fault(Route::Status), None);
        assert_eq!(
            traffic.take_fault(Route::Logs),
            Some(FaultKind::Close { close: true })
        );
        assert_eq!(
            traffic.take_fault(Route::Logs),
            Some(FaultKind::Close { close: true })
        );
        assert_eq!(
            traffic.take_fault(Route::Logs),
            Some(FaultKind::Delay { delay_ms: 5 })
        );
        assert_eq!(traffic.take_fault(Route::Logs), None);
    }

    #[test]
    fn fault_with_unknown_route_or_mixed_kind_is_refused() {
        assert!(Fault::from_json(&json!({"route": "nope", "kind": {"close": true}})).is_err());
        assert!(Fault::from_json(
            &json!({"route": "logs", "kind": {"status": 500, "delay_ms": 1}})
        )
        .is_err());
        assert!(Fault::from_json(&json!({"route": "logs", "kind": {"close": false}})).is_err());
        let slow =
            Fault::from_json(&json!({"route": "upgrade-asset", "kind": {"slow_body_ms": 10}}))
                .expect("valid");
        assert_eq!(
            slow.kind,
            FaultKind::SlowBody {
                slow_body_ms: 10,
                chunk_bytes: SLOW_CHUNK_BYTES
            }
        );
    }
}
