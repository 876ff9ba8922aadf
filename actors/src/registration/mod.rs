//! Registration with OIAnalytics (protocol §3): NOT_REGISTERED → PENDING → REGISTERED.
//!
//! The current state is published on a `watch` channel held by the engine (it outlives restarts
//! of the Registration actor). Authenticated actors read it at start and receive
//! [`RegistrationChanged`] on every change through [`subscribe`].

pub mod actor;

use actix::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::secret::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RegistrationStatus {
    #[default]
    NotRegistered,
    Pending,
    Registered,
}

impl RegistrationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RegistrationStatus::NotRegistered => "NOT_REGISTERED",
            RegistrationStatus::Pending => "PENDING",
            RegistrationStatus::Registered => "REGISTERED",
        }
    }
}

/// What authenticated actors need to know: may they call OIAnalytics, and with which token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub struct RegistrationChanged {
    pub status: RegistrationStatus,
    /// Present only while REGISTERED.
    pub token: Option<Secret<String>>,
}

impl RegistrationChanged {
    pub fn is_registered(&self) -> bool {
        self.status == RegistrationStatus::Registered && self.token.is_some()
    }
}

pub type RegistrationWatch = watch::Receiver<RegistrationChanged>;

/// Forward every later change of `watch` to the actor as a [`RegistrationChanged`] message.
/// The current value is not sent: read it with `watch.borrow()` in `started`.
pub fn subscribe<A>(ctx: &mut Context<A>, watch: RegistrationWatch)
where
    A: Actor<Context = Context<A>> + Handler<RegistrationChanged>,
{
    crate::context::forward_changes(ctx, watch, |changed| changed);
}

/// The persisted registration (state column family, key `registration`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationRecord {
    pub status: RegistrationStatus,
    pub activation_code: Option<String>,
    pub check_url: Option<String>,
    /// ISO date after which the activation code is no longer valid.
    pub expiration_date: Option<String>,
    /// The access token, sealed with the vault's local key (AES-256-GCM).
    pub sealed_token: Option<String>,
    pub activation_date: Option<String>,
    /// The host the registration was made with; a different `oianalytics.host` starts over.
    pub host: Option<String>,
    /// Set by a local unregister: stay unregistered (even across restarts) until asked.
    #[serde(default)]
    pub unregistered_by_user: bool,
}

/// What the Registration actor should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Nothing to do (no host configured, or not asked to register).
    Idle,
    /// Start a registration: new code, new key pair, E1.
    Start,
    /// Poll the check URL (E2).
    Poll,
    /// Registered: announce the token to the authenticated actors.
    Announce,
}

/// The decision at start or after a configuration change.
pub fn next_on_start(
    record: &RegistrationRecord,
    host: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Next {
    let Some(host) = host else {
        return match record.status {
            RegistrationStatus::Registered => Next::Announce,
            _ => Next::Idle,
        };
    };
    let same_host = record.host.as_deref().is_none_or(|h| h == host);
    match record.status {
        RegistrationStatus::Registered if same_host && record.sealed_token.is_some() => {
            Next::Announce
        }
        RegistrationStatus::Pending if same_host && record.check_url.is_some() => {
            if is_expired(record, now) {
                Next::Start
            } else {
                Next::Poll
            }
        }
        _ => Next::Start,
    }
}

/// What a completion check (E2) answer means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOutcome {
    Completed {
        token: String,
    },
    /// Still waiting for someone to enter the code in OIAnalytics.
    Waiting,
    /// The code expired: start a new registration with a new code.
    Expired,
}

pub fn on_check(
    record: &RegistrationRecord,
    answer: &crate::protocol::RegistrationCheck,
    now: chrono::DateTime<chrono::Utc>,
) -> CheckOutcome {
    match (&answer.status[..], &answer.access_token) {
        ("COMPLETED", Some(token)) if !token.is_empty() => CheckOutcome::Completed {
            token: token.clone(),
        },
        _ if answer.expired == Some(true) || is_expired(record, now) => CheckOutcome::Expired,
        _ => CheckOutcome::Waiting,
    }
}

fn is_expired(record: &RegistrationRecord, now: chrono::DateTime<chrono::Utc>) -> bool {
    record
        .expiration_date
        .as_deref()
        .and_then(|d| chrono::DateTime::parse_from_rfc3339(d).ok())
        .is_some_and(|exp| exp < now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::RegistrationCheck;

    fn t(s: &str) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().into()
    }

    fn pending(expiry: &str) -> RegistrationRecord {
        RegistrationRecord {
            status: RegistrationStatus::Pending,
            activation_code: Some("abc123".into()),
            check_url: Some("/check?id=1".into()),
            expiration_date: Some(expiry.into()),
            host: Some("http://oia".into()),
            ..Default::default()
        }
    }

    #[test]
    fn no_host_means_idle_unless_already_registered() {
        let now = t("2026-01-01T00:00:00Z");
        assert_eq!(
            next_on_start(&RegistrationRecord::default(), None, now),
            Next::Idle
        );
    }

    #[test]
    fn a_host_and_no_registration_starts_one() {
        let now = t("2026-01-01T00:00:00Z");
        assert_eq!(
            next_on_start(&RegistrationRecord::default(), Some("http://oia"), now),
            Next::Start
        );
    }

    #[test]
    fn pending_resumes_polling_until_the_code_expires() {
        let rec = pending("2026-01-01T00:10:00Z");
        assert_eq!(
            next_on_start(&rec, Some("http://oia"), t("2026-01-01T00:00:00Z")),
            Next::Poll
        );
        assert_eq!(
            next_on_start(&rec, Some("http://oia"), t("2026-01-01T00:11:00Z")),
            Next::Start
        );
    }

    #[test]
    fn registered_is_kept_across_restarts_and_announced() {
        let rec = RegistrationRecord {
            status: RegistrationStatus::Registered,
            sealed_token: Some("sealed".into()),
            host: Some("http://oia".into()),
            ..Default::default()
        };
        assert_eq!(
            next_on_start(&rec, Some("http://oia"), t("2030-01-01T00:00:00Z")),
            Next::Announce
        );
        assert_eq!(
            next_on_start(&rec, Some("http://other"), t("2030-01-01T00:00:00Z")),
            Next::Start,
            "a new host means a new registration"
        );
    }

    #[test]
    fn check_answers_map_to_outcomes() {
        let rec = pending("2026-01-01T00:10:00Z");
        let now = t("2026-01-01T00:00:00Z");
        let answer = |status: &str, expired, token: Option<&str>| RegistrationCheck {
            status: status.into(),
            expired,
            access_token: token.map(Into::into),
        };
        assert_eq!(
            on_check(&rec, &answer("COMPLETED", Some(false), Some("tok")), now),
            CheckOutcome::Completed {
                token: "tok".into()
            }
        );
        assert_eq!(
            on_check(&rec, &answer("PENDING", Some(false), None), now),
            CheckOutcome::Waiting
        );
        assert_eq!(
            on_check(&rec, &answer("PENDING", Some(true), None), now),
            CheckOutcome::Expired
        );
        assert_eq!(
            on_check(&rec, &answer("COMPLETED", None, Some("")), now),
            CheckOutcome::Waiting,
            "COMPLETED without a token is not a registration"
        );
        assert_eq!(
            on_check(
                &rec,
                &answer("PENDING", None, None),
                t("2026-01-01T00:20:00Z")
            ),
            CheckOutcome::Expired,
            "the expiry date is enforced even if the server does not say so"
        );
    }
}
