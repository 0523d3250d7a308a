//! The e-mail transport against a real SMTP server on 127.0.0.1: aiosmtpd (aio-libs), started by
//! each test as a child process (`tests/fixtures/smtp_server.py` configures it: which
//! recipients it refuses, what it records). The server parses every accepted message with
//! Python's `email` package, so the checks read what the server saw, not what we meant to send.
//!
//! Needs Python 3 with aiosmtpd (`python3 -m pip install 'aiosmtpd>=1.4.6,<2'`; `.ci/run`
//! installs it when missing). `TIDINGS_TEST_PYTHON` names another interpreter.

use std::{
    io::{BufRead, BufReader, Read},
    path::PathBuf,
    process::{Child, ChildStdin, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use serde_json::Value;
use tempfile::TempDir;
use tidings::{
    clock::{Clock, ManualClock, Timestamp},
    contact::{Address, Channel, NewContact},
    email::{EmailTransport, EmailTransportBuilder, SmtpCredentials, TlsMode},
    identity::Directory,
    inbox::{DeliveryStatus, EntryContent, Inbox, Reply, Support},
    message::Message,
    store::memory::{MemoryDirectory, MemoryInbox},
    transport::{DeliveryError, DeliveryErrorKind, Intent, SendContext, Transport},
};

const USER: &str = "mailer";
const PASSWORD: &str = "correct horse battery staple";
const FROM: &str = "courses@school.example";

/// One aiosmtpd process with its four listeners; killed on drop.
struct Smtp {
    child: Child,
    _stdin: ChildStdin,
    dir: TempDir,
    ports: Value,
    ca_pem: String,
}

impl Smtp {
    fn start() -> Smtp {
        let dir = tempfile::tempdir().unwrap();
        let (ca_pem, cert_pem, key_pem) = certificates();
        let cert = dir.path().join("server.pem");
        let key = dir.path().join("server.key");
        std::fs::write(&cert, cert_pem).unwrap();
        std::fs::write(&key, key_pem).unwrap();
        let mail = dir.path().join("mail");
        std::fs::create_dir(&mail).unwrap();
        let python = std::env::var("TIDINGS_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smtp_server.py");
        let mut child = Command::new(&python)
            .arg(script)
            .arg("--dir")
            .arg(&mail)
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .args(["--user", USER, "--password", PASSWORD])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {python}: {e}; {}", INSTALL));
        let stdin = child.stdin.take().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        if line.trim().is_empty() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            let _ = child.wait();
            panic!("the SMTP server did not start ({INSTALL}):\n{err}");
        }
        let ports: Value = serde_json::from_str(&line).unwrap();
        Smtp {
            child,
            _stdin: stdin,
            dir,
            ports,
            ca_pem,
        }
    }

    fn port(&self, listener: &str) -> u16 {
        self.ports[listener].as_u64().unwrap() as u16
    }

    /// A transport to `listener` (no TLS unless the caller sets it).
    fn transport(&self, listener: &str) -> EmailTransportBuilder {
        EmailTransport::builder("127.0.0.1", FROM)
            .port(self.port(listener))
            .tls(TlsMode::None)
            .timeout(Duration::from_secs(10))
    }

    /// What the server accepted, in order.
    fn received(&self) -> Vec<Value> {
        let mut files: Vec<_> = std::fs::read_dir(self.dir.path().join("mail"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| {
                let mut m: Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
                // On the wire lines end in CRLF, as SMTP wants; compare them as LF.
                for body in ["text", "html"] {
                    if let Some(s) = m[body].as_str() {
                        m[body] = Value::from(s.replace("\r\n", "\n"));
                    }
                }
                m
            })
            .collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const INSTALL: &str = "the e-mail tests need Python 3 with aiosmtpd: python3 -m pip install 'aiosmtpd>=1.4.6,<2' (.ci/run installs it)";

/// A throwaway CA, and a certificate for 127.0.0.1 signed by it: (CA PEM, cert PEM, key PEM).
fn certificates() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "tidings test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let server =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server_cert = server.signed_by(&server_key, &issuer).unwrap();
    (ca_cert.pem(), server_cert.pem(), server_key.serialize_pem())
}

fn ann() -> Address {
    Address::email("ann@example.org").unwrap()
}

fn question() -> Message {
    Message::builder("Which time suits you for the call?")
        .choice("Monday 10:00", "CALL_MON")
        .choice("Tuesday 15:00", "CALL_TUE")
        .link("https://school.example/lessons/7", Some("Open lesson"))
        .link(
            "https://school.example/login?t=abc&to=%2Fl%2F7",
            Some("Log in"),
        )
        .build()
        .unwrap()
}

async fn send_to(t: &EmailTransport, to: &str) -> Result<(), DeliveryError> {
    t.send(
        &Address::email(to).unwrap(),
        &Message::text("Welcome!").unwrap(),
        &SendContext::update(),
    )
    .await
    .map(|_| ())
}

fn source_text(e: &DeliveryError) -> String {
    std::error::Error::source(e)
        .map(ToString::to_string)
        .unwrap_or_default()
}

#[tokio::test]
async fn the_server_receives_exactly_what_was_sent() {
    let smtp = Smtp::start();
    let clock = ManualClock::new(Timestamp::from_secs(1_764_000_000)); // 2025-11-24 16:00 UTC
    let t = smtp
        .transport("plain")
        .from_name("School of Rust")
        .reply_to("support@school.example")
        .subject("News from the School of Rust")
        .subject_for(Intent::AgentReply, "Your question to the School of Rust")
        .html(true)
        .clock(clock.shared())
        .build()
        .unwrap();

    let receipt = t
        .send(&ann(), &question(), &SendContext::agent_reply())
        .await
        .unwrap();
    assert_eq!(receipt.channel, Channel::Email);
    assert_eq!(receipt.at, clock.now());
    assert_eq!(receipt.message_ids.len(), 1);

    let got = smtp.received();
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m["mail_from"], FROM);
    assert_eq!(m["rcpt_tos"], serde_json::json!(["ann@example.org"]));
    assert_eq!(m["from"], "School of Rust <courses@school.example>");
    assert_eq!(m["to"], "ann@example.org");
    assert_eq!(m["reply_to"], "support@school.example");
    assert_eq!(m["subject"], "Your question to the School of Rust");
    assert_eq!(m["message_id"], receipt.message_ids[0].as_str());
    assert!(receipt.message_ids[0].ends_with("@school.example>"));
    assert!(
        m["date"].as_str().unwrap().contains("24 Nov 2025 16:00:00"),
        "{}",
        m["date"]
    );
    assert_eq!(m["content_type"], "multipart/alternative");
    assert_eq!(m["tls"], false);
    assert_eq!(
        m["text"],
        "Which time suits you for the call?\n\
         \n\
         1. Monday 10:00\n\
         2. Tuesday 15:00\n\
         \n\
         Open lesson: https://school.example/lessons/7\n\
         Log in: https://school.example/login?t=abc&to=%2Fl%2F7\n"
    );
    let html = m["html"].as_str().unwrap();
    assert!(html.contains("<li>Tuesday 15:00</li>"), "{html}");
    assert!(
        html.contains("<a href=\"https://school.example/login?t=abc&amp;to=%2Fl%2F7\">Log in</a>")
    );

    // Another intent gets the default subject; without HTML the body is plain text alone.
    let plain = smtp.transport("plain").build().unwrap();
    let receipt = plain
        .send(
            &ann(),
            &Message::text("Lesson 4 is open.").unwrap(),
            &SendContext::update(),
        )
        .await
        .unwrap();
    let m = &smtp.received()[1];
    assert_eq!(m["subject"], tidings::email::DEFAULT_SUBJECT);
    assert_eq!(m["content_type"], "text/plain");
    assert_eq!(m["text"], "Lesson 4 is open.\n");
    assert_eq!(m["html"], Value::Null);
    assert_eq!(m["message_id"], receipt.message_ids[0].as_str());
}

#[tokio::test]
async fn a_retry_with_the_same_idempotency_key_carries_the_same_message_id() {
    let smtp = Smtp::start();
    let t = smtp.transport("plain").build().unwrap();
    let ctx = SendContext::update().with_idempotency_key("campaign-7:contact-42");
    let m = Message::text("Lesson 4 is open.").unwrap();
    let first = t.send(&ann(), &m, &ctx).await.unwrap();
    let second = t.send(&ann(), &m, &ctx).await.unwrap();
    assert_eq!(first.message_ids, second.message_ids);
    let got = smtp.received();
    assert_eq!(got[0]["message_id"], got[1]["message_id"]);
}

#[tokio::test]
async fn a_recipient_the_server_refuses_is_unreachable() {
    let smtp = Smtp::start();
    let t = smtp.transport("plain").build().unwrap();
    for to in ["bounce@example.org", "nobody@example.org"] {
        let e = send_to(&t, to).await.unwrap_err();
        assert_eq!(e.kind(), DeliveryErrorKind::Unreachable, "{to}: {e}");
        assert!(e.allows_fallback());
        assert_eq!(
            e.to_string(),
            "recipient unreachable: the SMTP server refused the recipient (550)"
        );
        assert!(
            source_text(&e).contains("mailbox unavailable"),
            "{}",
            source_text(&e)
        );
    }
    assert!(smtp.received().is_empty());
}

#[tokio::test]
async fn a_temporary_refusal_is_retryable() {
    let smtp = Smtp::start();
    let t = smtp.transport("plain").build().unwrap();
    let e = send_to(&t, "busy@example.org").await.unwrap_err();
    assert_eq!(e.kind(), DeliveryErrorKind::Retryable, "{e}");
    assert_eq!(
        e.to_string(),
        "temporary failure: the SMTP server asked to try again later (451)"
    );
    assert!(source_text(&e).contains("try again later"));
    // The same transport goes on delivering to others (the pool dropped the failed session).
    send_to(&t, "ann@example.org").await.unwrap();
    assert_eq!(smtp.received().len(), 1);
}

#[tokio::test]
async fn refused_content_is_other_and_a_message_too_big_is_invalid() {
    let smtp = Smtp::start();
    let t = smtp.transport("plain").build().unwrap();
    let e = send_to(&t, "spam@example.org").await.unwrap_err();
    assert_eq!(e.kind(), DeliveryErrorKind::Other, "{e}");
    assert!(!e.is_retryable() && !e.allows_fallback());
    assert!(e.to_string().ends_with("(554)"), "{e}");

    let big = Message::text("x".repeat(100 * 1024)).unwrap();
    let e = t
        .send(&ann(), &big, &SendContext::update())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), DeliveryErrorKind::InvalidMessage, "{e}");
    assert_eq!(
        e.to_string(),
        "message invalid for this transport: the SMTP server refused the message (552)"
    );
    assert!(smtp.received().is_empty());
}

