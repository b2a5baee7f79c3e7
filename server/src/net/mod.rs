//! The sockets the shell uses. Built normally these are tokio's own types, re-exported: nothing
//! changes in production. Built with `--cfg madsim` (tier 2 of `sim`), they are thin wrappers
//! over madsim's simulated TCP that offer the subset of tokio's API the connection tasks use.

#[cfg(madsim)]
mod sim;

#[cfg(madsim)]
pub use sim::{TcpListener, TcpStream};
#[cfg(not(madsim))]
pub use tokio::net::{TcpListener, TcpStream};
