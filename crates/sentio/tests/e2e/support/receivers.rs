//! Notification receivers started inside a test: a webhook endpoint over raw TCP that answers
//! 500 while told to fail, and a minimal SMTP server. Both record what they received.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One webhook request and the status it was answered with.
#[derive(Debug, Clone)]
pub struct Hook {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
    pub status: u16,
}

/// A webhook endpoint on loopback.
pub struct WebhookReceiver {
    pub url: String,
    pub failing: Arc<AtomicBool>,
    pub seen: Arc<Mutex<Vec<Hook>>>,
}

impl WebhookReceiver {
    /// Starts one that answers 500 while `failing`, 204 otherwise.
    pub async fn start(failing: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let failing = Arc::new(AtomicBool::new(failing));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (f, s) = (failing.clone(), seen.clone());
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (f, s) = (f.clone(), s.clone());
                tokio::spawn(async move {
                    let _ = serve_hook(sock, &f, &s).await;
                });
            }
        });
        Self { url, failing, seen }
    }

    /// What was received so far.
    pub fn hooks(&self) -> Vec<Hook> {
        self.seen.lock().unwrap().clone()
    }

    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }
}

async fn serve_hook(
    sock: tokio::net::TcpStream,
    failing: &AtomicBool,
    seen: &Mutex<Vec<Hook>>,
) -> std::io::Result<()> {
    let mut r = BufReader::new(sock);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let mut headers = std::collections::HashMap::new();
        loop {
            let mut h = String::new();
            r.read_line(&mut h).await?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        r.read_exact(&mut body).await?;
        let status = if failing.load(Ordering::SeqCst) {
            500
        } else {
            204
        };
        let get = |k: &str| headers.get(k).cloned().unwrap_or_default();
        seen.lock().unwrap().push(Hook {
            id: get("webhook-id"),
            timestamp: get("webhook-timestamp"),
            signature: get("webhook-signature"),
            body: String::from_utf8_lossy(&body).into_owned(),
            status,
        });
        let reason = if status == 500 {
            "Internal Server Error"
        } else {
            "No Content"
        };
        r.get_mut()
            .write_all(
                format!("HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\n\r\n").as_bytes(),
            )
            .await?;
    }
}

/// One mail: envelope and the message as sent.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

/// A minimal SMTP server on loopback (no TLS, no auth): accepts every message.
pub struct SmtpServer {
    pub port: u16,
    pub mails: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpServer {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let m = mails.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let m = m.clone();
                tokio::spawn(async move {
                    let _ = serve_smtp(sock, &m).await;
                });
            }
        });
        Self { port, mails }
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().unwrap().clone()
    }
}

async fn serve_smtp(sock: tokio::net::TcpStream, mails: &Mutex<Vec<Mail>>) -> std::io::Result<()> {
    let mut r = BufReader::new(sock);
    r.get_mut().write_all(b"220 test ESMTP\r\n").await?;
    let mut mail = Mail {
        from: String::new(),
        to: Vec::new(),
        data: String::new(),
    };
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_string();
        let upper = cmd.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            b"250-test\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            mail.from = cmd[10..].trim().to_string();
            b"250 OK\r\n"
        } else if upper.starts_with("RCPT TO:") {
            mail.to.push(cmd[8..].trim().to_string());
            b"250 OK\r\n"
        } else if upper == "DATA" {
            r.get_mut().write_all(b"354 go on\r\n").await?;
            loop {
                let mut l = String::new();
                if r.read_line(&mut l).await? == 0 {
                    return Ok(());
                }
                if l == ".\r\n" {
                    break;
                }
                mail.data.push_str(&l);
            }
            mails.lock().unwrap().push(mail.clone());
            mail.to.clear();
            b"250 queued\r\n"
        } else if upper == "QUIT" {
            r.get_mut().write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else if upper == "RSET" || upper == "NOOP" {
            b"250 OK\r\n"
        } else {
            b"502 not implemented\r\n"
        };
        r.get_mut().write_all(reply).await?;
    }
}
