//! The ContainerRuntime actor in isolation: CRI messages in, replies and container events
//! out. Speed 0 (simulated work is instant) unless a test is about durations.

use std::net::Ipv4Addr;
use std::time::Duration;

use actix::prelude::*;
use kubeactor::clock::SimClock;
use kubeactor::runtime::*;
use kubeactor::telemetry::Telemetry;
use tokio::sync::mpsc;

struct Collector(mpsc::UnboundedSender<ContainerEvent>);

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<ContainerEvent> for Collector {
    type Result = ();
    fn handle(&mut self, ev: ContainerEvent, _: &mut Context<Self>) {
        let _ = self.0.send(ev);
    }
}

fn runtime_with(speed: f64, config: RuntimeConfig) -> Addr<ContainerRuntime> {
    let telemetry = Telemetry::in_memory(100);
    ContainerRuntime::new(
        "node-1",
        "10.244.1.0/24",
        config,
        SimClock::new(speed).shared(),
        &telemetry,
    )
    .unwrap()
    .start()
}

fn runtime() -> Addr<ContainerRuntime> {
    runtime_with(0.0, RuntimeConfig::default())
}

fn sandbox_config(name: &str) -> PodSandboxConfig {
    PodSandboxConfig {
        name: name.into(),
        namespace: "default".into(),
        uid: format!("uid-{name}"),
        attempt: 0,
    }
}

fn container(name: &str, image: &str, command: &[&str]) -> ContainerConfig {
    ContainerConfig {
        name: name.into(),
        image: image.into(),
        command: command.iter().map(|s| s.to_string()).collect(),
        args: Vec::new(),
        attempt: 0,
    }
}

async fn sandbox(rt: &Addr<ContainerRuntime>, name: &str) -> SandboxStatus {
    rt.send(RunPodSandbox {
        config: sandbox_config(name),
        trace: None,
    })
    .await
    .unwrap()
    .unwrap()
}

async fn pull(rt: &Addr<ContainerRuntime>, image: &str) -> Result<PullResult, RuntimeError> {
    rt.send(PullImage {
        image: image.into(),
        trace: None,
    })
    .await
    .unwrap()
}

async fn run(rt: &Addr<ContainerRuntime>, sandbox_id: &str, config: ContainerConfig) -> String {
    pull(rt, &config.image).await.unwrap();
    let id = rt
        .send(CreateContainer {
            sandbox_id: sandbox_id.into(),
            config,
            trace: None,
        })
        .await
        .unwrap()
        .unwrap();
    rt.send(StartContainer {
        id: id.clone(),
        trace: None,
    })
    .await
    .unwrap()
    .unwrap();
    id
}

async fn status(rt: &Addr<ContainerRuntime>, id: &str) -> ContainerStatus {
    rt.send(GetContainerStatus { id: id.into() })
        .await
        .unwrap()
        .unwrap()
}

async fn next_event(rx: &mut mpsc::UnboundedReceiver<ContainerEvent>) -> ContainerEvent {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("an event within 5 s")
        .expect("runtime alive")
}

