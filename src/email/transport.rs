//! [`EmailTransport`]: SMTP through lettre, as a [`Transport`].

use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime},
};

use async_trait::async_trait;
use lettre::{
    message::{Mailbox, MultiPart, header::ContentType},
    transport::smtp::extension::ClientId,
};
use url::Url;

use super::{
    BuildError, SmtpCredentials, TlsMode, classify::classify, message_id::message_id,
    render::render, session::Relay,
};
use crate::{
    clock::{SharedClock, SystemClock},
    contact::{Address, Channel},
    message::{Choice, Message, Receipt},
    transport::{Capabilities, DeliveryError, Intent, SendContext, Transport, ensure_channel},
};

/// The subject used unless another is configured.
pub const DEFAULT_SUBJECT: &str = "A new message for you";

/// Gives the URL that answers with `choice` for the recipient at `address` (the host's endpoint
/// that reports the answer, typically carrying the choice's signed payload); `None` leaves that
/// choice a numbered line.
pub type AnswerLinks = Arc<dyn Fn(&Address, &Choice) -> Option<Url> + Send + Sync>;

/// Builds an [`EmailTransport`]; every setting is checked by [`build`](Self::build).
#[must_use = "a builder does nothing until `build` is called"]
pub struct EmailTransportBuilder {
    host: String,
    from: String,
    from_name: Option<String>,
    port: Option<u16>,
    tls: TlsMode,
    credentials: Option<SmtpCredentials>,
    reply_to: Option<String>,
    subject: String,
    subjects: Vec<(Intent, String)>,
    timeout: Duration,
    html: bool,
    roots: Vec<Vec<u8>>,
    hello_name: Option<String>,
    answer_links: Option<AnswerLinks>,
    clock: SharedClock,
}

impl fmt::Debug for EmailTransportBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailTransportBuilder")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("credentials", &self.credentials)
            .field("from", &self.from)
            .field("from_name", &self.from_name)
            .field("subject", &self.subject)
            .field("timeout", &self.timeout)
            .field("html", &self.html)
            .field("answer_links", &self.answer_links.is_some())
            .finish_non_exhaustive()
    }
}

impl EmailTransportBuilder {
    /// Connects to `port` instead of the TLS mode's default (25, 587 or 465).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Sets how the connection is protected (default [`TlsMode::StartTls`]).
    pub fn tls(mut self, mode: TlsMode) -> Self {
        self.tls = mode;
        self
    }

    /// Logs in to the relay with `credentials` (AUTH PLAIN or LOGIN).
    pub fn credentials(mut self, credentials: SmtpCredentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Shows `name` as the sender's display name (`"Name" <from@...>`).
    pub fn from_name(mut self, name: impl Into<String>) -> Self {
        self.from_name = Some(name.into());
        self
    }

    /// Sets a Reply-To address (the support mailbox, say).
    pub fn reply_to(mut self, address: impl Into<String>) -> Self {
        self.reply_to = Some(address.into());
        self
    }

    /// Sets the subject of every e-mail (default [`DEFAULT_SUBJECT`]) unless
    /// [`subject_for`](Self::subject_for) gives one for the send's intent.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = subject.into();
        self
    }

    /// Uses `subject` for sends of `intent` (an agent's reply, a promotion, ...). A later
    /// subject for the same intent replaces the earlier.
    pub fn subject_for(mut self, intent: Intent, subject: impl Into<String>) -> Self {
        self.subjects.retain(|(i, _)| *i != intent);
        self.subjects.push((intent, subject.into()));
        self
    }

    /// Sets how long one send may take in all: connecting, TLS, login and the whole SMTP
    /// conversation up to the server's acceptance of the message (default 30 s). A timeout is
    /// [`Retryable`](crate::transport::DeliveryErrorKind::Retryable); one that strikes while the
    /// server is answering the message data may still have delivered it (the Message-ID of a
    /// send with an idempotency key stays the same, so receivers can drop the copy).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Adds a `text/html` alternative to the plain-text body (default: plain text only).
    pub fn html(mut self, html: bool) -> Self {
        self.html = html;
        self
    }

