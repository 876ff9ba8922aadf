//! Requests for a configuration push (protocol §6.1), from whoever changes configuration to the
//! MessageSender, which builds the snapshot at send time.
//!
//! The sender side does not name the MessageSender type: it holds a [`ConfigOutbox`], which the
//! engine builds with [`ConfigOutbox::to_peer`] (delivery through `Peers::do_send`, so a
//! restarted MessageSender is found at its new address).

use std::sync::Arc;

use actix::prelude::*;
use serde::{Deserialize, Serialize};

use crate::supervision::Peers;

/// Which configuration message to queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConfigKind {
    /// E6 `PUT configuration`.
    FullConfig,
    /// E7 `PUT configuration/history-query`.
    HistoryQueries,
}

/// Something in the configuration changed: queue a message of `kind` (at most one pending per
/// kind, built when sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub struct ConfigChanged {
    pub kind: ConfigKind,
}

type Deliver = dyn Fn(ConfigChanged) -> bool + Send + Sync;

/// Where [`ConfigChanged`] goes. Cheap to clone.
#[derive(Clone)]
pub struct ConfigOutbox {
    deliver: Option<Arc<Deliver>>,
}

impl std::fmt::Debug for ConfigOutbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigOutbox")
            .field("connected", &self.deliver.is_some())
            .finish()
    }
}

impl ConfigOutbox {
    /// Deliver to the current instance of actor `A` found in `peers`.
    pub fn to_peer<A>(peers: Peers) -> ConfigOutbox
    where
        A: Actor<Context = Context<A>> + Handler<ConfigChanged>,
    {
        ConfigOutbox::from_fn(move |msg| peers.do_send::<A, ConfigChanged>(msg))
    }

    /// Deliver with `f`, which returns whether the request was taken (tests, tools).
    pub fn from_fn(f: impl Fn(ConfigChanged) -> bool + Send + Sync + 'static) -> ConfigOutbox {
        ConfigOutbox {
            deliver: Some(Arc::new(f)),
        }
    }

    /// No MessageSender in this engine: requests are dropped (the MessageSender pushes a full
    /// snapshot when it starts, so nothing it would send is lost).
    pub fn none() -> ConfigOutbox {
        ConfigOutbox { deliver: None }
    }

    /// Ask for a message of `kind`; false when nobody took the request.
    pub fn send(&self, kind: ConfigKind) -> bool {
        self.deliver
            .as_ref()
            .is_some_and(|deliver| deliver(ConfigChanged { kind }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn requests_reach_the_delivery_function_and_none_drops_them() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let outbox = ConfigOutbox::from_fn(move |m| {
            log.lock().unwrap().push(m.kind);
            true
        });
        assert!(outbox.send(ConfigKind::FullConfig));
        assert!(outbox.clone().send(ConfigKind::HistoryQueries));
        assert_eq!(
            *seen.lock().unwrap(),
            [ConfigKind::FullConfig, ConfigKind::HistoryQueries]
        );
        assert!(!ConfigOutbox::none().send(ConfigKind::FullConfig));
    }

    struct Sink(Arc<Mutex<Vec<ConfigKind>>>);
    impl Actor for Sink {
        type Context = Context<Self>;
    }
    impl Handler<ConfigChanged> for Sink {
        type Result = ();
        fn handle(&mut self, msg: ConfigChanged, _: &mut Context<Self>) {
            self.0.lock().unwrap().push(msg.kind);
        }
    }

    #[actix_rt::test]
    async fn a_peer_outbox_finds_the_actor_at_send_time() {
        let peers = Peers::default();
        let outbox = ConfigOutbox::to_peer::<Sink>(peers.clone());
        assert!(!outbox.send(ConfigKind::FullConfig), "not started yet");
        let seen = Arc::new(Mutex::new(Vec::new()));
        peers.set(Sink(seen.clone()).start());
        assert!(outbox.send(ConfigKind::FullConfig));
        for _ in 0..100 {
            if !seen.lock().unwrap().is_empty() {
                break;
            }
            actix_rt::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(*seen.lock().unwrap(), [ConfigKind::FullConfig]);
    }
}
