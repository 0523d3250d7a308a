//! The SQLite stores on real files: what survives a restart, bad files and full or read-only
//! disks (each a typed error that loses nothing already written), schema versions, busy
//! writers, and two processes on one file.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
    time::Duration,
};

use tidings::{
    clock::Timestamp,
    contact::{Address, ContactId, NewContact},
    error::{DbFailure, StoreError},
    identity::Directory,
    newsletter::{CampaignId, Outbox, Recorded},
    process::{FlowId, InstanceId, ProcessInstance, ProcessStore},
    seen::SeenEvents,
    store::sqlite::{OpenError, SqliteOptions, SqliteStores, schema_version},
};

fn db_path(dir: &Path) -> String {
    dir.join("tidings.db").to_str().unwrap().to_owned()
}

fn failure(e: &StoreError) -> Option<DbFailure> {
    match e {
        StoreError::Database { failure, .. } => Some(*failure),
        _ => None,
    }
}

fn open_failure(e: &OpenError) -> Option<DbFailure> {
    match e {
        OpenError::Open { source, .. } => failure(source),
        _ => None,
    }
}

#[tokio::test]
async fn what_is_written_is_there_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let id = {
        let stores = SqliteStores::open(&path).await.unwrap();
        let ann = stores
            .directory()
            .create(
                NewContact::new()
                    .with_email("ann@example.org")
                    .with_address(Address::messenger("p", "1").unwrap()),
            )
            .await
            .unwrap();
        stores.close().await;
        ann.id
    };
    let stores = SqliteStores::open(&path).await.unwrap();
    let ann = stores.directory().get(&id).await.unwrap().unwrap();
    assert_eq!(ann.email.as_deref(), Some("ann@example.org"));
    assert_eq!(
        stores
            .directory()
            .find_by_address(&Address::messenger("p", "1").unwrap())
            .await
            .unwrap()
            .map(|c| c.id),
        Some(id)
    );
}

#[tokio::test]
async fn a_file_that_is_not_sqlite_is_refused_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let content = b"name,email\nann,ann@example.org\n".repeat(200);
    std::fs::write(&path, &content).unwrap();
    let e = SqliteStores::open(&path).await.unwrap_err();
    assert_eq!(open_failure(&e), Some(DbFailure::Corrupt), "{e:?}");
    assert!(e.to_string().contains("tidings.db"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), content);
}

#[tokio::test]
async fn a_newer_schema_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let stores = SqliteStores::open(&path).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', 1, x'00', 0)",
    )
    .execute(stores.pool())
    .await
    .unwrap();
    stores.close().await;
    let e = SqliteStores::open(&path).await.unwrap_err();
    match &e {
        OpenError::SchemaTooNew { database, code, .. } => {
            assert_eq!((*database, *code), (9999, schema_version()));
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    let text = e.to_string();
    assert!(
        text.contains("9999") && text.contains(&schema_version().to_string()),
        "{text}"
    );
}

#[tokio::test]
async fn a_location_is_shown_without_its_query_string() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", db_path(dir.path()));
    let stores = SqliteStores::open(&url).await.unwrap();
    let shown = format!("{stores:?} {:?}", SqliteOptions::new(&url));
    assert!(
        shown.contains("tidings.db") && !shown.contains("mode=rwc"),
        "{shown}"
    );
}

#[tokio::test]
async fn every_store_names_itself_and_its_file_in_debug_and_nothing_more() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", db_path(dir.path()));
    let stores = SqliteStores::open(&url).await.unwrap();
    let shown = [
        ("SqliteDirectory", format!("{:?}", stores.directory())),
        ("SqliteInbox", format!("{:?}", stores.inbox())),
        ("SqliteOutbox", format!("{:?}", stores.outbox())),
        ("SqliteProcessStore", format!("{:?}", stores.processes())),
        ("SqliteSeenEvents", format!("{:?}", stores.seen())),
        ("SqliteLastInbound", format!("{:?}", stores.last_inbound())),
        ("SqliteOptIns", format!("{:?}", stores.opt_ins())),
        (
            "SqliteThreadOwners",
            format!("{:?}", stores.thread_owners()),
        ),
        ("SqlitePages", format!("{:?}", stores.pages())),
    ];
    for (name, text) in shown {
        assert!(
            text.starts_with(name) && text.contains("tidings.db") && !text.contains("mode=rwc"),
            "{name}: {text}"
        );
    }
}

