//! The producer and operator API.

use errand_core::store::{Inserted, JobFilter, JobPage, QueueStats, Scope};
use errand_core::validate::{self, ValidationError};
use errand_core::{ErrorCode, Job, JobId, JobState, NewJob, StoreError};

use crate::executor::JobArgs;
use crate::runtime::Errand;

/// Why an enqueue failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnqueueError {
    /// The job (or, in a batch, the job at `index`) breaks a rule; nothing was written.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The store failed; nothing was written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl EnqueueError {
    /// The stable code: the validation rule's, or the store error's.
    pub fn code(&self) -> ErrorCode {
        match self {
            EnqueueError::Invalid(v) => v.code,
            EnqueueError::Store(s) => s.code(),
        }
    }
}

/// Enqueues jobs and operates on them. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Client {
    rt: Errand,
}

impl Client {
    pub(crate) fn new(rt: Errand) -> Self {
        Client { rt }
    }

    /// Enqueues one job. A duplicate of a unique job returns the existing
    /// job's id with `duplicate: true`.
    pub async fn enqueue(&self, job: NewJob) -> Result<Inserted, EnqueueError> {
        let mut out = self.enqueue_many(vec![job]).await.map_err(|e| match e {
            // One job is not a batch: no "job #0" in its error.
            EnqueueError::Invalid(v) => EnqueueError::Invalid(ValidationError { index: None, ..v }),
            other => other,
        })?;
        Ok(out.remove(0))
    }

    /// Enqueues typed args as a job of their kind.
    pub async fn enqueue_args<A: JobArgs>(&self, args: &A) -> Result<Inserted, EnqueueError> {
        self.enqueue(new_job(args)?).await
    }

    /// Enqueues jobs all-or-nothing: one bad job rejects the batch and is named by its index.
    pub async fn enqueue_many(&self, jobs: Vec<NewJob>) -> Result<Vec<Inserted>, EnqueueError> {
        let now = self.rt.clock.now();
        let valid = validate::validate_batch(jobs, &self.rt.limits, now)?;
        self.rt.check_all_args(&valid)?;
        let mut queues: Vec<String> = Vec::new();
        for j in &valid {
            if j.run_at <= now && !queues.contains(&j.queue) {
                queues.push(j.queue.clone());
            }
        }
        let inserted = self.rt.store.insert_jobs(valid, now).await?;
        for q in &queues {
            self.rt.hub.wake(q);
        }
        Ok(inserted)
    }

    /// One job, if `scope` may see it.
    pub async fn job(&self, id: JobId, scope: &Scope) -> Result<Job, StoreError> {
        self.rt.store.get_job(id, scope).await
    }

    /// A page of jobs, newest first.
    pub async fn jobs(&self, filter: &JobFilter) -> Result<JobPage, StoreError> {
        self.rt.store.list_jobs(filter).await
    }

    /// Cancels a job. A running one is stopped by its worker as soon as the
    /// worker hears of it: at once in this process, within moments in
    /// another (see [`JobQueue::cancel_requests`](errand_core::JobQueue::cancel_requests)).
    pub async fn cancel(&self, id: JobId, scope: &Scope) -> Result<Job, StoreError> {
        let job = self.rt.store.cancel_job(id, scope, self.rt.clock.now()).await?;
        if job.state == JobState::Running {
            self.rt.hub.cancel_requested();
        }
        Ok(job)
    }

    /// Retries a discarded, cancelled, expired or waiting job now.
    pub async fn retry(&self, id: JobId, scope: &Scope) -> Result<Job, StoreError> {
        let job = self.rt.store.retry_job(id, scope, self.rt.clock.now()).await?;
        if job.state == JobState::Available {
            self.rt.hub.wake(&job.queue);
        }
        Ok(job)
    }

    /// Discards a job that has not started (scheduled, available,
    /// retryable): it becomes discarded at once, an error in its history
    /// saying an operator did it. A running job is refused: cancel it.
    pub async fn discard(&self, id: JobId, scope: &Scope) -> Result<Job, StoreError> {
        self.rt.store.discard_job(id, scope, self.rt.clock.now()).await
    }

    /// Pauses a queue: workers stop claiming from it; running jobs finish.
    /// It is created (paused) if new, so that it can be paused before its
    /// first job; [`Client::pause_known`] refuses an unknown queue instead.
    /// A queue is shared by every tenant: a tenant scope is
    /// [`StoreError::Forbidden`].
    pub async fn pause(&self, queue: &str, scope: &Scope) -> Result<(), EnqueueError> {
        self.set_paused(queue, true, true, scope).await
    }

    /// Pauses a queue that exists; an unknown one is
    /// [`StoreError::QueueNotFound`] (a typo does not create a queue).
    pub async fn pause_known(&self, queue: &str, scope: &Scope) -> Result<(), EnqueueError> {
        self.set_paused(queue, true, false, scope).await
    }

    async fn set_paused(
        &self,
        queue: &str,
        paused: bool,
        create: bool,
        scope: &Scope,
    ) -> Result<(), EnqueueError> {
        validate::queue_name("queue", queue)?;
        Ok(self
            .rt
            .store
            .set_queue_paused(queue, paused, create, scope, self.rt.clock.now())
            .await?)
    }

    /// Resumes a paused queue; an unknown one is [`StoreError::QueueNotFound`].
    pub async fn resume(&self, queue: &str, scope: &Scope) -> Result<(), EnqueueError> {
        self.set_paused(queue, false, false, scope).await?;
        self.rt.hub.wake(queue);
        Ok(())
    }

    /// Deletes a queue's waiting jobs (scheduled, available, retryable)
    /// that `scope` may see; running and finished jobs stay. Logged as a
    /// warning with the count: it is an operator's destructive action.
    pub async fn clear_queue(&self, queue: &str, scope: &Scope) -> Result<u64, EnqueueError> {
        validate::queue_name("queue", queue)?;
        let deleted = self.rt.store.clear_queue(queue, scope).await?;
        let tenant = match scope {
            Scope::All => "",
            Scope::Tenant(t) => t.as_str(),
        };
        tracing::warn!(
            queue,
            tenant,
            deleted,
            "queue cleared: its waiting jobs were deleted"
        );
        Ok(deleted)
    }

    /// Forgets a queue that holds no unfinished job (see
    /// [`Operator::remove_queue`](errand_core::Operator::remove_queue)).
    pub async fn remove_queue(&self, queue: &str, scope: &Scope) -> Result<(), EnqueueError> {
        validate::queue_name("queue", queue)?;
        self.rt.store.remove_queue(queue, scope).await?;
        tracing::warn!(queue, "queue removed");
        Ok(())
    }

    /// Every queue with its figures, as `scope` may see them.
    pub async fn queues(&self, scope: &Scope) -> Result<Vec<QueueStats>, StoreError> {
        self.rt.store.queue_stats(scope, self.rt.clock.now()).await
    }

    /// Every registered schedule `scope` may see, with its next and last
    /// fire times and the state of its last job.
    pub async fn schedules(&self, scope: &Scope) -> Result<Vec<errand_core::ScheduleState>, StoreError> {
        self.rt.store.list_schedules(scope).await
    }
}

/// A [`NewJob`] of `A`'s kind with `args` serialized.
pub(crate) fn new_job<A: JobArgs>(args: &A) -> Result<NewJob, EnqueueError> {
    let mut job = NewJob::from_args(A::KIND, args).map_err(|e| ValidationError {
        field: "args",
        code: ErrorCode::ArgsInvalidJson,
        message: format!("cannot be serialized: {e}"),
        index: None,
    })?;
    A::options(&mut job);
    Ok(job)
}
