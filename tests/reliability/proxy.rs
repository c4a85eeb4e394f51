//! A TCP forwarder to PostgreSQL that a test can cut (every connection closed, nothing
//! accepted) and restore on the same port: PostgreSQL "restarts" for the daemon without the
//! real server, which other tests share, going anywhere.

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub struct Proxy {
    pub port: u16,
    upstream: String,
    cut: CancellationToken,
}

impl Proxy {
    /// Forwards a free port (`port` 0) or `port` to `upstream` (`host:port`).
    pub async fn start(port: u16, upstream: &str) -> Self {
        let mut listener = None;
        // The port was just released by the previous proxy: give the kernel a moment.
        for _ in 0..50 {
            match TcpListener::bind(("127.0.0.1", port)).await {
                Ok(l) => {
                    listener = Some(l);
                    break;
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        }
        let listener = listener.expect("proxy binds");
        let port = listener.local_addr().expect("addr").port();
        let cut = CancellationToken::new();
        let stop = cut.clone();
        let target = upstream.to_owned();
        tokio::spawn(async move {
            loop {
                let (mut client, _) = tokio::select! {
                    _ = stop.cancelled() => return,
                    accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => return },
                };
                let stop = stop.clone();
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = stop.cancelled() => {
                            let _ = client.shutdown().await;
                        }
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    }
                });
            }
        });
        Self {
            port,
            upstream: upstream.to_owned(),
            cut,
        }
    }

    /// PostgreSQL goes away: open connections close, new ones are refused.
    pub fn cut(&self) {
        self.cut.cancel();
    }

    /// PostgreSQL is back on the same port.
    pub async fn restore(&self) -> Self {
        Self::start(self.port, &self.upstream).await
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut.cancel();
    }
}
