//! Durable jobs: enqueued with the transaction that asks for them, leased with a
//! fencing token, steps recorded, completion idempotent, expired leases requeued.

use std::time::Duration;

use batos_runtime::jobs::{self, Completion, JobState, MAX_ATTEMPTS};
use batos_runtime::{Error, Runtime, Value};

use crate::common::fresh;

fn enqueue(rt: &Runtime, describe: &str) -> String {
    rt.image()
        .transact("ask for a job", |tx| {
            jobs::enqueue(tx, "test", describe, Value::Int(7), None).map(|(id, _)| id)
        })
        .expect("enqueued")
        .value
}

fn job(rt: &Runtime, id: &str) -> jobs::Job {
    rt.image().view(|tx| jobs::get(tx, id)).expect("the job")
}

#[test]
fn a_job_exists_only_if_the_transaction_that_asked_for_it_commits() {
    let (_dir, rt) = fresh();
    let refused = rt.image().transact("ask, then fail", |tx| {
        jobs::enqueue(tx, "test", "never", Value::Nil, None)?;
        Err::<(), _>(Error::BadInput("the send failed".into()))
    });
    assert!(refused.is_err());
    assert!(rt.image().view(|tx| jobs::list(tx, 10)).expect("list").is_empty());
    let id = enqueue(&rt, "kept");
    assert_eq!(id, "j1");
    let kept = job(&rt, "j1");
    assert_eq!((kept.state, kept.attempt, kept.payload), (JobState::Queued, 0, Value::Int(7)));
}

#[test]
fn a_lease_is_a_fencing_token_and_a_stale_attempt_is_refused() {
    let (_dir, rt) = fresh();
    let id = enqueue(&rt, "fenced");
    let first = jobs::lease(&rt, &["test"], "a", Duration::ZERO).expect("lease").expect("a job");
    assert_eq!((first.job.as_str(), first.attempt), (id.as_str(), 1));
    assert_eq!(
        jobs::lease(&rt, &["other"], "b", Duration::ZERO).expect("lease"),
        None,
        "kinds filter"
    );
    // The first holder's lease (zero long) runs out within the millisecond: the job
    // goes to another.
    std::thread::sleep(Duration::from_millis(2));
    let second =
        jobs::lease(&rt, &["test"], "b", Duration::from_secs(60)).expect("lease").expect("again");
    assert_eq!(second.attempt, 2);
    for refused in [
        jobs::record_step(&rt, &first, "step", &Value::Int(1)),
        jobs::complete(&rt, &first, &Value::Int(1)).map(|_| ()),
        jobs::renew(&rt, &first, Duration::from_secs(60)).map(|_| ()),
    ] {
        match refused {
            Err(Error::StaleAttempt { attempt: 1, current: 2, .. }) => {}
            other => panic!("the stale holder is fenced off: {other:?}"),
        }
    }
    assert_eq!(
        jobs::complete(&rt, &second, &Value::Int(2)).expect("complete"),
        Completion::Completed
    );
    let done = job(&rt, &id);
    assert_eq!(
        (done.state, done.result, done.completed_by),
        (JobState::Completed, Value::Int(2), Some(2))
    );
}

#[test]
fn completing_twice_under_one_attempt_writes_nothing_the_second_time() {
    let (_dir, rt) = fresh();
    enqueue(&rt, "twice");
    let lease =
        jobs::lease(&rt, &["test"], "a", Duration::from_secs(60)).expect("lease").expect("job");
    assert_eq!(jobs::complete(&rt, &lease, &Value::Int(1)).expect("once"), Completion::Completed);
    let after_first = rt.image().last_tx();
    assert_eq!(
        jobs::complete(&rt, &lease, &Value::Int(99)).expect("again"),
        Completion::AlreadyCompleted(Value::Int(1))
    );
    assert_eq!(rt.image().last_tx(), after_first, "no transaction committed");
    assert_eq!(job(&rt, &lease.job).result, Value::Int(1));
    assert!(jobs::lease(&rt, &["test"], "b", Duration::from_secs(60)).expect("lease").is_none());
}

#[test]
fn steps_are_kept_for_the_next_attempt() {
    let (_dir, rt) = fresh();
    enqueue(&rt, "resumable");
    let first = jobs::lease(&rt, &["test"], "kernel:1", Duration::from_secs(600))
        .expect("lease")
        .expect("job");
    jobs::record_step(&rt, &first, "method", &Value::Text("synthesised".into())).expect("step");
    // The holder died; a new process requeues what it held, whatever the deadline.
    assert_eq!(jobs::requeue_held_by(&rt, "kernel:").expect("requeue"), vec![first.job.clone()]);
    assert_eq!(job(&rt, &first.job).state, JobState::Queued);
    let second = jobs::lease(&rt, &["test"], "kernel:2", Duration::from_secs(600))
        .expect("lease")
        .expect("job");
    assert_eq!(second.attempt, 2);
    assert_eq!(second.steps.get("method"), Some(&Value::Text("synthesised".into())));
}

#[test]
fn expired_leases_return_to_the_queue_and_live_ones_stay() {
    let (_dir, rt) = fresh();
    let short = enqueue(&rt, "short");
    let long = enqueue(&rt, "long");
    let a = jobs::lease(&rt, &["test"], "a", Duration::ZERO).expect("lease").expect("job");
    let b =
        jobs::lease(&rt, &["test"], "b", Duration::from_secs(600)).expect("lease").expect("job");
    assert_eq!((a.job.as_str(), b.job.as_str()), (short.as_str(), long.as_str()));
    std::thread::sleep(Duration::from_millis(2)); // let the zero-length lease's millisecond pass
    assert_eq!(jobs::requeue_expired(&rt).expect("requeue"), vec![short.clone()]);
    assert_eq!(job(&rt, &short).state, JobState::Queued);
    assert_eq!(job(&rt, &long).state, JobState::Leased);
}

#[test]
fn a_job_that_keeps_losing_its_holder_fails_after_the_last_attempt() {
    let (_dir, rt) = fresh();
    let id = enqueue(&rt, "doomed");
    for attempt in 1..=MAX_ATTEMPTS {
        let lease = jobs::lease(&rt, &["test"], "k", Duration::from_secs(600))
            .expect("lease")
            .expect("job");
        assert_eq!(lease.attempt, attempt);
        jobs::fail(&rt, &lease, "the worker died", true).expect("recorded");
    }
    assert_eq!(jobs::lease(&rt, &["test"], "k", Duration::from_secs(600)).expect("lease"), None);
    let failed = job(&rt, &id);
    assert_eq!(failed.state, JobState::Failed);
    assert!(failed.error.as_deref().is_some_and(|e| e.contains("worker died")), "{failed:?}");
}

#[test]
fn a_failure_without_retry_is_final() {
    let (_dir, rt) = fresh();
    let id = enqueue(&rt, "wrong");
    let lease =
        jobs::lease(&rt, &["test"], "k", Duration::from_secs(600)).expect("lease").expect("job");
    jobs::fail(&rt, &lease, "no method could be proven", false).expect("recorded");
    assert_eq!(job(&rt, &id).state, JobState::Failed);
    assert!(
        matches!(
            jobs::complete(&rt, &lease, &Value::Nil),
            Ok(Completion::AlreadyCompleted(Value::Nil))
        ),
        "the attempt that failed it may repeat itself harmlessly"
    );
}
