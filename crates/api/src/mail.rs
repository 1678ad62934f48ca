//! E-mail the accounts send (invitations, password resets) through the operator's SMTP relay,
//! the one alert e-mail uses (`CLOUDSPEND_SMTP_URL`, `CLOUDSPEND_SMTP_FROM`). These messages
//! carry one-time tokens: neither the message nor a failure's text that could hold it is logged.

use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// How long one send may take before the caller gives up on e-mail.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The dashboard's address as users reach it (`CLOUDSPEND_PUBLIC_URL`), for links in
    /// messages. Never taken from a request's Host header: an attacker asking for a victim's
    /// reset with `Host: evil.example` would have the victim's token sent to evil.example.
    public_url: Option<String>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The relay URL may carry a password.
        f.debug_struct("Mailer")
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// A mailer for the relay at `smtp_url` (as lettre reads it: `smtps://user:pass@host:465`,
    /// `smtp://host:587?tls=required`, `smtp://host:25`) sending as `from`.
    pub fn new(smtp_url: &str, from: &str, public_url: Option<&str>) -> Result<Self, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp_url)
            .map_err(|e| format!("CLOUDSPEND_SMTP_URL is not an SMTP URL ({e}): use smtps://user:pass@host:465 or smtp://host:25"))?
            .timeout(Some(SEND_TIMEOUT))
            .build();
        let from = from
            .parse()
            .map_err(|e| format!("CLOUDSPEND_SMTP_FROM `{from}` is not an address: {e}"))?;
        if let Some(url) = public_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(format!(
                "CLOUDSPEND_PUBLIC_URL `{url}` must start with https:// (or http://), e.g. https://cloudspend.example.com"
            ));
        }
        Ok(Self {
            transport,
            from,
            public_url: public_url.map(|u| u.trim_end_matches('/').to_string()),
        })
    }

    /// Where a dashboard path is opened from a message: the full link when the public address
    /// is known, else the path and a word on where to open it.
    pub fn link(&self, path: &str) -> String {
        match &self.public_url {
            Some(base) => format!("{base}{path}"),
            None => format!("{path} (open it on your CloudSpend server's address)"),
        }
    }

    /// Sends a plain-text message. The error says what failed without the message itself.
    pub async fn send(&self, to: &str, subject: &str, text: String) -> Result<(), String> {
        let to: Mailbox = to
            .parse()
            .map_err(|e| format!("`{to}` is not an address: {e}"))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(text)
            .map_err(|e| format!("building the e-mail: {e}"))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| format!("SMTP: {e}"))
    }
}
