//! The actix shell of supervision: the [`Supervisor`] actor, the [`ChildGuard`] each child holds,
//! and the messages `ChildExited`, `Shutdown`, `GetChildren` (to the supervisor) and `Stop` (to
//! every child).

use std::time::{Duration, Instant};

use actix::prelude::*;
use serde::Serialize;
use tokio::sync::watch;

use super::{Decision, RestartTracker, EXIT_ESCALATED};
use crate::config::RestartPolicy;

/// Asks a child to flush what it must and stop. Every supervised actor handles it.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Stop;

/// Sent by a [`ChildGuard`] when its actor is dropped.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ChildExited {
    pub index: usize,
    pub generation: u64,
    pub panicked: bool,
}

/// Stop every child in reverse start order, within `timeout` overall.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Shutdown {
    pub timeout: Duration,
}

/// The state of every child, for `/health` and `/status`.
#[derive(Debug, Message)]
#[rtype(result = "Vec<ChildStatus>")]
pub struct GetChildren;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildState {
    Running,
    Restarting,
    Stopped,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChildStatus {
    pub name: &'static str,
    pub state: ChildState,
    pub restarts: u32,
    pub last_failure: Option<String>,
}

/// Held inside a child actor: when the actor is dropped (it stopped, or a handler panicked and
/// unwound through it) the supervisor hears of it.
pub struct ChildGuard {
    /// `None` for an actor started outside supervision (unit tests, tools).
    supervisor: Option<Addr<Supervisor>>,
    index: usize,
    generation: u64,
    exited: watch::Sender<bool>,
}

impl ChildGuard {
    /// A guard that reports to nobody, for an actor started on its own (tests, tools).
    pub fn unsupervised() -> Self {
        ChildGuard {
            supervisor: None,
            index: 0,
            generation: 0,
            exited: watch::channel(false).0,
        }
    }
}

impl std::fmt::Debug for ChildGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildGuard")
            .field("index", &self.index)
            .field("generation", &self.generation)
            .finish()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.exited.send(true);
        if let Some(supervisor) = &self.supervisor {
            supervisor.do_send(ChildExited {
                index: self.index,
                generation: self.generation,
                panicked: std::thread::panicking(),
            });
        }
    }
}

type StartFn = Box<dyn Fn(ChildGuard) -> Recipient<Stop>>;

/// How to start one child.
pub struct ChildSpec {
    pub name: &'static str,
    pub policy: RestartPolicy,
    start: StartFn,
}

impl ChildSpec {
    /// `start` builds the actor with the guard inside, starts it, records its address wherever
    /// peers find it, and returns where to send [`Stop`].
    pub fn new(
        name: &'static str,
        policy: RestartPolicy,
        start: impl Fn(ChildGuard) -> Recipient<Stop> + 'static,
    ) -> Self {
        ChildSpec {
            name,
            policy,
            start: Box::new(start),
        }
    }
}

struct Child {
    spec: ChildSpec,
    tracker: RestartTracker,
    generation: u64,
    state: ChildState,
    restarts: u32,
    last_failure: Option<String>,
    stop: Option<Recipient<Stop>>,
    exited: watch::Receiver<bool>,
}

pub struct Supervisor {
    children: Vec<Child>,
    shutting_down: bool,
}

impl Supervisor {
    pub fn new(specs: Vec<ChildSpec>) -> Self {
        let now = Instant::now();
        let children = specs
            .into_iter()
            .inspect(|spec| crate::events::ActorSupervised { actor: spec.name }.emit())
            .map(|spec| Child {
                tracker: RestartTracker::new(spec.policy.clone(), now),
                spec,
                generation: 0,
                state: ChildState::Stopped,
                restarts: 0,
                last_failure: None,
                stop: None,
                exited: watch::channel(true).1,
            })
            .collect();
        Supervisor {
            children,
            shutting_down: false,
        }
    }

    fn start_child(&mut self, index: usize, ctx: &mut Context<Self>) {
        if self.shutting_down {
            return;
        }
        let child = &mut self.children[index];
        child.generation += 1;
        let (tx, rx) = watch::channel(false);
        let guard = ChildGuard {
            supervisor: Some(ctx.address()),
            index,
            generation: child.generation,
            exited: tx,
        };
        child.stop = Some((child.spec.start)(guard));
        child.exited = rx;
        child.state = ChildState::Running;
        child.tracker.started(Instant::now());
        tracing::debug!(
            actor = child.spec.name,
            generation = child.generation,
            "actor started"
        );
    }