#[tokio::test]
async fn a_full_database_fails_typed_and_keeps_what_was_committed() {
    let dir = tempfile::tempdir().unwrap();
    let stores = SqliteStores::open_with(
        SqliteOptions::new(db_path(dir.path()))
            .max_page_count(64)
            .max_connections(2),
    )
    .await
    .unwrap();
    let directory = stores.directory();
    let mut created = Vec::new();
    let error = loop {
        let new = NewContact::new()
            .with_email(format!("user{}@example.org", created.len()))
            .with_field("bio", "x".repeat(2000));
        match directory.create(new).await {
            Ok(c) => created.push(c.id),
            Err(e) => break e,
        }
        assert!(created.len() < 10_000, "the page cap never took effect");
    };
    assert_eq!(failure(&error), Some(DbFailure::Full), "{error:?}");
    assert!(!error.is_retryable());
    assert!(!created.is_empty());
    for id in &created {
        assert!(directory.get(id).await.unwrap().is_some(), "lost {id}");
    }
    assert_eq!(directory.count().await.unwrap(), created.len() as u64);
    // A flow started on a full database says the disk is full, not "already running".
    let mut instance = ProcessInstance::new(
        InstanceId::new("full-1").unwrap(),
        FlowId::new("onboarding").unwrap(),
        1,
        created[0].clone(),
        "ask",
    );
    instance.history = (0..200)
        .map(|i| {
            tidings::process::StepRecord::new(
                format!("step-{i}-{}", "y".repeat(50)),
                Timestamp::from_secs(i),
            )
        })
        .collect();
    let refused = stores.processes().insert(&instance).await.unwrap_err();
    assert_eq!(failure(&refused), Some(DbFailure::Full), "{refused:?}");
    assert!(!refused.is_conflict(), "{refused:?}");
}

