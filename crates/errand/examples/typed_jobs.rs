//! Enqueue and work typed jobs in one program.
//!
//! `cargo run -p errand --example typed_jobs` keeps its jobs in a temporary SQLite file,
//! enqueues a few jobs of two kinds (one of which fails once and is retried),
//! works them, prints what happened, and shuts down gracefully.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use errand::core::store::{JobFilter, Scope};
use errand::{Errand, Handler, JobArgs, JobContext, JobError, NewJob, RetryPolicy};
use serde::{Deserialize, Serialize};

/// Resize an image (pretend).
#[derive(Serialize, Deserialize)]
struct Resize {
    image: String,
    width: u32,
}

impl JobArgs for Resize {
    const KIND: &'static str = "image.resize";

    fn options(job: &mut NewJob) {
        job.queue = Some("media".into());
    }
}

struct Resizer;

impl Handler<Resize> for Resizer {
    async fn perform(&self, ctx: &JobContext, args: Resize) -> Result<(), JobError> {
        ctx.progress(50.0, Some(format!("resizing {}", args.image)))
            .await?;
        ctx.set_result(&serde_json::json!({ "thumbnail": format!("{}@{}w", args.image, args.width) }))?;
        Ok(())
    }
}

/// Send an e-mail; the first attempt fails to show a retry.
#[derive(Serialize, Deserialize)]
struct Email {
    to: String,
}

impl JobArgs for Email {
    const KIND: &'static str = "email.send";
}

struct Mailer {
    attempts: Arc<AtomicU32>,
}

impl Handler<Email> for Mailer {
    async fn perform(&self, ctx: &JobContext, args: Email) -> Result<(), JobError> {
        if self.attempts.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(JobError::retryable("the mail server did not answer"));
        }
        if args.to.is_empty() {
            return Err(JobError::permanent("no recipient"));
        }
        println!("sent mail to {} (attempt {})", args.to, ctx.attempt());
        Ok(())
    }

    fn retry_policy(&self) -> Option<RetryPolicy> {
        Some(RetryPolicy::fixed(Duration::from_millis(200)))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("example.db").display());
    let errand = Errand::new(errand::open_store(&url).await?);
    let client = errand.client();

    client
        .enqueue_args(&Resize {
            image: "cat.png".into(),
            width: 128,
        })
        .await?;
    client
        .enqueue_args(&Resize {
            image: "dog.png".into(),
            width: 256,
        })
        .await?;
    client
        .enqueue_args(&Email {
            to: "ada@example.com".into(),
        })
        .await?;

    let worker = errand
        .worker()
        .queue("default", 4)
        .queue("media", 2)
        .register(Resizer)
        .register(Mailer {
            attempts: Arc::new(AtomicU32::new(0)),
        })
        .build()?;
    // The node runs the worker and the maintenance, which promotes the
    // retried e-mail when its backoff is over; a job whose worker dies
    // mid-attempt waits as long as a failed attempt of its kind would.
    let node = errand
        .node()
        .worker(worker)
        .maintenance(errand::MaintenanceConfig {
            interval: Duration::from_millis(50),
            ..Default::default()
        })
        .start()?;
    let worker = node.worker().expect("the node runs a worker");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while worker.stats().completed < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    node.shutdown().await;

    let page = client
        .jobs(&JobFilter {
            scope: Scope::All,
            ..Default::default()
        })
        .await?;
    for job in page.jobs.iter().rev() {
        println!(
            "job {} {:<13} {:<9} attempt {} result {}",
            job.id,
            job.kind,
            job.state,
            job.attempt,
            job.result.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}
