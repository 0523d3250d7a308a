//! Why an e-mail did not go, as a [`DeliveryError`] kind.
//!
//! The table and its reasons are in the [module docs](super#failures).

use std::{error::Error as StdError, io};

use lettre::transport::smtp::Error as SmtpError;

use super::session::{Failure, Stage};
use crate::transport::{DeliveryError, DeliveryErrorKind};

/// Classifies a failed send to `server` (`host:port`), keeping lettre's error as the source.
pub(crate) fn classify(failure: Failure, server: &str) -> DeliveryError {
    use DeliveryErrorKind::*;
    match failure {
        Failure::Smtp(stage, error) => {
            let (kind, detail) = describe(stage, &error, server);
            DeliveryError::new(kind, detail).with_source(error)
        }
        Failure::Deadline(after) => DeliveryError::retryable(format!(
            "the SMTP server at {server} did not answer in time ({} s)",
            after.as_secs_f32()
        )),
        Failure::NoStartTls => DeliveryError::other(format!(
            "the SMTP server at {server} does not offer STARTTLS, which this transport requires"
        )),
        Failure::NoAuth => DeliveryError::unauthorized(format!(
            "the SMTP server at {server} offers no authentication this client can use \
             (PLAIN or LOGIN; many servers offer it only over TLS)"
        )),
        Failure::NoSmtpUtf8 { recipient } => DeliveryError::new(
            if recipient { Unreachable } else { Other },
            format!(
                "the SMTP server at {server} cannot carry a non-ASCII {} address (no SMTPUTF8)",
                if recipient { "recipient" } else { "sender" }
            ),
        ),
    }
}

fn describe(stage: Stage, error: &SmtpError, server: &str) -> (DeliveryErrorKind, String) {
    use DeliveryErrorKind::*;
    if let Some(code) = error.status() {
        let code = u16::from(code);
        let text = error.source().map(ToString::to_string).unwrap_or_default();
        let kind = reply_kind(stage, code, enhanced_status(&text));
        let what = match (kind, stage) {
            (Retryable, _) => "asked to try again later",
            (Unauthorized, Stage::Auth) => "refused the credentials",
            (Unauthorized, _) => "refused to go on without valid authentication",
            (Unreachable, _) => "refused the recipient",
            (InvalidMessage, _) => "refused the message",
            (_, Stage::Connect) => "refused the connection",
            (_, Stage::StartTls) => "refused STARTTLS",
            (_, Stage::Mail) => "refused the sender",
            (_, _) => "refused the message",
        };
        return (kind, format!("the SMTP server {what} ({code})"));
    }
    let tls_stage = matches!(stage, Stage::Connect | Stage::StartTls);
    if error.is_tls() || (tls_stage && io_kind(error) == Some(io::ErrorKind::InvalidData)) {
        return (
            Other,
            format!("TLS with the SMTP server at {server} failed (certificate or protocol)"),
        );
    }
    if error.is_timeout() {
        return (
            Retryable,
            format!("the SMTP server at {server} did not answer in time"),
        );
    }
    match io_kind(error) {
        Some(io::ErrorKind::ConnectionRefused) => {
            return (
                Retryable,
                format!(
                    "cannot connect to the SMTP server at {server}: connection refused \
                     (nothing listening, or the server is busy)"
                ),
            );
        }
        Some(_) => {
            return (
                Retryable,
                format!("the connection to the SMTP server at {server} failed"),
            );
        }
        None => {}
    }
    if error.is_response() {
        // Most often the server closed the connection mid-reply.
        return (
            Retryable,
            format!("the SMTP server at {server} broke off the conversation"),
        );
    }
    if error.is_client() {
        return (
            Other,
            format!("the SMTP client stopped the conversation with {server}"),
        );
    }
    if error.is_transport_shutdown() {
        return (Other, "the SMTP transport was shut down".to_owned());
    }
    (
        Retryable,
        format!("cannot reach the SMTP server at {server}"),
    )
}

/// The kind for a negative reply `code` to the command at `stage`, with the reply's enhanced
/// status code if it had one.
fn reply_kind(stage: Stage, code: u16, enhanced: Option<(u16, u16, u16)>) -> DeliveryErrorKind {
    use DeliveryErrorKind::*;
    if (400..500).contains(&code) {
        return Retryable;
    }
    let auth = matches!(code, 530 | 534 | 535 | 538) || matches!(enhanced, Some((5, 7, 8 | 9)));
    match stage {
        Stage::Auth => Unauthorized,
        Stage::Connect | Stage::StartTls => Other,
        _ if auth => Unauthorized,
        Stage::Mail => {
            if code == 552 || matches!(enhanced, Some((5, 3, 4))) {
                InvalidMessage // over the SIZE the server takes
            } else {
                Other // the sender is refused: the configuration's to fix
            }
        }
        Stage::Rcpt => Unreachable,
        Stage::Data => match enhanced {
            Some((5, 1, 7 | 8)) => Other,
            Some((5, 2, 3) | (5, 3, 4) | (5, 6, _)) => InvalidMessage,
            Some((5, 1 | 2, _)) => Unreachable,
            _ if code == 552 => InvalidMessage,
            _ => Other,
        },
    }
}

