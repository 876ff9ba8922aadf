//! The directory of current actor addresses, shared by every actor of the engine.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use actix::dev::ToEnvelope;
use actix::{Actor, Addr, Handler, Message, Recipient};

use super::Stop;

#[derive(Clone, Default)]
pub struct Peers {
    inner: Arc<RwLock<HashMap<TypeId, Box<dyn Any + Send + Sync>>>>,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Peers")
    }
}

impl Peers {
    /// Record the current address of an actor type (called by the supervisor at each start).
    pub fn set<A: Actor>(&self, addr: Addr<A>) {
        // A poisoned lock only means a panic while inserting a whole entry; the map is intact.
        let mut map = self.inner.write().unwrap_or_else(|p| p.into_inner());
        map.insert(TypeId::of::<A>(), Box::new(addr));
    }

    /// Record a child the supervisor just started; returns where it sends [`Stop`].
    pub fn started<A>(&self, addr: Addr<A>) -> Recipient<Stop>
    where
        A: Actor + Handler<Stop>,
        A::Context: ToEnvelope<A, Stop>,
    {
        self.set(addr.clone());
        addr.recipient()
    }

    /// The current address of an actor type, if it has been started.
    pub fn get<A: Actor>(&self) -> Option<Addr<A>> {
        let map = self.inner.read().unwrap_or_else(|p| p.into_inner());
        map.get(&TypeId::of::<A>())
            .and_then(|b| b.downcast_ref::<Addr<A>>())
            .cloned()
    }

    /// Fire-and-forget to the current instance of `A`. Returns false when it is not running
    /// (being restarted, or not started), so callers that must not lose the message can retry.
    pub fn do_send<A, M>(&self, msg: M) -> bool
    where
        A: Actor + Handler<M>,
        A::Context: ToEnvelope<A, M>,
        M: Message + Send + 'static,
        M::Result: Send,
    {
        match self.get::<A>() {
            Some(addr) if addr.connected() => {
                addr.do_send(msg);
                true
            }
            _ => false,
        }
    }

    /// Ask the current instance of `A`; `None` when it is not running or did not answer.
    pub async fn ask<A, M>(&self, msg: M) -> Option<M::Result>
    where
        A: Actor + Handler<M>,
        A::Context: ToEnvelope<A, M>,
        M: Message + Send + 'static,
        M::Result: Send,
    {
        self.get::<A>()?.send(msg).await.ok()
    }
}
