//! SMTP credentials, held so that `Debug` never shows the password.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// A user name and password for the relay's `AUTH` (PLAIN or LOGIN, whichever it offers).
///
/// `Debug` shows neither: some providers take an API key as the user name.
///
/// ```
/// use tidings::email::SmtpCredentials;
///
/// let creds = SmtpCredentials::new("mailer@school.example", "s3cret");
/// assert_eq!(format!("{creds:?}"), "SmtpCredentials([redacted])");
/// ```
#[derive(Clone)]
pub struct SmtpCredentials {
    username: SecretString,
    password: SecretString,
}

impl SmtpCredentials {
    /// Wraps a user name and a password.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        SmtpCredentials {
            username: SecretString::from(username.into()),
            password: SecretString::from(password.into()),
        }
    }

    /// The user name.
    pub fn username(&self) -> &str {
        self.username.expose_secret()
    }

    /// The password.
    ///
    /// # Security Warning
    ///
    /// Do not log, print or store what this returns; it is exposed only to log in to the relay.
    pub fn password(&self) -> &str {
        self.password.expose_secret()
    }

    pub(crate) fn to_lettre(&self) -> lettre::transport::smtp::authentication::Credentials {
        lettre::transport::smtp::authentication::Credentials::new(
            self.username().to_owned(),
            self.password().to_owned(),
        )
    }
}

impl fmt::Debug for SmtpCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SmtpCredentials([redacted])")
    }
}
