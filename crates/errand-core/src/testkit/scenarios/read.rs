//! `get_job` and `list_jobs`: tenant scopes, filters, pagination.

use std::sync::Arc;

use crate::job::{JobId, JobState, NewJob};
use crate::store::{JobFilter, Scope, Store};
use crate::testkit::support::*;

fn tenant(t: &str) -> Scope {
    Scope::Tenant(t.to_owned())
}

/// A tenant scope sees only that tenant's jobs; another tenant's job, a
/// job without a tenant and a job that does not exist are all `NotFound`
/// alike, so a caller cannot tell them apart. `Scope::All` sees every job.
pub async fn get_job_hides_other_tenants_jobs(store: Arc<dyn Store>) {
    let s = &*store;
    let now = t0();
    let acme = add(s, NewJob::new("k", "{}").tenant("acme"), now).await;
    let globex = add(s, NewJob::new("k", "{}").tenant("globex"), now).await;
    let nobody = add(s, NewJob::new("k", "{}"), now).await;
    let missing = JobId(acme.0.max(globex.0).max(nobody.0) + 1_000_000);

    let job = ok("get_job", s.get_job(acme, &tenant("acme")).await);
    assert_eq!(job.tenant.as_deref(), Some("acme"));
    for id in [globex, nobody, missing] {
        assert_not_found("get_job in scope acme", id, s.get_job(id, &tenant("acme")).await);
    }
    // Tenant ids are compared exactly.
    assert_not_found(
        "get_job in scope ACME",
        acme,
        s.get_job(acme, &tenant("ACME")).await,
    );
    for id in [acme, globex, nobody] {
        ok("get_job in scope All", s.get_job(id, &Scope::All).await);
    }
    assert_not_found(
        "get_job of a missing id",
        missing,
        s.get_job(missing, &Scope::All).await,
    );
}

/// `list_jobs` filters by any of several states, by queue, by kind and by
/// tenant, all combined with AND and confined to the scope; results are
/// newest first.
pub async fn list_jobs_filters_by_state_queue_kind_and_tenant(store: Arc<dyn Store>) {
    let s = &*store;
    let now = at(0);
    let mk = |q: &str, k: &str, t: Option<&str>, priority: i32| {
        let j = NewJob::new(k, "{}").queue(q).priority(priority);
        match t {
            Some(t) => j.tenant(t),
            None => j,
        }
    };
    let ids: Vec<JobId> = insert(
        s,
        vec![
            mk("mail", "send", Some("acme"), 100),             // 0 available
            mk("mail", "send", Some("globex"), 1),             // 1 running
            mk("mail", "bounce", Some("acme"), 0),             // 2 completed
            mk("reports", "build", Some("acme"), 100),         // 3 available
            mk("reports", "build", None, 100).run_at(at(100)), // 4 scheduled
            mk("reports", "send", Some("globex"), 100),        // 5 available
        ],
        now,
    )
    .await
    .iter()
    .map(|i| i.id)
    .collect();
    run_to_completion(s, "mail", ids[2], at(1)).await;
    claim_id(s, "mail", ids[1], at(2)).await;
    let want = [
        JobState::Available,
        JobState::Running,
        JobState::Completed,
        JobState::Available,
        JobState::Scheduled,
        JobState::Available,
    ];
    for (i, w) in want.iter().enumerate() {
        assert_eq!(state_of(s, ids[i]).await, *w, "setup: job {i}");
    }

    let ids = &ids[..];
    let check = |filter: JobFilter, want: Vec<usize>, what: &'static str| async move {
        let mut want: Vec<JobId> = want.into_iter().map(|i| ids[i]).collect();
        want.sort_by(|a, b| b.cmp(a));
        let got = list_all(s, &filter).await;
        assert_eq!(got, want, "list_jobs {what}: {filter:?}");
    };
    check(JobFilter::default(), vec![0, 1, 2, 3, 4, 5], "everything").await;
    check(
        JobFilter {
            states: vec![JobState::Available],
            ..JobFilter::default()
        },
        vec![0, 3, 5],
        "available",
    )
    .await;
    check(
        JobFilter {
            states: vec![JobState::Completed, JobState::Running],
            ..JobFilter::default()
        },
        vec![1, 2],
        "completed or running",
    )
    .await;
    check(
        JobFilter {
            queue: Some("reports".into()),
            ..JobFilter::default()
        },
        vec![3, 4, 5],
        "queue reports",
    )
    .await;
    check(
        JobFilter {
            kind: Some("send".into()),
            ..JobFilter::default()
        },
        vec![0, 1, 5],
        "kind send",
    )
    .await;
    check(
        JobFilter {
            tenant: Some("acme".into()),
            ..JobFilter::default()
        },
        vec![0, 2, 3],
        "tenant acme",
    )
    .await;
    check(
        JobFilter {
            queue: Some("mail".into()),
            kind: Some("send".into()),
            tenant: Some("globex".into()),
            ..JobFilter::default()
        },
        vec![1],
        "mail/send/globex",
    )
    .await;
    check(
        JobFilter {
            scope: tenant("globex"),
            ..JobFilter::default()
        },
        vec![1, 5],
        "scope globex",
    )
    .await;
    check(
        JobFilter {
            scope: tenant("globex"),
            tenant: Some("acme".into()),
            ..JobFilter::default()
        },
        vec![],
        "scope globex asking for tenant acme",
    )
    .await;
    check(
        JobFilter {
            scope: tenant("acme"),
            queue: Some("mail".into()),
            ..JobFilter::default()
        },
        vec![0, 2],
        "scope acme, queue mail",
    )
    .await;
    check(
        JobFilter {
            queue: Some("nonexistent".into()),
            ..JobFilter::default()
        },
        vec![],
        "unknown queue",
    )
    .await;
}