#[tokio::test]
async fn starttls_with_auth_delivers_and_a_wrong_password_is_unauthorized() {
    let smtp = Smtp::start();
    let starttls = |password: &str| {
        smtp.transport("starttls")
            .tls(TlsMode::StartTls)
            .root_certificate_pem(smtp.ca_pem.clone())
            .credentials(SmtpCredentials::new(USER, password))
            .build()
            .unwrap()
    };
    send_to(&starttls(PASSWORD), "ann@example.org")
        .await
        .unwrap();
    let got = smtp.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["tls"], true);
    assert_eq!(got[0]["login"], USER);

    let e = send_to(&starttls("wrong"), "ann@example.org")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), DeliveryErrorKind::Unauthorized, "{e}");
    assert_eq!(
        e.to_string(),
        "transport unauthorized: the SMTP server refused the credentials (535)"
    );
    assert!(
        !format!("{e:?}").contains("wrong"),
        "the password never shows"
    );

    // No credentials at all, against a server that requires them.
    let anonymous = smtp
        .transport("starttls")
        .tls(TlsMode::StartTls)
        .root_certificate_pem(smtp.ca_pem.clone())
        .build()
        .unwrap();
    let e = send_to(&anonymous, "ann@example.org").await.unwrap_err();
    assert_eq!(e.kind(), DeliveryErrorKind::Unauthorized, "{e}");
    assert_eq!(smtp.received().len(), 1);
}

