//! The control plane: a Unix socket the daemon serves and the CLI talks to
//! (`nftjail status`, `ban`, `unban`, `banned`, `reload`, and fail2ban-client's
//! forms). [`protocol`] is the wire format, [`server`] the daemon's listener,
//! [`client`] the CLI's side.

pub mod client;
mod peers;
pub mod protocol;
pub mod server;