/// Following `next_cursor` from page to page visits every matching job
/// exactly once, newest (highest id) first; the last page has no cursor,
/// even when it is full; `limit: 0` means 50.
pub async fn list_jobs_pagination_visits_every_job_once_newest_first(store: Arc<dyn Store>) {
    let s = &*store;
    let mut ids: Vec<JobId> = Vec::new();
    for i in 0..23 {
        let t = if i % 3 == 0 { "acme" } else { "globex" };
        ids.push(add(s, NewJob::new("k", "{}").tenant(t), at(i)).await);
    }
    let mut newest_first = ids.clone();
    newest_first.reverse();

    let page = |limit| JobFilter {
        limit,
        ..JobFilter::default()
    };
    assert_eq!(list_all(s, &page(5)).await, newest_first, "pages of 5");
    assert_eq!(list_all(s, &page(1)).await, newest_first, "pages of 1");
    let first = ok("list_jobs", s.list_jobs(&page(5)).await);
    assert_eq!(first.jobs.len(), 5);
    assert_eq!(
        first.next_cursor,
        Some(newest_first[4]),
        "the cursor is the page's last id"
    );

    let all = ok("list_jobs", s.list_jobs(&page(0)).await);
    assert_eq!(all.jobs.len(), 23, "limit 0 means 50");
    assert_eq!(all.next_cursor, None, "one page holds everything: no cursor");

    // 8 acme jobs in pages of 4: the second page is full and last.
    let acme = JobFilter {
        scope: tenant("acme"),
        limit: 4,
        ..JobFilter::default()
    };
    let want: Vec<JobId> = newest_first
        .iter()
        .copied()
        .filter(|id| id_index(&ids, *id).is_multiple_of(3))
        .collect();
    assert_eq!(want.len(), 8);
    let p1 = ok("list_jobs", s.list_jobs(&acme).await);
    let p2 = ok(
        "list_jobs",
        s.list_jobs(&JobFilter {
            before_id: p1.next_cursor,
            ..acme.clone()
        })
        .await,
    );
    let got: Vec<JobId> = p1.jobs.iter().chain(&p2.jobs).map(|j| j.id).collect();
    assert_eq!(got, want, "acme's jobs over two pages");
    assert!(p1.next_cursor.is_some(), "the first of two pages has a cursor");
    assert_eq!(p2.next_cursor, None, "a full last page has no cursor");

    // A cursor from a job that is not in the filter still pages by id.
    let mid = JobFilter {
        before_id: Some(newest_first[10]),
        limit: 100,
        ..JobFilter::default()
    };
    assert_eq!(
        list_all(s, &mid).await,
        newest_first[11..].to_vec(),
        "before_id is exclusive"
    );
}

fn id_index(ids: &[JobId], id: JobId) -> usize {
    ids.iter().position(|i| *i == id).expect("known id")
}

/// A page is capped at 1000 jobs however large the requested limit.
pub async fn list_jobs_caps_a_page_at_1000(store: Arc<dyn Store>) {
    let s = &*store;
    insert(s, (0..1001).map(|_| NewJob::new("k", "{}")).collect(), at(0)).await;
    let page = ok(
        "list_jobs",
        s.list_jobs(&JobFilter {
            limit: 5000,
            ..JobFilter::default()
        })
        .await,
    );
    assert_eq!(page.jobs.len(), 1000, "page size is capped at 1000");
    assert!(page.next_cursor.is_some(), "one job is left for the next page");
}