#[actix_rt::test]
async fn sandboxes_get_consecutive_ips_from_the_pod_cidr() {
    let rt = runtime();
    let a = sandbox(&rt, "a").await;
    let b = sandbox(&rt, "b").await;
    assert_eq!(a.ip, Ipv4Addr::new(10, 244, 1, 2));
    assert_eq!(b.ip, Ipv4Addr::new(10, 244, 1, 3));
    assert_eq!(a.state, SandboxState::Ready);
    rt.send(StopPodSandbox {
        id: a.id.clone(),
        trace: None,
    })
    .await
    .unwrap()
    .unwrap();
    let listed = rt
        .send(ListPodSandbox {
            pod_uid: Some("uid-a".into()),
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, SandboxState::NotReady);
}

#[actix_rt::test]
async fn a_second_pull_of_the_same_image_downloads_nothing() {
    let rt = runtime();
    let image_status = |image: &str| {
        rt.send(ImageStatus {
            image: image.into(),
            trace: None,
        })
    };
    assert_eq!(image_status("nginx:1.27").await.unwrap(), Ok(None));
    let first = pull(&rt, "nginx:1.27").await.unwrap();
    assert!(!first.cache_hit);
    assert_eq!(first.downloaded_bytes, 72_000_000);
    assert!(first
        .image_ref
        .starts_with("docker.io/library/nginx@sha256:"));
    let second = pull(&rt, "docker.io/library/nginx:1.27").await.unwrap();
    assert!(second.cache_hit);
    assert_eq!(second.downloaded_bytes, 0);
    let info = image_status("nginx:1.27").await.unwrap().unwrap().unwrap();
    assert_eq!(info.repo_tags, vec!["docker.io/library/nginx:1.27"]);
    let images = rt.send(ListImages).await.unwrap();
    assert_eq!(images.len(), 2, "nginx and the preloaded pause image");
    assert_eq!(images[0].repo_tags, info.repo_tags, "largest first");
}

#[actix_rt::test]
async fn concurrent_pulls_share_one_download() {
    let rt = runtime_with(1000.0, RuntimeConfig::default());
    let (a, b) = futures::join!(pull(&rt, "redis:7"), pull(&rt, "redis:7"));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.downloaded_bytes + b.downloaded_bytes, 45_000_000);
    assert!(a.cache_hit != b.cache_hit);
}

/// Pull time is the registry check plus size / bandwidth, in simulated seconds.
#[actix_rt::test]
async fn pull_durations_follow_size_and_bandwidth() {
    let rt = runtime_with(1000.0, RuntimeConfig::default());
    let pulled = pull(&rt, "nginx:1.27").await.unwrap();
    assert_eq!(pulled.duration, Duration::from_secs_f64(0.3 + 72.0 / 50.0));
    let again = pull(&rt, "nginx:1.27").await.unwrap();
    assert_eq!(again.duration, Duration::from_secs_f64(0.3));
}

#[actix_rt::test]
async fn images_that_cannot_exist_fail_to_pull() {
    let rt = runtime();
    let err = pull(&rt, "nginx:doesnotexist").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "rpc error: code = NotFound desc = failed to pull and unpack image \
         \"docker.io/library/nginx:doesnotexist\": failed to resolve reference \
         \"docker.io/library/nginx:doesnotexist\": docker.io/library/nginx:doesnotexist: not found"
    );
    assert!(matches!(
        pull(&rt, "Not A Valid Image").await,
        Err(RuntimeError::InvalidImage(_))
    ));
}

#[actix_rt::test]
async fn containers_need_their_image_and_a_ready_sandbox() {
    let rt = runtime();
    let sb = sandbox(&rt, "a").await;
    let err = rt
        .send(CreateContainer {
            sandbox_id: sb.id.clone(),
            config: container("app", "nginx:1.27", &[]),
            trace: None,
        })
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, RuntimeError::ImageNotPresent(_)));
}

#[actix_rt::test]
async fn a_server_runs_until_stopped_and_exits_zero_on_sigterm() {
    let rt = runtime();
    let (tx, mut rx) = mpsc::unbounded_channel();
    rt.send(SubscribeEvents(Collector(tx).start().recipient()))
        .await
        .unwrap();
    let sb = sandbox(&rt, "web").await;
    let id = run(&rt, &sb.id, container("nginx", "nginx:1.27", &[])).await;
    assert_eq!(next_event(&mut rx).await.kind, ContainerEventType::Created);
    assert_eq!(next_event(&mut rx).await.kind, ContainerEventType::Started);
    let running = status(&rt, &id).await;
    assert_eq!(running.state, ContainerState::Running);
    assert_eq!(running.image, "docker.io/library/nginx:1.27");
    assert!(running.started_at.is_some());

    rt.send(StopContainer {
        id: id.clone(),
        timeout: Duration::from_secs(30),
        trace: None,
    })
    .await
    .unwrap()
    .unwrap();
    let stopped = next_event(&mut rx).await;
    assert_eq!(stopped.kind, ContainerEventType::Stopped);
    let exited = status(&rt, &id).await;
    assert_eq!(exited.state, ContainerState::Exited);
    assert_eq!(exited.exit_code, Some(0));
    assert_eq!(exited.reason, "Completed");
    let logs = rt
        .send(ContainerLogs { id: id.clone() })
        .await
        .unwrap()
        .unwrap();
    assert!(logs[0].starts_with("[kubeactor] started container nginx"));
    assert_eq!(
        logs.last().unwrap(),
        "[kubeactor] container exited with code 0"
    );
}