#[tokio::test]
async fn auth_in_clear_on_loopback_is_checked_too() {
    let smtp = Smtp::start();
    let clear = |password: &str| {
        smtp.transport("plainauth")
            .credentials(SmtpCredentials::new(USER, password))
            .build()
            .unwrap()
    };
    let e = send_to(&clear("wrong"), "ann@example.org")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), DeliveryErrorKind::Unauthorized, "{e}");
    send_to(&clear(PASSWORD), "ann@example.org").await.unwrap();
    assert_eq!(smtp.received()[0]["login"], USER);
    assert_eq!(smtp.received()[0]["tls"], false);

    // Credentials for a server that offers no AUTH (as most do before STARTTLS).
    let e = send_to(
        &smtp
            .transport("plain")
            .credentials(SmtpCredentials::new(USER, PASSWORD))
            .build()
            .unwrap(),
        "ann@example.org",
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), DeliveryErrorKind::Unauthorized, "{e}");
    assert!(e.detail().contains("offers no authentication"), "{e}");
}

#[tokio::test]
async fn implicit_tls_delivers_and_an_untrusted_certificate_is_refused() {
    let smtp = Smtp::start();
    let tls = smtp
        .transport("tls")
        .tls(TlsMode::Implicit)
        .root_certificate_pem(smtp.ca_pem.clone())
        .build()
        .unwrap();
    send_to(&tls, "ann@example.org").await.unwrap();
    assert_eq!(smtp.received()[0]["tls"], true);

    // The test CA is not among the Mozilla roots.
    let untrusted = smtp
        .transport("tls")
        .tls(TlsMode::Implicit)
        .build()
        .unwrap();
    let e = send_to(&untrusted, "ann@example.org").await.unwrap_err();
    assert_eq!(e.kind(), DeliveryErrorKind::Other, "{e}");
    assert!(e.detail().contains("TLS"), "{e}");

    // STARTTLS is required, never opportunistic: a server without it is refused before MAIL.
    let required = smtp
        .transport("plain")
        .tls(TlsMode::StartTls)
        .root_certificate_pem(smtp.ca_pem.clone())
        .build()
        .unwrap();
    let e = send_to(&required, "ann@example.org").await.unwrap_err();
    assert_eq!(e.kind(), DeliveryErrorKind::Other, "{e}");
    assert!(e.detail().contains("STARTTLS"), "{e}");
    assert_eq!(smtp.received().len(), 1);
}

