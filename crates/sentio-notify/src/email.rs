//! E-mail over SMTP (`lettre` on tokio, rustls with ring): the body's summary as the subject,
//! the body itself, pretty-printed, as the text.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sentio_core::{ChannelTarget, SmtpSecurity};

use crate::DeliveryError;
use crate::message::Body;

/// Sends `body` (a [`Body`] as JSON) to the recipients of `target`, an e-mail channel.
pub async fn send(
    target: &ChannelTarget,
    msg_id: &str,
    body: &str,
    timeout: Duration,
) -> Result<(), DeliveryError> {
    let ChannelTarget::Email {
        host,
        port,
        security,
        username,
        password,
        from,
        to,
    } = target
    else {
        return Err(DeliveryError::Config("not an e-mail channel".into()));
    };
    let config = |e: &dyn std::fmt::Display| DeliveryError::Config(e.to_string());
    let parsed: Body = serde_json::from_str(body).map_err(|e| config(&e))?;
    let text = serde_json::to_string_pretty(&parsed.data).map_err(|e| config(&e))?;
    let mut builder = Message::builder()
        .from(from.parse().map_err(|e| config(&e))?)
        .subject(format!("Sentio: {}", parsed.summary))
        .message_id(Some(format!("<{msg_id}@sentio>")))
        .header(ContentType::TEXT_PLAIN);
    for rcpt in to {
        builder = builder.to(rcpt.parse().map_err(|e| config(&e))?);
    }
    let email = builder
        .body(format!("{}\n\n{text}\n", parsed.summary))
        .map_err(|e| config(&e))?;
    let mut transport = match security {
        SmtpSecurity::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
        SmtpSecurity::StartTls => {
            AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host).map_err(|e| config(&e))?
        }
        SmtpSecurity::Tls => {
            AsyncSmtpTransport::<Tokio1Executor>::relay(host).map_err(|e| config(&e))?
        }
    }
    .port(*port)
    .timeout(Some(timeout));
    if let (Some(u), Some(p)) = (username, password) {
        transport = transport.credentials(Credentials::new(u.clone(), p.clone()));
    }
    transport
        .build()
        .send(email)
        .await
        .map(|_| ())
        .map_err(|e| DeliveryError::Smtp(e.to_string()))
}
