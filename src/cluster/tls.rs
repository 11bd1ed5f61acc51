//! The client for rediss://: rustls over ring, trusting `tls_ca` or else
//! the system's roots, with this node's certificate when `tls_cert` and
//! `tls_key` are given. The files were checked when the config was
//! loaded; they are read again here, once, when the link starts.

use std::sync::Once;

use redis::{ClientTlsConfig, TlsCertificates};

use crate::config::cluster::{ClusterConfig, TlsFiles};

/// The Redis client for `cluster`'s URL, TLS or not.
pub(super) fn client(cluster: &ClusterConfig) -> Result<redis::Client, String> {
    let Some(files) = &cluster.tls else {
        return redis::Client::open(cluster.redis.as_str()).map_err(|e| e.to_string());
    };
    provider();
    redis::Client::build_with_tls(cluster.redis.as_str(), certificates(files)?)
        .map_err(|e| e.to_string())
}

/// ring, chosen once for the process: rustls refuses to pick one itself
/// should a dependency ever bring in a second provider.
fn provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Newer rustls marks ring's provider deprecated for want of
        // post-quantum key exchange; it stays the choice here because the
        // alternative (aws-lc-rs) needs cmake and a C toolchain on the
        // builder and grows the binary, for a link between a farm's own hosts.
        #[allow(deprecated)]
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn certificates(files: &TlsFiles) -> Result<TlsCertificates, String> {
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let root_cert = files.ca.as_deref().map(read).transpose()?;
    let client_tls = match &files.client {
        Some((cert, key)) => Some(ClientTlsConfig {
            client_cert: read(cert)?,
            client_key: read(key)?,
        }),
        None => None,
    };
    Ok(TlsCertificates {
        client_tls,
        root_cert,
    })
}

/// What to check when a connection failed on TLS rather than on the
/// network (None: not a TLS failure).
pub(super) fn hint(e: &str) -> Option<&'static str> {
    let e = e.to_ascii_lowercase();
    if e.contains("certificaterequired") || e.contains("badcertificate") {
        Some(
            "Redis asks for a client certificate: set cluster.tls_cert and cluster.tls_key \
             (a certificate signed by a CA Redis trusts)",
        )
    } else if e.contains("certificate") || e.contains("handshake") || e.contains("alert") {
        Some(
            "check cluster.tls_ca (the CA that signed the server's certificate) and that the \
             certificate names the host of the URL",
        )
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::hint;

    #[test]
    fn tls_failures_say_what_to_check() {
        let ca = hint("invalid peer certificate: UnknownIssuer").unwrap_or_default();
        assert!(ca.contains("tls_ca"), "{ca}");
        let client = hint("received fatal alert: CertificateRequired").unwrap_or_default();
        assert!(client.contains("tls_cert"), "{client}");
        assert_eq!(hint("Connection refused (os error 111)"), None);
    }
}