    /// Also trusts the root certificate in `pem` (a relay with a private CA), besides the
    /// Mozilla roots.
    pub fn root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.roots.push(pem.into());
        self
    }

    /// Sets the name sent with `EHLO` (default: the From address's domain).
    pub fn hello_name(mut self, name: impl Into<String>) -> Self {
        self.hello_name = Some(name.into());
        self
    }

    /// Renders choices as links: `links` gives the URL that answers with a choice, for a
    /// recipient. The transport then declares buttons in its [`Capabilities`], so flows
    /// whose questions ask for buttons may go by e-mail too.
    pub fn answer_links(
        mut self,
        links: impl Fn(&Address, &Choice) -> Option<Url> + Send + Sync + 'static,
    ) -> Self {
        self.answer_links = Some(Arc::new(links));
        self
    }

    /// Reads time (the receipt's and the Date header's) from `clock`.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Checks every setting and builds the transport. No connection is made until the first
    /// send; each send opens its own.
    pub fn build(self) -> Result<EmailTransport, BuildError> {
        let host = self.host.trim().to_owned();
        let host_ok = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
        if !host_ok {
            return Err(BuildError::InvalidHost(self.host));
        }
        let from_address: lettre::Address =
            self.from
                .trim()
                .parse()
                .map_err(|e: lettre::address::AddressError| BuildError::InvalidFrom {
                    address: self.from.clone(),
                    source: e.into(),
                })?;
        if let Some(name) = &self.from_name {
            single_line(name, "sender name")?;
        }
        single_line(&self.subject, "subject")?;
        for (_, s) in &self.subjects {
            single_line(s, "subject")?;
        }
        let reply_to = match &self.reply_to {
            Some(address) => Some(Mailbox::new(
                None,
                address
                    .trim()
                    .parse()
                    .map_err(
                        |e: lettre::address::AddressError| BuildError::InvalidReplyTo {
                            address: address.clone(),
                            source: e.into(),
                        },
                    )?,
            )),
            None => None,
        };
        let hello = match &self.hello_name {
            Some(name) => {
                single_line(name, "EHLO name")?;
                name.clone()
            }
            None => from_address.domain().to_owned(),
        };
        let tls_parameters = self.tls.parameters(&host, &self.roots)?;
        let port = self.port.unwrap_or(self.tls.default_port());
        let server = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let domain = from_address.domain().to_owned();
        Ok(EmailTransport {
            inner: Arc::new(Inner {
                relay: Relay {
                    host,
                    port,
                    tls: self.tls,
                    tls_parameters,
                    hello: ClientId::Domain(hello),
                    credentials: self.credentials.as_ref().map(SmtpCredentials::to_lettre),
                    timeout: self.timeout,
                },
                server,
                tls: self.tls,
                authenticating: self.credentials.is_some(),
                from: Mailbox::new(self.from_name, from_address),
                domain,
                reply_to,
                subject: self.subject,
                subjects: self.subjects,
                html: self.html,
                answer_links: self.answer_links,
                clock: self.clock,
                channel: Channel::Email,
            }),
        })
    }
}

fn single_line(value: &str, what: &'static str) -> Result<(), BuildError> {
    if value.trim().is_empty() || value.chars().any(|c| c == '\r' || c == '\n') {
        Err(BuildError::InvalidHeader(what))
    } else {
        Ok(())
    }
}

struct Inner {
    relay: Relay,
    server: String,
    tls: TlsMode,
    authenticating: bool,
    from: Mailbox,
    domain: String,
    reply_to: Option<Mailbox>,
    subject: String,
    subjects: Vec<(Intent, String)>,
    html: bool,
    answer_links: Option<AnswerLinks>,
    clock: SharedClock,
    channel: Channel,
}

/// E-mail over SMTP as a [`Transport`] for [`Channel::Email`]; see the
/// [module docs](super). Cheap to clone.
#[derive(Clone)]
pub struct EmailTransport {
    inner: Arc<Inner>,
}

impl fmt::Debug for EmailTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailTransport")
            .field("server", &self.inner.server)
            .field("tls", &self.inner.tls)
            .field("authenticating", &self.inner.authenticating)
            .field("from", &self.inner.from.to_string())
            .field("html", &self.inner.html)
            .field("answer_links", &self.inner.answer_links.is_some())
            .finish_non_exhaustive()
    }
}

