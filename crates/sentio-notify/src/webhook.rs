//! Webhooks signed in the Standard Webhooks scheme: the headers `webhook-id` (the message id,
//! the same at every attempt), `webhook-timestamp` (seconds since the epoch, at this attempt)
//! and `webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`, keyed by the
//! bytes of the channel's secret `whsec_<base64>`.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::DeliveryError;

/// The prefix of a webhook secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// A new random secret (32 bytes): `whsec_<base64>`.
pub fn new_secret() -> String {
    let mut key = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key)
        .expect("the system's random source works");
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

/// The key bytes of `secret`, if it is `whsec_` and base64 of 16 to 64 bytes.
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    let key = STANDARD.decode(secret.strip_prefix(SECRET_PREFIX)?).ok()?;
    (16..=64).contains(&key.len()).then_some(key)
}

/// The `webhook-signature` value for message `id` sent at `timestamp` (seconds) with `body`.
pub fn signature(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &str,
) -> Result<String, DeliveryError> {
    let key = secret_key(secret)
        .ok_or_else(|| DeliveryError::Config("the secret is not whsec_<base64>".into()))?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let tag = ring::hmac::sign(&key, format!("{id}.{timestamp}.{body}").as_bytes());
    Ok(format!("v1,{}", STANDARD.encode(tag.as_ref())))
}

/// POSTs `body` to `url`, signed; `Ok` on a 2xx answer.
pub async fn send(
    url: &str,
    secret: &str,
    id: &str,
    body: &str,
    timeout: Duration,
) -> Result<(), DeliveryError> {
    let timestamp = sentio_core::time::now_ms() / 1_000;
    let sig = signature(secret, id, timestamp, body)?;
    let (url, id, body) = (url.to_string(), id.to_string(), body.to_string());
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .max_redirects(0)
            .build()
            .into();
        let resp = agent
            .post(&url)
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", &sig)
            .send(body.as_bytes())
            .map_err(|e| DeliveryError::Transport(e.to_string()))?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(DeliveryError::Status(status))
        }
    })
    .await
    .map_err(|e| DeliveryError::Transport(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_like_the_standard_webhooks_reference() {
        // The example of the Standard Webhooks specification's reference libraries.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(signature("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "i", 1, "b").is_err());
        let fresh = new_secret();
        assert_eq!(secret_key(&fresh).map(|k| k.len()), Some(32));
        assert_ne!(fresh, new_secret());
    }
}