/// A tmpfs mounted for a test, unmounted when dropped. `None` where mounting is not allowed.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, options: &str) -> Option<Mount> {
        std::fs::create_dir_all(at).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Mount(at.to_owned()))
    }

    /// Remounts with `options`, waiting for the closing database connections (their worker
    /// threads let go of the files a moment after the pool is closed).
    async fn remount(&self, options: &str) {
        for _ in 0..100 {
            let status = Command::new("mount")
                .args(["-o", &format!("remount,{options}")])
                .arg(&self.0)
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap();
            if status.success() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("could not remount {} {options}", self.0.display());
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        // Lazy: connections of a pool being dropped may still hold the files for a moment.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test]
async fn a_full_disk_fails_typed_and_keeps_what_was_committed() {
    let dir = tempfile::tempdir().unwrap();
    let Some(_mount) = Mount::tmpfs(&dir.path().join("disk"), "size=512k") else {
        eprintln!(
            "skipped: mounting a tiny tmpfs needs root (CAP_SYS_ADMIN); the page-cap test covers SQLITE_FULL"
        );
        return;
    };
    let stores = SqliteStores::open(&db_path(&dir.path().join("disk")))
        .await
        .unwrap();
    let directory = stores.directory();
    let mut created = Vec::new();
    let error = loop {
        let new = NewContact::new().with_field("bio", "y".repeat(4000));
        match directory.create(new).await {
            Ok(c) => created.push(c.id),
            Err(e) => break e,
        }
        assert!(created.len() < 100_000);
    };
    assert!(
        matches!(failure(&error), Some(DbFailure::Full | DbFailure::Io)),
        "{error:?}"
    );
    for id in &created {
        assert!(directory.get(id).await.unwrap().is_some(), "lost {id}");
    }
}

#[tokio::test]
async fn a_read_only_directory_fails_typed_and_keeps_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk");
    let Some(mount) = Mount::tmpfs(&disk, "size=8m") else {
        eprintln!("skipped: mounting a tmpfs needs root (CAP_SYS_ADMIN)");
        return;
    };
    // A new database in a read-only directory cannot be created.
    mount.remount("ro").await;
    let e = SqliteStores::open(&db_path(&disk.join(".")))
        .await
        .unwrap_err();
    assert!(
        matches!(
            open_failure(&e),
            Some(DbFailure::CannotOpen | DbFailure::ReadOnly)
        ),
        "{e:?}"
    );
    // An existing one whose directory turns read-only is refused, and is intact afterwards.
    mount.remount("rw").await;
    let path = db_path(&disk);
    let stores = SqliteStores::open(&path).await.unwrap();
    let ann = stores
        .directory()
        .create(NewContact::new().with_email("ann@example.org"))
        .await
        .unwrap();
    stores.close().await;
    mount.remount("ro").await;
    match SqliteStores::open(&path).await {
        Err(e) => assert!(
            matches!(
                open_failure(&e),
                Some(DbFailure::CannotOpen | DbFailure::ReadOnly | DbFailure::Io)
            ),
            "{e:?}"
        ),
        Ok(stores) => {
            let e = stores
                .directory()
                .create(NewContact::new())
                .await
                .unwrap_err();
            assert_eq!(failure(&e), Some(DbFailure::ReadOnly), "{e:?}");
        }
    }
    mount.remount("rw").await;
    let stores = SqliteStores::open(&path).await.unwrap();
    assert!(stores.directory().get(&ann.id).await.unwrap().is_some());
}

#[tokio::test]
async fn a_writer_held_past_the_busy_timeout_is_a_retryable_busy_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let holder = SqliteStores::open(&path).await.unwrap();
    let stores =
        SqliteStores::open_with(SqliteOptions::new(&path).busy_timeout(Duration::from_millis(100)))
            .await
            .unwrap();
    let mut lock = holder.pool().begin_with("BEGIN IMMEDIATE").await.unwrap();
    sqlx::query("INSERT INTO id_counters (name, value) VALUES ('held', 1)")
        .execute(&mut *lock)
        .await
        .unwrap();
    let e = stores
        .seen()
        .mark_seen("k", Timestamp::from_secs(1), Duration::from_secs(60))
        .await
        .unwrap_err();
    assert_eq!(failure(&e), Some(DbFailure::Busy), "{e:?}");
    assert!(e.is_retryable());
    lock.rollback().await.unwrap();
    assert!(
        stores
            .seen()
            .mark_seen("k", Timestamp::from_secs(1), Duration::from_secs(60))
            .await
            .unwrap()
    );
}

// --- Two processes on one file ----------------------------------------------------------------

const CHILD_ENV: &str = "TIDINGS_SQLITE_RACE_CHILD";
const RECIPIENTS: usize = 1500;
const NEW_SENDERS: usize = 300;
const BUMPS: u64 = 150;

/// What one racing process did, printed on its stdout as one line.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Tally {
    claims_won: usize,
    marks_won: usize,
    contacts_created: usize,
    bumps: u64,
}