impl EmailTransport {
    /// Starts building a transport that sends through the SMTP relay at `host` as `from`.
    pub fn builder(host: impl Into<String>, from: impl Into<String>) -> EmailTransportBuilder {
        EmailTransportBuilder {
            host: host.into(),
            from: from.into(),
            from_name: None,
            port: None,
            tls: TlsMode::default(),
            credentials: None,
            reply_to: None,
            subject: DEFAULT_SUBJECT.to_owned(),
            subjects: Vec::new(),
            timeout: Duration::from_secs(30),
            html: false,
            roots: Vec::new(),
            hello_name: None,
            answer_links: None,
            clock: SystemClock::shared(),
        }
    }

    /// The relay, as `host:port`.
    pub fn server(&self) -> &str {
        &self.inner.server
    }

    fn subject_for(&self, intent: Intent) -> &str {
        self.inner
            .subjects
            .iter()
            .find(|(i, _)| *i == intent)
            .map_or(self.inner.subject.as_str(), |(_, s)| s.as_str())
    }

    /// The e-mail for `message` to `to`, and its Message-ID.
    fn compose(
        &self,
        to: &Address,
        recipient: lettre::Address,
        message: &Message,
        ctx: &SendContext,
    ) -> Result<(lettre::Message, String), DeliveryError> {
        let answer_urls: Vec<Option<Url>> = match &self.inner.answer_links {
            Some(links) => message.choices().iter().map(|c| links(to, c)).collect(),
            None => Vec::new(),
        };
        let bodies = render(message, &answer_urls, self.inner.html);
        let id = message_id(ctx, &self.inner.domain)?;
        let millis = u64::try_from(self.inner.clock.now().as_millis()).unwrap_or(0);
        let mut email = lettre::Message::builder()
            .from(self.inner.from.clone())
            .to(Mailbox::new(None, recipient))
            .subject(self.subject_for(ctx.intent))
            .message_id(Some(id.clone()))
            .date(SystemTime::UNIX_EPOCH + Duration::from_millis(millis));
        if let Some(reply_to) = &self.inner.reply_to {
            email = email.reply_to(reply_to.clone());
        }
        let built = match bodies.html {
            Some(html) => email.multipart(MultiPart::alternative_plain_html(bodies.text, html)),
            // lettre ends a single body with CRLF itself.
            None => email.header(ContentType::TEXT_PLAIN).body(
                bodies
                    .text
                    .strip_suffix('\n')
                    .unwrap_or(&bodies.text)
                    .to_owned(),
            ),
        };
        let email = built.map_err(|e| {
            DeliveryError::invalid_message("the e-mail could not be put together").with_source(e)
        })?;
        Ok((email, id))
    }
}

#[async_trait]
impl Transport for EmailTransport {
    fn channel(&self) -> &Channel {
        &self.inner.channel
    }

    fn capabilities(&self) -> Capabilities {
        let caps = Capabilities::text_only().with_choices(Message::MAX_CHOICES, None);
        if self.inner.answer_links.is_some() {
            caps.with_buttons(Message::MAX_CHOICES)
        } else {
            caps
        }
    }

