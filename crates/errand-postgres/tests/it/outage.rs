//! When PostgreSQL becomes unreachable, operations fail with a connect error
//! (so callers can back off and report not-ready) and work again once it
//! returns; nothing acknowledged is lost.

use errand_core::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use errand_core::store::JobFilter;
use errand_core::{JobState, NewJob, Outcome, Scope, StoreError};
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use errand_engine::{Errand, Executor, JobContext, Readiness, WorkerConfig};
use errand_postgres::PostgresConfig;

use crate::support;
use crate::{at, valid};

/// A TCP proxy in front of the server that can cut every connection.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
}

impl Proxy {
    async fn start(server: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, _) = watch::channel(0u64);
        let (up2, cut2) = (up.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    drop(client); // refused while down
                    continue;
                }
                let server = server.clone();
                let mut cut_rx = cut2.subscribe();
                tokio::spawn(async move {
                    let Ok(mut upstream) = TcpStream::connect(&server).await else {
                        return;
                    };
                    tokio::select! {
                        _ = copy_bidirectional(&mut client, &mut upstream) => {}
                        _ = cut_rx.changed() => {}
                    }
                });
            }
        });
        Proxy { port, up, cut }
    }

    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// A proxy in front of the test server, and the configuration of `config`'s
/// schema reached through it.
async fn proxied(config: &PostgresConfig) -> (Proxy, PostgresConfig) {
    let url: errand_postgres::sqlx::postgres::PgConnectOptions = support::url().unwrap().parse().unwrap();
    let proxy = Proxy::start(format!("{}:{}", url.get_host(), url.get_port())).await;
    let via_proxy = PostgresConfig::from_url(format!(
        "postgres://{}@127.0.0.1:{}/{}",
        url.get_username(),
        proxy.port,
        url.get_database().unwrap_or(url.get_username())
    ))
    .schema(config.schema_name())
    .acquire_timeout(Duration::from_millis(500))
    .poll_interval(Duration::from_millis(100));
    (proxy, via_proxy)
}

#[tokio::test]
async fn operations_fail_with_a_connect_error_while_the_server_is_unreachable_and_resume_after() {
    let Some(config) = support::config().await else {
        return;
    };
    let (proxy, via_proxy) = proxied(&config).await;
    let store = support::open(via_proxy).await;
    store.wait_for_change(Duration::from_millis(1)).await.unwrap();
    assert!(support::eventually(Duration::from_secs(10), || store.listening()).await);

    let first = store
        .insert_jobs(vec![valid(NewJob::new("k", "{}"), at(0))], at(0))
        .await
        .unwrap();

    proxy.down();
    let err = store
        .insert_jobs(vec![valid(NewJob::new("k", "{}"), at(1))], at(1))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Connect(_)), "{err:?}");
    assert!(!err.to_string().contains('\n'), "{err}");
    assert!(
        support::eventually(Duration::from_secs(5), || !store.listening()).await,
        "the listener should notice the outage"
    );
    // Waiting falls back to polling (every 100 ms here) rather than failing
    // or sleeping through its whole timeout.
    let start = std::time::Instant::now();
    store.wait_for_change(Duration::from_secs(30)).await.unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "waited {:?} while the listener was down",
        start.elapsed()
    );

    proxy.restore();
    // The pool reconnects on demand; the first calls may still fail while it does.
    let mut second = None;
    for _ in 0..50 {
        match store
            .insert_jobs(vec![valid(NewJob::new("k", "{}"), at(2))], at(2))
            .await
        {
            Ok(ins) => {
                second = Some(ins);
                break;
            }
            Err(StoreError::Connect(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(other) => panic!("unexpected error after the outage: {other:?}"),
        }
    }
    let second = second.expect("the store recovered after the server came back");
    assert!(
        support::eventually(Duration::from_secs(10), || store.listening()).await,
        "the listener should reconnect"
    );
    let page = store.list_jobs(&JobFilter::default()).await.unwrap();
    let ids: Vec<_> = page.jobs.iter().map(|j| j.id).collect();
    assert_eq!(
        ids,
        vec![second[0].id, first[0].id],
        "acknowledged jobs are kept, the refused one was never written"
    );
    support::drop_schema(config.schema_name()).await;
}

#[tokio::test]
async fn a_closed_store_refuses_work_as_closed() {
    let Some(store) = support::store().await else {
        return;
    };
    let schema = store.schema().to_owned();
    store.close().await;
    let err = store
        .insert_jobs(vec![valid(NewJob::new("k", "{}"), at(0))], at(0))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Closed), "{err:?}");
    let err = store.wait_for_change(Duration::from_secs(30)).await.unwrap_err();
    assert!(matches!(err, StoreError::Closed), "{err:?}");
    support::drop_schema(&schema).await;
}