/// Runs in a child process (see [`two_processes_on_one_file_share_every_uniqueness`]); ignored
/// so that a plain test run does not run it on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by two_processes_on_one_file_share_every_uniqueness in a child process"]
async fn race_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let stores = SqliteStores::open(&path).await.unwrap();
    let mut tally = Tally::default();
    let campaign = CampaignId::new("race").unwrap();
    let outbox = stores.outbox();
    let seen = stores.seen();
    let directory = stores.directory();
    let processes = stores.processes();
    let instance = InstanceId::new("shared").unwrap();
    let now = Timestamp::from_secs(1_800_000_000);
    // Four tasks per process; each sweeps every key, so every key is contended.
    let mut tasks = Vec::new();
    for task in 0..4 {
        let (outbox, seen, directory, processes, campaign, instance) = (
            outbox.clone(),
            seen.clone(),
            directory.clone(),
            processes.clone(),
            campaign.clone(),
            instance.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut t = Tally::default();
            for i in 0..RECIPIENTS {
                let i = (i + task * 97) % RECIPIENTS;
                let contact = ContactId::new(format!("r{i}")).unwrap();
                if outbox.claim(&campaign, &contact, now).await.unwrap() == Recorded::New {
                    t.claims_won += 1;
                }
                if seen
                    .mark_seen(&format!("messenger:m{i}"), now, Duration::from_secs(3600))
                    .await
                    .unwrap()
                {
                    t.marks_won += 1;
                }
            }
            for i in 0..NEW_SENDERS {
                let address = Address::messenger("page", format!("new{i}")).unwrap();
                match directory
                    .create(NewContact::new().with_address(address))
                    .await
                {
                    Ok(_) => t.contacts_created += 1,
                    Err(e) if e.is_conflict() => {}
                    Err(e) => panic!("create: {e:?}"),
                }
            }
            for _ in 0..BUMPS / 4 {
                loop {
                    let mut current = processes.get(&instance).await.unwrap().unwrap();
                    let n = current.vars.get("n").and_then(|v| v.as_u64()).unwrap_or(0);
                    current.vars.insert("n".into(), (n + 1).into());
                    match processes.update(&current).await {
                        Ok(_) => break,
                        Err(e) if e.is_conflict() => continue,
                        Err(e) => panic!("update: {e:?}"),
                    }
                }
                t.bumps += 1;
            }
            t
        }));
    }
    for task in tasks {
        let t = task.await.unwrap();
        tally.claims_won += t.claims_won;
        tally.marks_won += t.marks_won;
        tally.contacts_created += t.contacts_created;
        tally.bumps += t.bumps;
    }
    println!("TALLY {}", serde_json::to_string(&tally).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_file_share_every_uniqueness() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let stores = SqliteStores::open(&path).await.unwrap();
    let instance = ProcessInstance::new(
        InstanceId::new("shared").unwrap(),
        FlowId::new("counter").unwrap(),
        1,
        ContactId::new("owner").unwrap(),
        "start",
    );
    stores.processes().insert(&instance).await.unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            Command::new(&exe)
                .args(["--exact", "race_child", "--ignored", "--nocapture"])
                .env(CHILD_ENV, &path)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut total = Tally::default();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "a racing process failed");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("TALLY "))
            .unwrap_or_else(|| panic!("no tally in {stdout}"));
        let t: Tally = serde_json::from_str(line).unwrap();
        total.claims_won += t.claims_won;
        total.marks_won += t.marks_won;
        total.contacts_created += t.contacts_created;
        total.bumps += t.bumps;
    }
    // Each recipient claimed once, each key new once, one contact per new sender, and no
    // compare-and-swap update lost, across 2 processes x 4 tasks.
    assert_eq!(total.claims_won, RECIPIENTS);
    assert_eq!(total.marks_won, RECIPIENTS);
    assert_eq!(total.contacts_created, NEW_SENDERS);
    assert_eq!(total.bumps, 2 * (BUMPS / 4) * 4);
    let stored = stores
        .processes()
        .get(&InstanceId::new("shared").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.revision, total.bumps);
    assert_eq!(
        stored.vars.get("n").and_then(|v| v.as_u64()),
        Some(total.bumps)
    );
    assert_eq!(
        stores.directory().count().await.unwrap(),
        NEW_SENDERS as u64
    );
    let outcomes = Arc::new(stores.outbox());
    let (records, pending) = outcomes
        .count(&CampaignId::new("race").unwrap())
        .await
        .unwrap();
    assert_eq!((records, pending), (RECIPIENTS as u64, RECIPIENTS as u64));
}