    async fn send(
        &self,
        to: &Address,
        message: &Message,
        ctx: &SendContext,
    ) -> Result<Receipt, DeliveryError> {
        ensure_channel(&self.inner.channel, to)?;
        self.capabilities().check(message)?;
        let recipient: lettre::Address = to.id().parse().map_err(|e| {
            DeliveryError::unreachable("the address is not one an SMTP server accepts")
                .with_source(e)
        })?;
        let (email, id) = self.compose(to, recipient, message, ctx)?;
        match self
            .inner
            .relay
            .deliver(email.envelope(), &email.formatted())
            .await
        {
            Ok(_) => {
                tracing::debug!(server = %self.inner.server, message_id = %id, "e-mail accepted by the relay");
                Ok(Receipt::new(
                    Channel::Email,
                    vec![id],
                    self.inner.clock.now(),
                ))
            }
            Err(e) => {
                let error = classify(e, &self.inner.server);
                tracing::debug!(server = %self.inner.server, kind = ?error.kind(), "e-mail not accepted");
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::DeliveryErrorKind;

    fn builder() -> EmailTransportBuilder {
        EmailTransport::builder("smtp.school.example", "courses@school.example")
    }

    #[test]
    fn build_checks_every_setting() {
        assert!(matches!(
            EmailTransport::builder("", "a@b.example").build(),
            Err(BuildError::InvalidHost(_))
        ));
        assert!(matches!(
            EmailTransport::builder("smtp host", "a@b.example").build(),
            Err(BuildError::InvalidHost(_))
        ));
        assert!(matches!(
            EmailTransport::builder("smtp.example", "not an address").build(),
            Err(BuildError::InvalidFrom { .. })
        ));
        assert!(matches!(
            builder().reply_to("nope").build(),
            Err(BuildError::InvalidReplyTo { .. })
        ));
        assert!(matches!(
            builder().subject("Hi\r\nBcc: x@evil.example").build(),
            Err(BuildError::InvalidHeader("subject"))
        ));
        assert!(matches!(
            builder().subject_for(Intent::Promotional, "").build(),
            Err(BuildError::InvalidHeader("subject"))
        ));
        assert!(matches!(
            builder().from_name("School\nX").build(),
            Err(BuildError::InvalidHeader("sender name"))
        ));
        assert!(matches!(
            builder().root_certificate_pem(b"not pem".to_vec()).build(),
            Err(BuildError::Certificate(_))
        ));
        let t = builder().build().unwrap();
        assert_eq!(t.server(), "smtp.school.example:587");
        let t = builder().tls(TlsMode::Implicit).build().unwrap();
        assert_eq!(t.server(), "smtp.school.example:465");
        let t = EmailTransport::builder("::1", "a@b.example")
            .tls(TlsMode::None)
            .port(2525)
            .build()
            .unwrap();
        assert_eq!(t.server(), "[::1]:2525");
    }

    #[test]
    fn debug_shows_no_credentials() {
        let b = builder().credentials(SmtpCredentials::new("apikey-user", "hunter2-secret"));
        let t = b.build().unwrap();
        let b = builder().credentials(SmtpCredentials::new("apikey-user", "hunter2-secret"));
        for shown in [format!("{b:?}"), format!("{t:?}")] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(!shown.contains("apikey-user"), "{shown}");
        }
        assert!(format!("{t:?}").contains("authenticating: true"));
    }

    #[test]
    fn subjects_follow_the_intent() {
        let t = builder()
            .subject("News from the school")
            .subject_for(Intent::AgentReply, "Re: your question")
            .subject_for(Intent::AgentReply, "Support: your question")
            .build()
            .unwrap();
        assert_eq!(t.subject_for(Intent::AgentReply), "Support: your question");
        assert_eq!(t.subject_for(Intent::Promotional), "News from the school");
    }

    #[test]
    fn buttons_are_declared_only_with_answer_links() {
        let plain = builder().build().unwrap();
        let buttons = Message::builder("q")
            .choice("Yes", "Y")
            .style(crate::message::ChoiceStyle::Buttons)
            .build()
            .unwrap();
        let refused = plain.capabilities().check(&buttons).unwrap_err();
        assert_eq!(refused.kind(), DeliveryErrorKind::InvalidMessage);
        let linked = builder()
            .answer_links(|_, c| {
                Url::parse(&format!("https://school.example/a/{}", c.payload())).ok()
            })
            .build()
            .unwrap();
        assert!(linked.capabilities().check(&buttons).is_ok());
    }

    #[tokio::test]
    async fn other_channels_and_buttons_are_refused_before_connecting() {
        // Nothing listens on this host: a refusal proves no connection was tried.
        let t = EmailTransport::builder("unreachable.invalid", "a@b.example")
            .build()
            .unwrap();
        let m = Message::text("hi").unwrap();
        let e = t
            .send(
                &Address::messenger("p", "u").unwrap(),
                &m,
                &SendContext::update(),
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind(), DeliveryErrorKind::InvalidMessage);
        let buttons = Message::builder("q")
            .choice("Yes", "Y")
            .style(crate::message::ChoiceStyle::Buttons)
            .build()
            .unwrap();
        let e = t
            .send(
                &Address::email("ann@example.org").unwrap(),
                &buttons,
                &SendContext::update(),
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind(), DeliveryErrorKind::InvalidMessage);
    }
}
