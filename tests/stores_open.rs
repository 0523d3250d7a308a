//! `Stores::open`: one URL picks the backend, and the stores behind it keep what they are
//! given (SQLite across a reopen; PostgreSQL when `TIDINGS_POSTGRES_URL` names a server).

#[path = "support/postgres.rs"]
mod support;

use tidings::{
    contact::{Address, ContactId, NewContact},
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
