use serde_json::json;

use errand_core::{JobState, NewJob};
use errand_engine::executor::command::{CommandExecutor, KIND};

use crate::harness::{env, fast_config, wait_for};

async fn run(args: serde_json::Value, want: JobState) -> errand_core::Job {
    let env = env().await;
    let running = env
        .errand
        .worker()
        .queue("default", 2)
        .executor(
            KIND,
            CommandExecutor {
                permanent_exit_codes: vec![64],
                ..CommandExecutor::default()
            },
        )
        .config(fast_config())
        .build()
        .unwrap()
        .start();
    let id = env
        .errand
        .client()
        .enqueue(NewJob::new(KIND, args.to_string()))
        .await
        .unwrap()
        .id;
    let job = wait_for(&env, id, want).await;
    running.shutdown().await;
    job
}

#[tokio::test]
async fn argv_runs_without_a_shell_and_captures_output() {
    let job = run(json!({"argv": ["echo", "hello $HOME"]}), JobState::Completed).await;
    let result: serde_json::Value = serde_json::from_str(job.result.as_deref().unwrap()).unwrap();
    assert_eq!(result["exit_code"], 0);
    assert_eq!(result["stdout"], "hello $HOME\n", "no shell expansion");
}

#[tokio::test]
async fn shell_is_used_only_when_asked_for() {
    let job = run(
        json!({"shell": "echo $((1+2)) | tr 3 x", "env": {"A": "b"}}),
        JobState::Completed,
    )
    .await;
    let result: serde_json::Value = serde_json::from_str(job.result.as_deref().unwrap()).unwrap();
    assert_eq!(result["stdout"], "x\n");
}

#[tokio::test]
async fn non_zero_exit_is_retryable_with_stderr() {
    let job = run(json!({"shell": "echo oops >&2; exit 3"}), JobState::Retryable).await;
    assert_eq!(job.errors[0].message, "\"/bin/sh\" exited with code 3: oops");
}

#[tokio::test]
async fn permanent_exit_codes_discard() {
    let job = run(json!({"argv": ["sh", "-c", "exit 64"]}), JobState::Discarded).await;
    assert!(job.errors[0].message.contains("code 64"));
    let job = run(
        json!({"argv": ["sh", "-c", "exit 9"], "permanent_exit_codes": [9]}),
        JobState::Discarded,
    )
    .await;
    assert!(job.errors[0].message.contains("code 9"));
}

/// Bad args are refused at enqueue, naming the field; args that reach a
/// worker anyway (written by an older producer) discard the job at once.
#[tokio::test]
async fn bad_args_are_refused_at_enqueue_and_discarded_if_stored() {
    let env = env().await;
    let err = env
        .errand
        .client()
        .enqueue(NewJob::new(KIND, json!({"argv": []}).to_string()))
        .await
        .unwrap_err();
    let errand_engine::EnqueueError::Invalid(v) = err else {
        panic!("not a validation error: {err:?}");
    };
    assert_eq!((v.field, v.code.as_str()), ("args.argv", "command_args_invalid"));

    let running = env
        .errand
        .worker()
        .queue("default", 2)
        .executor(KIND, CommandExecutor::default())
        .config(fast_config())
        .build()
        .unwrap()
        .start();
    let now = env.errand.clock().now();
    let valid = errand_core::validate::validate(
        NewJob::new(KIND, json!({"argv": []}).to_string()),
        &errand_core::validate::Limits::default(),
        now,
    )
    .unwrap();
    let id = env.errand.store().insert_jobs(vec![valid], now).await.unwrap()[0].id;
    let job = wait_for(&env, id, JobState::Discarded).await;
    assert!(
        job.errors[0].message.contains("argv"),
        "{}",
        job.errors[0].message
    );
    running.shutdown().await;
}

#[tokio::test]
async fn output_is_cut_to_the_bound() {
    let job = run(
        json!({"shell": "head -c 200000 /dev/zero | tr '\\0' x"}),
        JobState::Completed,
    )
    .await;
    let result: serde_json::Value = serde_json::from_str(job.result.as_deref().unwrap()).unwrap();
    assert_eq!(result["stdout"].as_str().unwrap().len(), 64 * 1024);
    assert_eq!(result["truncated"], true);
}
