//! One SMTP conversation per e-mail, command by command, under one deadline.
//!
//! lettre's async client bounds only the TCP connect by its timeout: a server that accepts and
//! then stops answering would hold a send forever. So the whole conversation (connect, TLS,
//! `EHLO`, `AUTH`, `MAIL`, `RCPT`, `DATA`) runs under one deadline, and each e-mail has its own
//! connection: one abandoned mid-command is dropped, never reused in an unknown state (which is
//! also why lettre's pool is not used). Driving the commands one by one also tells which command
//! a refusal answered, which [`classify`](super::classify) needs: a 550 to `RCPT` is the
//! recipient's, a 550 at the end of `DATA` is about the content.
//!
//! Once the message is accepted (the reply to its data), `QUIT` gets a short wait of its own and
//! its outcome is ignored: the e-mail went, whatever happens to the goodbye.

use std::time::Duration;

use lettre::{
    Address as MailAddress,
    address::Envelope,
    transport::smtp::{
        Error as SmtpError,
        authentication::{Credentials, Mechanism},
        client::{AsyncSmtpConnection, TlsParameters},
        commands::{Data, Mail, Rcpt},
        extension::{ClientId, Extension, MailBodyParameter, MailParameter},
    },
};

use super::TlsMode;

/// How long `QUIT` may take after the message was accepted.
const QUIT_WAIT: Duration = Duration::from_secs(2);

/// The mechanisms tried, in order (lettre's default).
const MECHANISMS: [Mechanism; 2] = [Mechanism::Plain, Mechanism::Login];

/// Where in the conversation something failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Connecting, implicit TLS, the greeting and `EHLO`.
    Connect,
    /// `STARTTLS`, the handshake and the second `EHLO`.
    StartTls,
    /// `AUTH`.
    Auth,
    /// `MAIL FROM`.
    Mail,
    /// `RCPT TO`.
    Rcpt,
    /// `DATA` and the message itself.
    Data,
}

/// Why an e-mail did not go.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The connection failed or the server refused, at `Stage`.
    Smtp(Stage, SmtpError),
    /// STARTTLS is required and the server does not offer it.
    NoStartTls,
    /// Credentials are configured and the server offers no mechanism to use them.
    NoAuth,
    /// An address is not ASCII and the server does not offer SMTPUTF8; `recipient` says whose.
    NoSmtpUtf8 {
        /// Whether it is the recipient's address (else the sender's).
        recipient: bool,
    },
    /// The deadline passed before the message was accepted.
    Deadline(Duration),
}

/// The relay and how to talk to it.
pub(crate) struct Relay {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) tls: TlsMode,
    pub(crate) tls_parameters: Option<TlsParameters>,
    pub(crate) hello: ClientId,
    pub(crate) credentials: Option<Credentials>,
    pub(crate) timeout: Duration,
}

impl Relay {
    /// Delivers `email` (already formatted) to the envelope's recipients.
    pub(crate) async fn deliver(&self, envelope: &Envelope, email: &[u8]) -> Result<(), Failure> {
        let mut conn = tokio::time::timeout(self.timeout, self.converse(envelope, email))
            .await
            .map_err(|_| Failure::Deadline(self.timeout))??;
        let _ = tokio::time::timeout(QUIT_WAIT, conn.quit()).await;
        Ok(())
    }

    async fn converse(
        &self,
        envelope: &Envelope,
        email: &[u8],
    ) -> Result<AsyncSmtpConnection, Failure> {
        let at = |stage| move |e| Failure::Smtp(stage, e);
        let implicit = match self.tls {
            TlsMode::Implicit => self.tls_parameters.clone(),
            _ => None,
        };
        let mut conn = AsyncSmtpConnection::connect_tokio1(
            (self.host.as_str(), self.port),
            Some(self.timeout),
            &self.hello,
            implicit,
            None,
        )
        .await
        .map_err(at(Stage::Connect))?;
        if let (TlsMode::StartTls, Some(params)) = (self.tls, &self.tls_parameters) {
            if !conn.can_starttls() {
                return Err(Failure::NoStartTls);
            }
            conn.starttls(params.clone(), &self.hello)
                .await
                .map_err(at(Stage::StartTls))?;
        }
        if let Some(credentials) = &self.credentials {
            if conn.server_info().get_auth_mechanism(&MECHANISMS).is_none() {
                return Err(Failure::NoAuth);
            }
            conn.auth(&MECHANISMS, credentials)
                .await
                .map_err(at(Stage::Auth))?;
        }

        let mut parameters = Vec::new();
        let non_ascii = |a: &MailAddress| !AsRef::<str>::as_ref(a).is_ascii();
        let recipient_utf8 = envelope.to().iter().any(non_ascii);
        if recipient_utf8 || envelope.from().is_some_and(non_ascii) {
            if !conn.server_info().supports_feature(Extension::SmtpUtfEight) {
                return Err(Failure::NoSmtpUtf8 {
                    recipient: recipient_utf8,
                });
            }
            parameters.push(MailParameter::SmtpUtfEight);
        }
        // lettre encodes bodies and headers to ASCII; should anything 8-bit remain, say so.
        if !email.is_ascii() {
            parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        conn.command(Mail::new(envelope.from().cloned(), parameters))
            .await
            .map_err(at(Stage::Mail))?;
        for to in envelope.to() {
            conn.command(Rcpt::new(to.clone(), Vec::new()))
                .await
                .map_err(at(Stage::Rcpt))?;
        }
        conn.command(Data).await.map_err(at(Stage::Data))?;
        conn.message(email).await.map_err(at(Stage::Data))?;
        Ok(conn)
    }
}
