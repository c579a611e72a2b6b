//! [`detect_pooling`]: whether the server side shares its server connections between client
//! connections (PgBouncer's transaction or statement mode), seen from two client connections.
//!
//! What it sees: client A runs `SELECT pg_backend_pid()` and stays connected; client B then
//! runs the same. Under transaction pooling A's server connection went back to PgBouncer when
//! A's statement ended, and PgBouncer (last in, first out by default) gives it to B: the same
//! pid. In session mode A keeps its server connection and B gets another (or waits, when
//! `default_pool_size` is reached: B's statement is given a second); directly on PostgreSQL
//! every client is its own backend. `inet_server_port()` beside the port connected to tells a
//! proxy from a direct connection.
//!
//! What it cannot see: a transaction-mode PgBouncer so busy that other clients take A's server
//! connection first on every try, or one with `server_round_robin = 1` and several idle
//! server connections, looks like session mode (a false warning, never a false all-clear);
//! statement mode looks like transaction mode; through a Unix socket the proxy check says
//! nothing.

use std::time::Duration;

use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection, Row};

/// Tries of the two-client check before it says no sharing was seen.
const TRIES: usize = 3;
/// How long client B's statement may wait for a server connection (a session-mode PgBouncer
/// whose pool is full makes it wait).
const SECOND_CLIENT_WAIT: Duration = Duration::from_secs(1);

/// What [`detect_pooling`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum PoolingCheck {
    /// Two client connections ran on one server connection: transaction (or statement)
    /// pooling, what `DB_PGBOUNCER=transaction` is for.
    SharedServer,
    /// No sharing in any try, and the server's port is not the one connected to: a proxy that
    /// keeps a server connection per client, most likely PgBouncer in session mode.
    ProxyWithoutSharing {
        /// The port PostgreSQL itself listens on (`inet_server_port()`).
        server_port: u16,
    },
    /// No sharing, and the server's port is the one connected to: PostgreSQL directly.
    Direct,
    /// No sharing; whether there is a proxy is unknown (a Unix socket, or no port reported).
    NoSharingSeen,
}

impl PoolingCheck {
    /// Whether server connections were seen shared between clients.
    #[must_use]
    pub fn shares_server_connections(self) -> bool {
        self == Self::SharedServer
    }
}

/// Opens two client connections with `options`, up to three times, and says whether they
/// shared a server connection, and if not whether a proxy stands between (see the module's
/// docs for what this can and cannot tell). Costs up to six connections and six one-row
/// statements; the connections are closed before it returns.
///
/// `options` should be the pool's own (through PgBouncer: no startup options).
///
/// # Errors
/// The error of a connection or a statement of client A (client B waiting past a second is
/// not an error: it counts as no sharing).
pub async fn detect_pooling(options: &PgConnectOptions) -> Result<PoolingCheck, sqlx::Error> {
    let mut server_port = None;
    for _ in 0..TRIES {
        let mut a = options.connect().await?;
        let (pid_a, port) = backend(&mut a).await?;
        server_port = port;
        let shared = match tokio::time::timeout(SECOND_CLIENT_WAIT, async {
            let mut b = options.connect().await?;
            let (pid_b, _) = backend(&mut b).await?;
            let _ = b.close().await;
            Ok::<_, sqlx::Error>(pid_b == pid_a)
        })
        .await
        {
            Ok(outcome) => outcome?,
            Err(_waited) => false,
        };
        let _ = a.close().await;
        if shared {
            return Ok(PoolingCheck::SharedServer);
        }
    }
    let connected = (options.get_socket().is_none()).then(|| options.get_port());
    Ok(match (server_port, connected) {
        (Some(server), Some(client)) if server == client => PoolingCheck::Direct,
        (Some(server_port), Some(_)) => PoolingCheck::ProxyWithoutSharing { server_port },
        _ => PoolingCheck::NoSharingSeen,
    })
}

/// The backend pid and the server's port, in one simple query (no prepared statement).
async fn backend(conn: &mut PgConnection) -> Result<(i32, Option<u16>), sqlx::Error> {
    let row = sqlx::raw_sql("SELECT pg_backend_pid(), inet_server_port()")
        .fetch_one(&mut *conn)
        .await?;
    let pid: i32 = row.try_get(0)?;
    let port: Option<i32> = row.try_get(1)?;
    Ok((pid, port.and_then(|p| u16::try_from(p).ok())))
}
