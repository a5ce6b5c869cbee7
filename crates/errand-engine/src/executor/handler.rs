//! Typed Rust handlers.

use std::future::Future;
use std::marker::PhantomData;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;

use errand_core::{NewJob, Outcome, RetryPolicy};

use super::{Executor, JobContext, JobError};

/// The arguments of a kind of job. The kind name is the registry key.
///
/// ```
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct SendEmail { to: String }
///
/// impl errand_engine::JobArgs for SendEmail {
///     const KIND: &'static str = "email.send";
///     fn options(job: &mut errand_core::NewJob) {
///         job.queue = Some("mailers".into());
///     }
/// }
/// ```
pub trait JobArgs: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The kind name.
    const KIND: &'static str;

    /// Default options for jobs of this kind (queue, priority, max attempts…),
    /// applied at enqueue before the caller's.
    fn options(_job: &mut NewJob) {}
}

/// Performs jobs whose args are `A`. A handler may hold shared state (a
/// connection pool, an HTTP client).
pub trait Handler<A: JobArgs>: Send + Sync + 'static {
    /// Runs one attempt. `Ok(())` completes the job (with the result set by
    /// [`JobContext::set_result`], if any); an error retries, discards,
    /// snoozes or cancels it.
    fn perform(&self, ctx: &JobContext, args: A) -> impl Future<Output = Result<(), JobError>> + Send;

    /// The longest an attempt may run when the job sets no timeout.
    fn timeout(&self) -> Option<Duration> {
        None
    }

    /// The retry policy of this kind when the job sets none.
    fn retry_policy(&self) -> Option<RetryPolicy> {
        None
    }
}

/// Adapts a [`Handler`] to an [`Executor`].
pub struct Typed<A, H> {
    handler: H,
    retry: Option<RetryPolicy>,
    _args: PhantomData<fn() -> A>,
}

impl<A: JobArgs, H: Handler<A>> Typed<A, H> {
    /// Wraps `handler`.
    pub fn new(handler: H) -> Self {
        let retry = handler.retry_policy();
        Typed {
            handler,
            retry,
            _args: PhantomData,
        }
    }
}

#[async_trait]
impl<A: JobArgs, H: Handler<A>> Executor for Typed<A, H> {
    async fn execute(&self, ctx: &JobContext, args: &str) -> Outcome {
        let args: A = match serde_json::from_str(args) {
            Ok(a) => a,
            Err(e) => {
                return Outcome::Permanent {
                    error: format!("cannot decode the args of a {} job: {e}", A::KIND),
                };
            }
        };
        match self.handler.perform(ctx, args).await {
            Ok(()) => Outcome::Completed {
                result: ctx.take_result(),
            },
            Err(e) => e.into_outcome(),
        }
    }

    fn timeout(&self) -> Option<Duration> {
        self.handler.timeout()
    }

    fn retry_policy(&self) -> Option<&RetryPolicy> {
        self.retry.as_ref()
    }
}