#[tokio::test]
async fn nothing_listening_is_retryable_with_a_clear_message() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let t = EmailTransport::builder("127.0.0.1", FROM)
        .port(port)
        .tls(TlsMode::None)
        .build()
        .unwrap();
    let e = send_to(&t, "ann@example.org").await.unwrap_err();
    assert_eq!(e.kind(), DeliveryErrorKind::Retryable, "{e}");
    assert_eq!(
        e.to_string(),
        format!(
            "temporary failure: cannot connect to the SMTP server at 127.0.0.1:{port}: connection refused (nothing listening, or the server is busy)"
        )
    );
}

#[tokio::test]
async fn a_server_that_never_greets_times_out_as_retryable() {
    // A socket that accepts and says nothing: the SMTP greeting never comes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(socket);
    });
    let t = EmailTransport::builder("127.0.0.1", FROM)
        .port(port)
        .tls(TlsMode::None)
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = tokio::time::Instant::now(); // wall time: the runtime is not paused
    let e = send_to(&t, "ann@example.org").await.unwrap_err();
    assert_eq!(e.kind(), DeliveryErrorKind::Retryable, "{e}");
    assert!(e.detail().contains("did not answer in time"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
    held.abort();
}

#[tokio::test]
async fn a_support_reply_by_email_is_delivered_and_recorded() {
    let smtp = Smtp::start();
    let clock = ManualClock::new(Timestamp::from_secs(1_764_000_000));
    let email = smtp
        .transport("plain")
        .subject_for(Intent::AgentReply, "Re: your question")
        .clock(clock.shared())
        .build()
        .unwrap();
    let directory = Arc::new(MemoryDirectory::new());
    let inbox = Arc::new(MemoryInbox::new());
    let support = Support::builder(directory.clone(), inbox.clone())
        .clock(clock.shared())
        .transport(Arc::new(email))
        .build();
    let ann = directory
        .create(NewContact::new().with_email("ann@example.org"))
        .await
        .unwrap();
    let bob = directory
        .create(NewContact::new().with_email("bounce@example.org"))
        .await
        .unwrap();

    let options = support.transports_for(&ann.id).await.unwrap();
    assert!(
        options
            .iter()
            .any(|o| o.channel == Channel::Email && o.available())
    );

    let message = Message::builder("Which time suits you for the call?")
        .choice("Monday 10:00", "CALL_MON")
        .choice("Tuesday 15:00", "CALL_TUE")
        .build()
        .unwrap();
    let report = support
        .reply(&ann.id, Reply::new(message, [Channel::Email]).by("agent-7"))
        .await
        .unwrap();
    assert!(report.delivered());

    let got = smtp.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["subject"], "Re: your question");
    assert!(
        got[0]["text"]
            .as_str()
            .unwrap()
            .contains("\n1. Monday 10:00\n2. Tuesday 15:00\n")
    );

    let conversation = inbox.conversation(&ann.id, 10).await.unwrap();
    assert_eq!(conversation.len(), 1);
    let EntryContent::Outgoing(out) = &conversation[0].content else {
        panic!("expected the reply, got {:?}", conversation[0].content);
    };
    assert_eq!(out.author.as_deref(), Some("agent-7"));
    assert_eq!(out.deliveries.len(), 1);
    assert_eq!(out.deliveries[0].channel, Channel::Email);
    assert_eq!(out.deliveries[0].status, DeliveryStatus::Sent);
    assert_eq!(
        out.deliveries[0].message_ids,
        vec![got[0]["message_id"].as_str().unwrap().to_owned()]
    );

    // A bounce is recorded as failed, with the reason an agent reads.
    let report = support
        .reply(
            &bob.id,
            Reply::new(Message::text("Welcome!").unwrap(), [Channel::Email]),
        )
        .await
        .unwrap();
    assert!(!report.delivered());
    let conversation = inbox.conversation(&bob.id, 10).await.unwrap();
    let EntryContent::Outgoing(out) = &conversation[0].content else {
        panic!("expected the reply");
    };
    assert_eq!(out.deliveries[0].status, DeliveryStatus::Failed);
    assert_eq!(
        out.deliveries[0].reason.as_deref(),
        Some("recipient unreachable: the SMTP server refused the recipient (550)")
    );
    assert_eq!(smtp.received().len(), 1);
}