/// The enhanced status code (`class.subject.detail`, RFC 3463) the reply text starts with.
fn enhanced_status(text: &str) -> Option<(u16, u16, u16)> {
    let first = text.split_whitespace().next()?;
    let mut parts = first.splitn(3, '.');
    let class = parts.next()?.parse().ok()?;
    let subject = parts.next()?.parse().ok()?;
    let detail = parts.next()?.parse().ok()?;
    matches!(class, 2 | 4 | 5).then_some((class, subject, detail))
}

fn io_kind(error: &SmtpError) -> Option<io::ErrorKind> {
    let mut source = error.source();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            return Some(io.kind());
        }
        source = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeliveryErrorKind::*;

    #[test]
    fn enhanced_status_codes_are_read_from_the_reply_text() {
        assert_eq!(
            enhanced_status("5.1.1 <x@y>: user unknown"),
            Some((5, 1, 1))
        );
        assert_eq!(enhanced_status("4.7.0 try later"), Some((4, 7, 0)));
        assert_eq!(enhanced_status("mailbox unavailable"), None);
        assert_eq!(enhanced_status("5.1 x"), None);
        assert_eq!(enhanced_status("7.1.1 x"), None);
        assert_eq!(enhanced_status(""), None);
    }

    #[test]
    fn any_4xx_is_retryable_wherever_it_comes() {
        for stage in [
            Stage::Connect,
            Stage::StartTls,
            Stage::Auth,
            Stage::Mail,
            Stage::Rcpt,
            Stage::Data,
        ] {
            for code in [421, 450, 451, 452, 454] {
                assert_eq!(reply_kind(stage, code, None), Retryable, "{stage:?} {code}");
            }
        }
    }

    #[test]
    fn refusals_are_read_by_the_command_they_answer() {
        let cases = [
            (Stage::Connect, 554, None, Other),
            (Stage::StartTls, 501, None, Other),
            (Stage::Auth, 535, Some((5, 7, 8)), Unauthorized),
            (Stage::Auth, 504, None, Unauthorized),
            // The server wants a login before it takes anything.
            (Stage::Mail, 530, Some((5, 7, 0)), Unauthorized),
            (Stage::Rcpt, 530, None, Unauthorized),
            (Stage::Mail, 550, Some((5, 1, 8)), Other),
            (Stage::Mail, 553, None, Other),
            (Stage::Mail, 552, None, InvalidMessage),
            (Stage::Rcpt, 550, Some((5, 1, 1)), Unreachable),
            (Stage::Rcpt, 550, None, Unreachable),
            (Stage::Rcpt, 551, None, Unreachable),
            (Stage::Rcpt, 552, Some((5, 2, 2)), Unreachable),
            (Stage::Rcpt, 553, None, Unreachable),
            (Stage::Rcpt, 554, Some((5, 7, 1)), Unreachable),
            (Stage::Data, 552, None, InvalidMessage),
            (Stage::Data, 554, Some((5, 6, 0)), InvalidMessage),
            (Stage::Data, 550, Some((5, 3, 4)), InvalidMessage),
            (Stage::Data, 554, None, Other),
            (Stage::Data, 554, Some((5, 7, 1)), Other),
            (Stage::Data, 550, None, Other),
            // Servers that check recipients only after the data.
            (Stage::Data, 550, Some((5, 1, 1)), Unreachable),
            (Stage::Data, 554, Some((5, 2, 1)), Unreachable),
            (Stage::Data, 554, Some((5, 7, 8)), Unauthorized),
        ];
        for (stage, code, enhanced, kind) in cases {
            assert_eq!(
                reply_kind(stage, code, enhanced),
                kind,
                "{stage:?} {code} {enhanced:?}"
            );
        }
    }

    #[test]
    fn failures_without_a_reply_say_what_to_do() {
        let e = classify(
            Failure::Deadline(std::time::Duration::from_secs(30)),
            "smtp.example:587",
        );
        assert_eq!(e.kind(), Retryable);
        assert_eq!(
            e.to_string(),
            "temporary failure: the SMTP server at smtp.example:587 did not answer in time (30 s)"
        );
        assert_eq!(classify(Failure::NoStartTls, "s:25").kind(), Other);
        assert_eq!(classify(Failure::NoAuth, "s:25").kind(), Unauthorized);
        assert_eq!(
            classify(Failure::NoSmtpUtf8 { recipient: true }, "s:25").kind(),
            Unreachable
        );
        assert_eq!(
            classify(Failure::NoSmtpUtf8 { recipient: false }, "s:25").kind(),
            Other
        );
    }
}