    fn escalate(&mut self, ctx: &mut Context<Self>, name: &'static str, failures: usize) {
        tracing::error!(
            actor = name,
            failures,
            exit_code = EXIT_ESCALATED,
            "restart budget spent; shutting the engine down so the launcher restarts it"
        );
        let stop_all = self.stop_all(Duration::from_secs(10));
        ctx.wait(stop_all.map(|_, _, _| {
            System::current().stop_with_code(EXIT_ESCALATED);
        }));
    }

    /// Stop children in reverse order, each within what is left of `timeout`.
    fn stop_all(&mut self, timeout: Duration) -> impl ActorFuture<Self, Output = ()> {
        self.shutting_down = true;
        let deadline = tokio::time::Instant::now() + timeout;
        let steps: Vec<_> = self
            .children
            .iter_mut()
            .rev()
            .map(|c| (c.spec.name, c.stop.take(), c.exited.clone()))
            .collect();
        async move {
            for (name, stop, mut exited) in steps {
                let Some(stop) = stop else { continue };
                if *exited.borrow() {
                    continue;
                }
                stop.do_send(Stop);
                let waited = tokio::time::timeout_at(deadline, exited.wait_for(|gone| *gone)).await;
                if waited.is_err() {
                    tracing::warn!(
                        actor = name,
                        "actor did not stop before the shutdown deadline"
                    );
                }
            }
        }
        .into_actor(self)
        .map(|_, act, _| {
            for c in &mut act.children {
                c.state = ChildState::Stopped;
            }
        })
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        for i in 0..self.children.len() {
            self.start_child(i, ctx);
        }
    }
}

impl Handler<ChildExited> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: ChildExited, ctx: &mut Context<Self>) {
        if self.shutting_down {
            return;
        }
        let child = &mut self.children[msg.index];
        if msg.generation != child.generation {
            return; // a stale instance; the current one is fine
        }
        let name = child.spec.name;
        let why = if msg.panicked {
            "panicked"
        } else {
            "stopped unexpectedly"
        };
        child.last_failure = Some(format!("{why} at {}", chrono::Utc::now().to_rfc3339()));
        child.stop = None;
        match child.tracker.on_failure(Instant::now()) {
            Decision::Restart { after, attempt } => {
                child.state = ChildState::Restarting;
                child.restarts += 1;
                crate::events::ActorRestarted {
                    actor: name,
                    reason: why,
                    attempt,
                    after,
                }
                .emit();
                let index = msg.index;
                ctx.run_later(after, move |act, ctx| act.start_child(index, ctx));
            }
            Decision::Escalate { failures } => self.escalate(ctx, name, failures),
        }
    }
}

impl Handler<Shutdown> for Supervisor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: Shutdown, _: &mut Context<Self>) -> Self::Result {
        Box::pin(self.stop_all(msg.timeout))
    }
}

impl Handler<GetChildren> for Supervisor {
    type Result = MessageResult<GetChildren>;

    fn handle(&mut self, _: GetChildren, _: &mut Context<Self>) -> Self::Result {
        MessageResult(
            self.children
                .iter()
                .map(|c| ChildStatus {
                    name: c.spec.name,
                    state: c.state,
                    restarts: c.restarts,
                    last_failure: c.last_failure.clone(),
                })
                .collect(),
        )
    }
}

/// Report a child that could not even be built (e.g. its files cannot be opened): the returned
/// recipient belongs to a placeholder that stops at once, so the failure goes through the
/// child's restart policy like any other, and escalates if it persists.
pub fn failed_start(
    guard: ChildGuard,
    name: &'static str,
    error: &dyn std::fmt::Display,
) -> Recipient<Stop> {
    tracing::error!(actor = name, %error, "actor could not start");
    struct Failed(#[allow(dead_code)] ChildGuard);
    impl Actor for Failed {
        type Context = Context<Self>;
        fn started(&mut self, ctx: &mut Context<Self>) {
            ctx.stop();
        }
    }
    impl Handler<Stop> for Failed {
        type Result = ();
        fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
            ctx.stop();
        }
    }
    Failed(guard).start().recipient()
}
