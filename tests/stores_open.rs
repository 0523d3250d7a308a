//! `Stores::open`: one URL picks the backend, and the stores behind it keep what they are
//! given (SQLite across a reopen; PostgreSQL when `TIDINGS_POSTGRES_URL` names a server),
//! the Messenger Page stores of both among them.

#[path = "support/postgres.rs"]
mod support;

use tidings::{
    contact::{Address, ContactId, NewContact},
    messenger::{PageAccessToken, PageConfig, PageResolver},
    store::{OpenError, Stores},
};

async fn keeps_a_contact(stores: &Stores) -> ContactId {
    let address = Address::messenger("104812345678901", "7001").unwrap();
    let mut ann = NewContact::default();
    ann.first_name = Some("Ann".into());
    ann.addresses.push(address.clone());
    let created = stores.directory.create(ann).await.unwrap();
    let found = stores.directory.find_by_address(&address).await.unwrap();
    assert_eq!(found.map(|c| c.id), Some(created.id.clone()));
    created.id
}

#[tokio::test]
async fn memory_urls_open_fresh_in_memory_stores() {
    let stores = Stores::open("memory:").await.unwrap();
    assert_eq!(stores.backend(), "memory");
    let id = keeps_a_contact(&stores).await;
    let other = Stores::open("memory:").await.unwrap();
    assert!(
        other.directory.get(&id).await.unwrap().is_none(),
        "each open is a store of its own"
    );
}

#[tokio::test]
async fn a_file_path_opens_sqlite_and_the_file_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stores.db");
    let path = path.to_str().unwrap();
    let stores = Stores::open(path).await.unwrap();
    assert_eq!(stores.backend(), "sqlite");
    assert!(stores.sqlite().is_some() && stores.postgres().is_none());
    let id = keeps_a_contact(&stores).await;
    stores.close().await;
    let again = Stores::open(&format!("sqlite:{path}")).await.unwrap();
    assert!(again.directory.get(&id).await.unwrap().is_some());
    assert!(format!("{again:?}").contains("sqlite"));
}

#[tokio::test]
async fn a_postgres_url_opens_postgresql() {
    let Some(db) = support::TestDatabase::create("stores_open").await else {
        return;
    };
    let stores = Stores::open(&db.url).await.unwrap();
    assert_eq!(stores.backend(), "postgres");
    assert!(stores.postgres().is_some() && stores.sqlite().is_none());
    let id = keeps_a_contact(&stores).await;
    // The same database through the other spelling of the scheme.
    let url = db.url.replacen("postgres://", "postgresql://", 1);
    let again = Stores::open(&url).await.unwrap();
    assert!(again.directory.get(&id).await.unwrap().is_some());
    stores.close().await;
    again.close().await;
}

#[tokio::test]
async fn a_postgres_url_that_cannot_open_fails_without_its_password() {
    if std::env::var(support::URL_VAR).is_err() {
        eprintln!("skipped: {} is not set", support::URL_VAR);
        return;
    }
    // A database that does not exist, on the test server, with a password in the URL.
    let error = Stores::open("postgres://postgres:hunter2-secret@127.0.0.1:5432/no_such_db_here")
        .await
        .unwrap_err();
    assert!(matches!(error, OpenError::Postgres(_)), "{error:?}");
    for shown in [error.to_string(), format!("{error:?}")] {
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("127.0.0.1"), "{shown}");
    }
}

/// What `SqlitePages` and `PgPages` keep: each Page's token and username, replaced by a second
/// `put`, gone after `remove`, the token never in `Debug`.
async fn pages_keep_each_page(
    pages: &dyn PageResolver,
    put: impl AsyncFn(PageConfig),
    remove: impl AsyncFn(&str) -> bool,
) {
    assert!(pages.page(PAGE).await.unwrap().is_none());
    assert!(!pages.contains(PAGE).await.unwrap());
    put(PageConfig::new(PAGE, PageAccessToken::new("first-token"))).await;
    put(PageConfig::new(PAGE, PageAccessToken::new("second-token")).with_username("school")).await;
    put(PageConfig::new(
        "104812345678902",
        PageAccessToken::new("other-token"),
    ))
    .await;
    let page = pages.page(PAGE).await.unwrap().unwrap();
    assert_eq!(page.access_token.secret(), "second-token", "replaced");
    assert_eq!(page.username.as_deref(), Some("school"));
    assert!(pages.contains(PAGE).await.unwrap());
    assert!(!format!("{page:?}").contains("second-token"));
    assert!(remove(PAGE).await);
    assert!(!remove(PAGE).await, "removed once");
    assert!(!pages.contains(PAGE).await.unwrap());
    assert!(pages.contains("104812345678902").await.unwrap());
}

const PAGE: &str = "104812345678901";

#[tokio::test]
async fn sqlite_pages_keep_each_pages_token() {
    let dir = tempfile::tempdir().unwrap();
    let stores = Stores::open(dir.path().join("pages.db").to_str().unwrap())
        .await
        .unwrap();
    let pages = stores.sqlite().unwrap().pages();
    pages_keep_each_page(
        pages.as_ref(),
        async |p| pages.put(&p).await.unwrap(),
        async |id| pages.remove(id).await.unwrap(),
    )
    .await;
}

#[tokio::test]
async fn postgres_pages_keep_each_pages_token() {
    let Some(db) = support::TestDatabase::create("pages").await else {
        return;
    };
    let stores = Stores::open(&db.url).await.unwrap();
    let pages = stores.postgres().unwrap().pages();
    pages_keep_each_page(
        pages.as_ref(),
        async |p| pages.put(&p).await.unwrap(),
        async |id| pages.remove(id).await.unwrap(),
    )
    .await;
    stores.close().await;
}