#[actix_rt::test]
async fn a_command_that_exits_non_zero_stops_with_its_code_and_output() {
    let rt = runtime();
    let (tx, mut rx) = mpsc::unbounded_channel();
    rt.send(SubscribeEvents(Collector(tx).start().recipient()))
        .await
        .unwrap();
    let sb = sandbox(&rt, "job").await;
    let id = run(
        &rt,
        &sb.id,
        container("crash", "busybox", &["sh", "-c", "echo starting; exit 3"]),
    )
    .await;
    loop {
        if next_event(&mut rx).await.kind == ContainerEventType::Stopped {
            break;
        }
    }
    let exited = status(&rt, &id).await;
    assert_eq!(exited.exit_code, Some(3));
    assert_eq!(exited.reason, "Error");
    let logs = rt.send(ContainerLogs { id }).await.unwrap().unwrap();
    assert_eq!(logs[1], "starting");
}

/// A shell ignores SIGTERM: it is killed (137) when the grace period ends, not before.
#[actix_rt::test]
async fn a_shell_ignores_sigterm_and_is_killed_after_the_grace_period() {
    let rt = runtime_with(100.0, RuntimeConfig::default());
    let sb = sandbox(&rt, "sleeper").await;
    let id = run(
        &rt,
        &sb.id,
        container("sleep", "busybox", &["sh", "-c", "sleep 3600"]),
    )
    .await;
    let started = std::time::Instant::now();
    rt.send(StopContainer {
        id: id.clone(),
        timeout: Duration::from_secs(5),
        trace: None,
    })
    .await
    .unwrap()
    .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(50),
        "5 simulated seconds at speed 100 is 50 ms"
    );
    let exited = status(&rt, &id).await;
    assert_eq!(exited.exit_code, Some(137));
}

#[actix_rt::test]
async fn exec_reads_the_containers_simulated_files() {
    let rt = runtime();
    let sb = sandbox(&rt, "probe").await;
    let id = run(
        &rt,
        &sb.id,
        container(
            "app",
            "busybox",
            &["sh", "-c", "touch /tmp/healthy; sleep infinity"],
        ),
    )
    .await;
    let exec = |cmd: &[&str]| {
        rt.send(ExecSync {
            id: id.clone(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: Duration::from_secs(1),
        })
    };
    assert_eq!(
        exec(&["cat", "/tmp/healthy"])
            .await
            .unwrap()
            .unwrap()
            .exit_code,
        0
    );
    assert_eq!(
        exec(&["cat", "/tmp/missing"])
            .await
            .unwrap()
            .unwrap()
            .exit_code,
        1
    );
    let slow = exec(&["sh", "-c", "sleep 10"]).await.unwrap().unwrap();
    assert_eq!(slow.exit_code, -1, "longer than the 1 s timeout");
}

#[actix_rt::test]
async fn removing_a_sandbox_kills_and_removes_its_containers() {
    let rt = runtime();
    let sb = sandbox(&rt, "gone").await;
    let id = run(&rt, &sb.id, container("nginx", "nginx:1.27", &[])).await;
    rt.send(RemovePodSandbox { id: sb.id.clone() })
        .await
        .unwrap()
        .unwrap();
    assert!(rt.send(GetContainerStatus { id }).await.unwrap().is_err());
    assert!(rt
        .send(ListContainers { pod_uid: None })
        .await
        .unwrap()
        .is_empty());
}
