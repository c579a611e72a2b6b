//! `rediss://`: the cache talks to a redis-server over TLS, checking the server's certificate
//! against a private CA given by `REDIS_TLS_CA_FILE`, and refuses a server it cannot verify.
//! The test makes a self-signed certificate with the `openssl` command and starts its own
//! TLS-only redis-server on a free loopback port.
//!
//! Run with `cargo test -p vitals-cache --test tls`.

mod common;

use std::ffi::OsStr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{build, config, eventually, free_port, RedisProcess};
use vitals_cache::TieredCache;

/// A TLS-only redis-server, its certificates' directory, and its CA's certificate.
struct TlsRedis {
    port: u16,
    _server: RedisProcess,
    _dir: tempfile::TempDir,
    ca: std::path::PathBuf,
}

fn start_tls_redis() -> TlsRedis {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    // A CA and a server certificate it signs: webpki refuses a self-signed CA certificate
    // presented as the server's own.
    let openssl = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("the openssl command is needed to make test certificates");
        assert!(status.success(), "openssl {args:?} failed");
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=vitals test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "key.pem",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        path("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
        "-out",
        "cert.pem",
    ]);
    let (cert, key, ca) = (path("cert.pem"), path("key.pem"), path("ca.pem"));
    let port = free_port();
    let tls_port = port.to_string();
    let options: [(&str, &OsStr); 6] = [
        ("--port", "0".as_ref()),
        ("--tls-port", tls_port.as_ref()),
        ("--tls-cert-file", cert.as_ref()),
        ("--tls-key-file", key.as_ref()),
        ("--tls-ca-cert-file", ca.as_ref()),
        ("--tls-auth-clients", "no".as_ref()),
    ];
    let server = RedisProcess::spawn(options.into_iter().flat_map(|(o, v)| [o.as_ref(), v]));
    TlsRedis {
        port,
        _server: server,
        ca,
        _dir: dir,
    }
}

/// Whether `cache` is connected to its Redis within `limit`.
async fn connects(cache: &TieredCache, limit: Duration) -> bool {
    eventually(limit, || async { cache.stats().redis_connected }).await
}

#[tokio::test]
async fn rediss_with_a_private_ca_stores_reads_and_subscribes() {
    let server = start_tls_redis();
    let url = format!("rediss://127.0.0.1:{}", server.port);
    let cfg = config("tls", &url).with_tls_ca(Some(&server.ca));
    // The server may take a moment to listen; the cache heals by itself once it does.
    let (cache, other) = (build(cfg.clone()).await, build(cfg).await);
    assert!(
        connects(&cache, Duration::from_secs(10)).await,
        "no TLS connection: {:?}",
        cache.stats()
    );
    cache
        .set(
            "student:9:summary",
            &"over tls",
            Duration::from_secs(60),
            &[],
        )
        .await
        .unwrap();
    // Read through the other instance's L2 (its L1 is empty): the value crossed TLS twice.
    assert!(
        eventually(Duration::from_secs(10), || async {
            other
                .get_cloned::<String>("student:9:summary")
                .await
                .as_deref()
                == Some("over tls")
        })
        .await
    );
    assert_eq!(other.stats().l2_hits, 1);
    assert!(
        other.wait_subscribed(Duration::from_secs(10)).await,
        "pub/sub over TLS"
    );
    cache.shutdown().await;
    other.shutdown().await;
}

#[tokio::test]
async fn rediss_without_the_ca_refuses_the_server_and_serves_from_l1() {
    let server = start_tls_redis();
    let url = format!("rediss://127.0.0.1:{}", server.port);
    // First show the server is up and speaks TLS to a client that trusts its CA.
    let trusted = build(config("tls-trusted", &url).with_tls_ca(Some(&server.ca))).await;
    assert!(connects(&trusted, Duration::from_secs(10)).await);
    // No CA: the system's trust store does not know the private CA, so this client must
    // never connect (it retries every 50 ms; two seconds is forty attempts).
    let untrusted = build(config("tls-untrusted", &url)).await;
    let v: Result<Arc<String>, std::io::Error> = untrusted
        .get_or_load("k", Duration::from_secs(60), &[], || async {
            Ok("loaded".into())
        })
        .await;
    assert_eq!(*v.unwrap(), "loaded", "no error reaches the caller");
    assert!(
        !connects(&untrusted, Duration::from_secs(2)).await,
        "a server with an unverifiable certificate must not be used"
    );
    trusted.shutdown().await;
    untrusted.shutdown().await;
}

#[tokio::test]
async fn an_unreadable_ca_file_fails_the_build_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("ca.pem");
    let cfg = config("tls-no-ca", "rediss://127.0.0.1:1").with_tls_ca(Some(&missing));
    let err = TieredCache::builder(cfg).build().await.unwrap_err();
    assert!(err.to_string().contains("REDIS_TLS_CA_FILE"), "{err}");
}
