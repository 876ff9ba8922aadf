use std::time::{Duration, Instant};

use actix::prelude::*;

use super::Supervisor;
use super::*;

fn policy(max: u32) -> RestartPolicy {
    RestartPolicy {
        max_restarts: max,
        within: Duration::from_secs(60),
        backoff_initial: Duration::from_millis(100),
        backoff_max: Duration::from_secs(1),
        reset_after: Duration::from_secs(30),
    }
}

fn after(d: Decision) -> Duration {
    match d {
        Decision::Restart { after, .. } => after,
        Decision::Escalate { .. } => panic!("expected a restart, got {d:?}"),
    }
}

#[test]
fn backoff_doubles_up_to_the_cap_each_delay_in_the_upper_half_of_its_step() {
    let t0 = Instant::now();
    let mut t = RestartTracker::new(policy(100), t0);
    for (i, step) in [100, 200, 400, 800, 1000, 1000].into_iter().enumerate() {
        let d = after(t.on_failure(t0 + Duration::from_millis(i as u64)));
        let step = Duration::from_millis(step);
        assert!(d >= step / 2 && d <= step, "{d:?} for a {step:?} step");
    }
}

#[test]
fn budget_spent_within_the_window_escalates() {
    let t0 = Instant::now();
    let mut t = RestartTracker::new(policy(3), t0);
    for i in 0..3 {
        after(t.on_failure(t0 + Duration::from_secs(i)));
    }
    assert_eq!(
        t.on_failure(t0 + Duration::from_secs(3)),
        Decision::Escalate { failures: 4 }
    );
}

#[test]
fn failures_outside_the_window_do_not_count() {
    let t0 = Instant::now();
    let mut t = RestartTracker::new(policy(2), t0);
    after(t.on_failure(t0));
    after(t.on_failure(t0 + Duration::from_secs(1)));
    // 61 s later the first two have aged out of the 60 s window.
    after(t.on_failure(t0 + Duration::from_secs(62)));
}

#[test]
fn a_stable_run_resets_the_backoff() {
    let t0 = Instant::now();
    let mut t = RestartTracker::new(policy(100), t0);
    for i in 0..4 {
        after(t.on_failure(t0 + Duration::from_millis(i)));
    }
    let restarted = t0 + Duration::from_secs(1);
    t.started(restarted);
    let d = after(t.on_failure(restarted + Duration::from_secs(31)));
    assert!(
        d <= Duration::from_millis(100),
        "back to the initial step, got {d:?}"
    );
}

// ---- actor-level tests: real actix actors under the supervisor ----

/// Fails (stops itself, or panics) when told; counts its starts.
struct Flaky {
    _guard: ChildGuard,
}

#[derive(Message)]
#[rtype(result = "()")]
enum Fail {
    Stop,
    Panic,
}

impl Actor for Flaky {
    type Context = Context<Self>;
}

impl Handler<Fail> for Flaky {
    type Result = ();
    fn handle(&mut self, msg: Fail, ctx: &mut Context<Self>) {
        match msg {
            Fail::Stop => ctx.stop(),
            Fail::Panic => panic!("test actor panics on purpose"),
        }
    }
}

impl Handler<Stop> for Flaky {
    type Result = ();
    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// Answers pings; its stop handler takes a little time, like a flush.
struct Echo {
    _guard: ChildGuard,
    stopped: std::sync::Arc<std::sync::Mutex<Vec<&'static str>>>,
}

#[derive(Message)]
#[rtype(result = "u32")]
struct Ping(u32);

impl Actor for Echo {
    type Context = Context<Self>;
}

impl Handler<Ping> for Echo {
    type Result = u32;
    fn handle(&mut self, msg: Ping, _: &mut Context<Self>) -> u32 {
        msg.0 + 1
    }
}

impl Handler<Stop> for Echo {
    type Result = ();
    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        self.stopped.lock().unwrap().push("echo");
        ctx.stop();
    }
}

fn fast_policy(max: u32) -> RestartPolicy {
    RestartPolicy {
        max_restarts: max,
        within: Duration::from_secs(60),
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(100),
        reset_after: Duration::from_secs(60),
    }
}

fn specs(
    peers: &Peers,
    max: u32,
    stopped: std::sync::Arc<std::sync::Mutex<Vec<&'static str>>>,
) -> Vec<ChildSpec> {
    let p1 = peers.clone();
    let p2 = peers.clone();
    vec![
        ChildSpec::new("echo", fast_policy(max), move |guard| {
            let addr = Echo {
                _guard: guard,
                stopped: stopped.clone(),
            }
            .start();
            p1.set(addr.clone());
            addr.recipient()
        }),
        ChildSpec::new("flaky", fast_policy(max), move |guard| {
            let addr = Flaky { _guard: guard }.start();
            p2.set(addr.clone());
            addr.recipient()
        }),
    ]
}

async fn wait_restarts(sup: &Addr<Supervisor>, name: &str, n: u32) -> ChildStatus {
    for _ in 0..200 {
        let children = sup.send(GetChildren).await.unwrap();
        let c = children.into_iter().find(|c| c.name == name).unwrap();
        if c.restarts >= n && c.state == ChildState::Running {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{name} was not restarted {n} times");
}

#[actix_rt::test]
async fn failed_actor_is_restarted_while_its_sibling_keeps_answering() {
    let peers = Peers::default();
    let sup = Supervisor::new(specs(&peers, 5, Default::default())).start();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let first = peers.get::<Flaky>().unwrap();
    first.do_send(Fail::Stop);
    let status = wait_restarts(&sup, "flaky", 1).await;
    assert!(status
        .last_failure
        .unwrap()
        .starts_with("stopped unexpectedly"));
    let second = peers.get::<Flaky>().unwrap();
    assert!(
        second.connected() && !first.connected(),
        "peers point at the new instance"
    );

    // A panic inside a handler is that actor's failure only.
    second.do_send(Fail::Panic);
    let status = wait_restarts(&sup, "flaky", 2).await;
    assert!(status.last_failure.unwrap().starts_with("panicked"));
    let echo = peers.get::<Echo>().unwrap();
    assert_eq!(
        echo.send(Ping(41)).await.unwrap(),
        42,
        "the sibling never stopped"
    );
    let children = sup.send(GetChildren).await.unwrap();
    assert_eq!(children[0].restarts, 0);
}

#[actix_rt::test]
async fn shutdown_stops_children_in_reverse_order() {
    let peers = Peers::default();
    let stopped = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sup = Supervisor::new(specs(&peers, 5, stopped.clone())).start();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let flaky = peers.get::<Flaky>().unwrap();
    sup.send(Shutdown {
        timeout: Duration::from_secs(2),
    })
    .await
    .unwrap();
    assert!(!flaky.connected(), "flaky (started last) is stopped");
    assert_eq!(*stopped.lock().unwrap(), ["echo"]);
    let children = sup.send(GetChildren).await.unwrap();
    assert!(children.iter().all(|c| c.state == ChildState::Stopped));
}

#[test]
fn spent_budget_stops_the_system_with_exit_code_70() {
    let system = System::new();
    system.block_on(async {
        let peers = Peers::default();
        let sup = Supervisor::new(specs(&peers, 2, Default::default())).start();
        actix_rt::spawn(async move {
            for _ in 0..50 {
                if let Some(f) = peers.get::<Flaky>() {
                    f.do_send(Fail::Stop);
                }
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            drop(sup);
        });
    });
    let code = system.run_with_code().unwrap();
    assert_eq!(code, EXIT_ESCALATED);
}