/// Sleeps for the milliseconds its args give, then succeeds.
struct Sleep;

#[async_trait::async_trait]
impl Executor for Sleep {
    async fn execute(&self, _ctx: &JobContext, args: &str) -> Outcome {
        let ms: u64 = args.trim().parse().unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Outcome::Completed { result: None }
    }
}

/// The worker's side of an outage: jobs running when the server goes away
/// run to their end, the worker reports not-ready, their completions are
/// written once the server is back (each job ran once: attempt 1, no
/// error), and the worker is ready again and takes new jobs.
#[tokio::test]
async fn a_worker_keeps_its_running_jobs_through_an_outage_and_reports_not_ready() {
    let Some(config) = support::config().await else {
        return;
    };
    let (proxy, via_proxy) = proxied(&config).await;
    let store = support::open(via_proxy).await;
    let errand = Errand::new(Arc::new(store.clone()));
    let client = errand.client();
    let mut running = Vec::new();
    for _ in 0..3 {
        running.push(client.enqueue(NewJob::new("sleep", "1500")).await.unwrap().id);
    }
    let worker = errand
        .worker()
        .queue("default", 4)
        .executor("sleep", Sleep)
        .config(WorkerConfig {
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_millis(200),
            poll_interval: Duration::from_millis(100),
            ..WorkerConfig::default()
        })
        .build()
        .unwrap()
        .start();
    assert!(support::eventually(Duration::from_secs(10), || worker.stats().claimed == 3).await);
    assert_eq!(worker.readiness(), Readiness::Ready);

    proxy.down();
    assert!(
        support::eventually(Duration::from_secs(5), || worker.readiness() != Readiness::Ready).await,
        "the worker should report not-ready while the server is away"
    );
    let Readiness::NotReady { error, .. } = worker.readiness() else {
        unreachable!()
    };
    assert!(!error.is_empty() && !error.contains('\n'), "{error}");
    // The jobs finish meanwhile; their completions cannot be written yet.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(worker.stats().completed, 0);

    proxy.restore();
    assert!(
        support::eventually(Duration::from_secs(15), || worker.stats().completed == 3).await,
        "completions are written once the server is back: {:?}",
        worker.stats()
    );
    assert!(support::eventually(Duration::from_secs(5), || worker.readiness() == Readiness::Ready).await);
    for id in running {
        let job = store.get_job(id, &Scope::All).await.unwrap();
        assert_eq!(job.state, JobState::Completed, "job {id}");
        assert_eq!(job.attempt, 1, "job {id} ran once");
        assert!(job.errors.is_empty(), "job {id}: {:?}", job.errors);
    }
    let later = client.enqueue(NewJob::new("sleep", "0")).await.unwrap().id;
    assert!(support::eventually(Duration::from_secs(10), || worker.stats().completed == 4).await);
    assert_eq!(
        store.get_job(later, &Scope::All).await.unwrap().state,
        JobState::Completed
    );
    worker.shutdown().await;
    support::drop_schema(config.schema_name()).await;
}
