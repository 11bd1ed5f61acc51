//! `GET /metrics` over HTTP/1.1, by hand: a scrape is one small request
//! answered with `Connection: close`, which needs no HTTP library (hyper
//! would add a dozen crates for it). What a client can cost is bounded: a
//! request head of at most [`MAX_REQUEST`] bytes, [`DEADLINE`] for the whole
//! exchange, [`MAX_CLIENTS`] at once (more are closed at once), so a slow,
//! huge or garbled request cannot hold the daemon.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use super::{install, set_active, Metrics};

/// Largest request head read; a scraper's is a few hundred bytes.
const MAX_REQUEST: usize = 8 * 1024;
/// The longest one exchange may take, from accept to the last byte sent.
const DEADLINE: Duration = Duration::from_secs(5);
/// Exchanges served at once.
const MAX_CLIENTS: usize = 8;
/// How long a scrape waits for the enforcer's count of active bans before
/// showing the last one (the enforcer serves it between two batches).
const ACTIVE_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metrics: cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Active bans of one jail and set (`v4`, `v6`, `net4`, `net6`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetCount {
    pub jail: String,
    pub set: &'static str,
    pub count: u64,
}

/// Asks whoever holds the bans for their counts at each scrape; None when
/// it could not answer.
pub type ActiveBans =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Option<Vec<SetCount>>> + Send>> + Send + Sync>;

/// The metrics endpoint, bound and with its registry installed, not yet
/// serving.
pub struct Exporter {
    listener: TcpListener,
    metrics: &'static Metrics,
}

impl Exporter {
    /// Installs the registry (so the stages started after this count) and
    /// binds `addr`; None when metrics are not configured.
    pub async fn bind(addr: Option<SocketAddr>) -> Result<Option<Exporter>, MetricsError> {
        let Some(addr) = addr else { return Ok(None) };
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| MetricsError::Bind { addr, source })?;
        let metrics = install();
        Ok(Some(Exporter { listener, metrics }))
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until the runtime stops.
    pub async fn serve(self, active: ActiveBans) {
        if let Some(addr) = self.local_addr() {
            info!("metrics: serving http://{addr}/metrics");
        }
        let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
        loop {
            let (stream, peer) = match self.listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait, go on.
                    warn!("metrics: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                debug!(%peer, "metrics: too many clients, closed");
                continue;
            };
            let (metrics, active) = (self.metrics, Arc::clone(&active));
            tokio::spawn(async move {
                let served = tokio::time::timeout(DEADLINE, exchange(stream, metrics, active));
                if served.await.is_err() {
                    debug!(%peer, "metrics: client too slow, closed");
                }
                drop(slot);
            });
        }
    }
}

/// One request, one answer, then the connection closes.
async fn exchange(mut stream: TcpStream, metrics: &Metrics, active: ActiveBans) {
    let (status, body) = match read_head(&mut stream).await {
        Head::Complete(head) => answer(&head, metrics, &active).await,
        Head::TooLarge => (431, String::from("request too large\n")),
        Head::Closed => return,
    };
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Request Header Fields Too Large",
    };
    let kind = if status == 200 {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}

enum Head {
    Complete(Vec<u8>),
    TooLarge,
    Closed,
}

/// The request up to its blank line, never more than [`MAX_REQUEST`] bytes.
async fn read_head(stream: &mut TcpStream) -> Head {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Head::Closed,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
            return Head::Complete(buf);
        }
        if buf.len() >= MAX_REQUEST {
            return Head::TooLarge;
        }
    }
}

async fn answer(head: &[u8], metrics: &Metrics, active: &ActiveBans) -> (u16, String) {
    let Some((method, path)) = request_line(head) else {
        return (400, String::from("bad request\n"));
    };
    let path = path.split('?').next().unwrap_or_default();
    if path != "/metrics" {
        return (404, String::from("not found: try /metrics\n"));
    }
    if method != "GET" {
        return (405, String::from("only GET\n"));
    }
    if let Ok(Some(counts)) = tokio::time::timeout(ACTIVE_WAIT, active()).await {
        set_active(metrics, counts);
    }
    (200, metrics.encode())
}

/// `GET /metrics HTTP/1.1` → ("GET", "/metrics").
fn request_line(head: &[u8]) -> Option<(&str, &str)> {
    let end = head.iter().position(|&b| b == b'\n')?;
    let line = std::str::from_utf8(head.get(..end)?).ok()?.trim_end();
    let mut words = line.split(' ');
    let (method, path, version) = (words.next()?, words.next()?, words.next()?);
    (version.starts_with("HTTP/1.") && words.next().is_none()).then_some((method, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_are_read_or_refused() {
        assert_eq!(
            request_line(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(("GET", "/metrics"))
        );
        assert_eq!(request_line(b"GET /metrics\r\n\r\n"), None);
        assert_eq!(request_line(b"\xff\xfe garbage\r\n\r\n"), None);
        assert_eq!(request_line(b"no newline at all"), None);
    }
}
