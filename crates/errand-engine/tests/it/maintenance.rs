use std::sync::Arc;
use std::time::Duration;

use errand_core::store::ClaimRequest;
use errand_core::{Clock, JobState, ManualClock, NewJob, RetryPolicy, Scope, Timestamp};
use errand_engine::{Errand, MaintenanceConfig, QueueConfig, QueueRetention, WorkerConfig};

use crate::harness::env;

fn clocked(errand: &Errand) -> (Errand, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(Timestamp::from_second(1_800_000_000).unwrap()));
    (errand.clone().with_clock(clock.clone()), clock)
}

#[tokio::test]
async fn rescue_promote_and_prune_in_one_pass_each() {
    let env = env().await;
    let (errand, clock) = clocked(&env.errand);
    let client = errand.client();
    let store = errand.store().clone();
    let a = client.enqueue(NewJob::new("k", "{}")).await.unwrap().id;
    let later = client
        .enqueue(NewJob::new("k", "{}").delay(Duration::from_secs(60)))
        .await
        .unwrap()
        .id;
    let claimed = store
        .claim_available(ClaimRequest {
            queue: "default".into(),
            limit: 10,
            owner: "dead-worker".into(),
            lease_for: Duration::from_secs(30),
            now: clock.now(),
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let mut m = errand.maintenance(MaintenanceConfig {
        retention: Duration::from_secs(3600),
        ..MaintenanceConfig::default()
    });
    let r = m.tick().await.unwrap();
    assert!(r.leader);
    assert_eq!(r.rescued, 0, "the lease has not lapsed yet");
    clock.advance(Duration::from_secs(61));
    let r = m.tick().await.unwrap();
    assert_eq!(r.rescued, 1);
    assert_eq!(r.promoted_queues, vec!["default".to_owned()]);
    let job = store.get_job(a, &Scope::All).await.unwrap();
    assert_eq!(job.state, JobState::Retryable);
    assert!(job.errors[0].message.contains("dead-worker"));
    assert_eq!(
        store.get_job(later, &Scope::All).await.unwrap().state,
        JobState::Available
    );
    // Cancel `later`, then prune it once retention passes.
    client.cancel(later, &Scope::All).await.unwrap();
    clock.advance(Duration::from_secs(3601 + 60));
    let r = m.tick().await.unwrap();
    assert_eq!(r.pruned, 1);
    assert!(store.get_job(later, &Scope::All).await.is_err());
}

#[tokio::test]
async fn only_one_process_leads_and_a_dead_leader_is_replaced() {
    let env = env().await;
    let (errand, clock) = clocked(&env.errand);
    let cfg = MaintenanceConfig {
        leader_ttl: Duration::from_secs(15),
        queue_retention: vec![QueueRetention {
            queue: "x".into(),
            keep: Duration::from_secs(1),
        }],
        ..MaintenanceConfig::default()
    };
    let mut a = errand.maintenance(cfg.clone());
    let mut b = errand.maintenance(cfg);
    assert!(a.tick().await.unwrap().leader);
    assert!(!b.tick().await.unwrap().leader);
    clock.advance(Duration::from_secs(10));
    assert!(a.tick().await.unwrap().leader, "renewal keeps it");
    clock.advance(Duration::from_secs(16));
    assert!(b.tick().await.unwrap().leader, "a stopped renewing");
    assert!(!a.tick().await.unwrap().leader);
}

#[tokio::test]
async fn expired_jobs_are_never_run() {
    let env = env().await;
    let (errand, clock) = clocked(&env.errand);
    let id = errand
        .client()
        .enqueue(NewJob::new("k", "{}").expires_in(Duration::from_secs(5)))
        .await
        .unwrap()
        .id;
    clock.advance(Duration::from_secs(6));
    let claimed = errand
        .store()
        .claim_available(ClaimRequest {
            queue: "default".into(),
            limit: 10,
            owner: "w".into(),
            lease_for: Duration::from_secs(30),
            now: clock.now(),
        })
        .await
        .unwrap();
    assert!(claimed.is_empty());
    let r = errand
        .maintenance(MaintenanceConfig::default())
        .tick()
        .await
        .unwrap();
    assert_eq!(r.expired, 1);
    assert_eq!(
        errand.store().get_job(id, &Scope::All).await.unwrap().state,
        JobState::Expired
    );
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Patient {}

impl errand_engine::JobArgs for Patient {
    const KIND: &'static str = "patient";
}

struct PatientHandler;

impl errand_engine::Handler<Patient> for PatientHandler {
    async fn perform(
        &self,
        _ctx: &errand_engine::JobContext,
        _args: Patient,
    ) -> Result<(), errand_engine::JobError> {
        Ok(())
    }

    fn retry_policy(&self) -> Option<RetryPolicy> {
        Some(RetryPolicy::fixed(Duration::from_secs(900)))
    }
}

/// A job whose worker died mid-attempt waits as long as a failed attempt
/// would have on that worker: its kind's policy, else its queue's, else the
/// worker's default (before, the rescuer knew only the job's own policy and
/// its own default).
#[tokio::test]
async fn rescued_jobs_wait_as_the_worker_would_have_them_wait() {
    let env = env().await;
    let (errand, clock) = clocked(&env.errand);
    let secs = Duration::from_secs;
    let mut slow = QueueConfig::new("slow", 2);
    slow.retry = Some(RetryPolicy::fixed(secs(300)));
    let worker = errand
        .worker()
        .queue_config(slow)
        .queue("default", 2)
        .register(PatientHandler)
        .config(WorkerConfig {
            default_retry: RetryPolicy::fixed(secs(20)),
            ..WorkerConfig::default()
        })
        .build()
        .unwrap();
    let policies = worker.retry_policies();
    assert_eq!(
        policies.kinds.get("patient"),
        Some(&RetryPolicy::fixed(secs(900)))
    );
    assert_eq!(policies.queues.get("slow"), Some(&RetryPolicy::fixed(secs(300))));
    assert_eq!(policies.queues.len(), 1, "a queue without a policy adds none");
    assert_eq!(policies.default, RetryPolicy::fixed(secs(20)));
    // Starting the worker registers its policies with the runtime, whose
    // maintenance then rescues with them: nothing to hand over by hand.
    worker.start().shutdown().await;
    assert_eq!(errand.retry_policies(), policies);

    let client = errand.client();
    let store = errand.store().clone();
    let mut expected = Vec::new();
    for (kind, queue, wait) in [
        ("patient", "slow", 900),
        ("plain", "slow", 300),
        ("plain", "default", 20),
    ] {
        let id = client
            .enqueue(NewJob::new(kind, "{}").queue(queue))
            .await
            .unwrap()
            .id;
        let claimed = store
            .claim_available(ClaimRequest {
                queue: queue.into(),
                limit: 1,
                owner: "dead-worker".into(),
                lease_for: secs(30),
                now: clock.now(),
            })
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        expected.push((id, wait));
    }
    let mut m = errand.maintenance(MaintenanceConfig::default());
    clock.advance(secs(31));
    let r = m.tick().await.unwrap();
    assert_eq!(r.rescued, 3);
    for (id, wait) in expected {
        let job = store.get_job(id, &Scope::All).await.unwrap();
        assert_eq!(job.state, JobState::Retryable, "job {id}");
        assert_eq!(
            job.run_at,
            errand_core::clock::add(clock.now(), secs(wait)),
            "job {id}"
        );
    }
}
