//! A loopback HTTP proxy in front of a real node that can be told to fail chosen routes: the
//! node keeps running and answering everything else, so a test can reproduce "the node fails
//! between two steps of a send" exactly, without timing a kill.
//!
//! Each client connection carries one request: the proxy reads the request head, answers 503
//! itself when its path starts with a blocked prefix, and otherwise forwards it upstream with
//! `Connection: close` and copies the answer back (streams such as `/v1/subscribe` included).
//!
//! Invariant: every thread it starts ends when the proxy drops (the listener is non-blocking
//! and polled; a forwarded connection ends when either side closes).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Largest request head read before the connection is dropped.
const MAX_HEAD_BYTES: usize = 64 * 1024;

pub struct FaultProxy {
    pub addr: SocketAddr,
    blocked: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    /// Listens on `listen` (a loopback address) and forwards to `upstream`.
    pub fn start(listen: SocketAddr, upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind(listen).expect("bind the fault proxy");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let addr = listener.local_addr().expect("proxy address");
        let blocked: Arc<Mutex<Vec<String>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (accept_blocked, accept_stop) = (blocked.clone(), stop.clone());
        std::thread::spawn(move || {
            while !accept_stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let blocked = accept_blocked.clone();
                        std::thread::spawn(move || serve(client, upstream, &blocked));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FaultProxy { addr, blocked, stop }
    }

    /// Requests whose path starts with `prefix` get a 503 from now on.
    pub fn block(&self, prefix: &str) {
        self.blocked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(prefix.to_string());
    }

    /// Every route is forwarded again.
    pub fn unblock_all(&self) {
        self.blocked.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(mut client: TcpStream, upstream: SocketAddr, blocked: &Mutex<Vec<String>>) {
    let _ = client.set_nonblocking(false);
    let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
    let Some((head, rest)) = read_head(&mut client) else {
        return;
    };
    let text = String::from_utf8_lossy(&head).to_string();
    let path = text.split_whitespace().nth(1).unwrap_or("").to_string();
    let refused = blocked
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .any(|prefix| path.starts_with(prefix.as_str()));
    if refused {
        let body = r#"{"ok":false,"error":{"code":"injected_fault","message":"the test proxy refuses this route"}}"#;
        let answer = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = client.write_all(answer.as_bytes());
        return;
    }
    let Ok(mut server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(3)) else {
        return;
    };
    let mut forwarded: Vec<String> = text
        .split("\r\n")
        .filter(|line| !line.is_empty() && !line.to_ascii_lowercase().starts_with("connection:"))
        .map(String::from)
        .collect();
    forwarded.push("connection: close".into());
    let head = format!("{}\r\n\r\n", forwarded.join("\r\n"));
    if server.write_all(head.as_bytes()).is_err() || server.write_all(&rest).is_err() {
        return;
    }
    // The rest of the body (if any) upstream, the answer back, until either side closes.
    if let (Ok(mut from_client), Ok(mut to_server)) = (client.try_clone(), server.try_clone()) {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from_client, &mut to_server);
        });
    }
    let _ = std::io::copy(&mut server, &mut client);
    let _ = client.shutdown(Shutdown::Both);
}

/// The request head (without the blank line) and whatever of the body came with it.
fn read_head(client: &mut TcpStream) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = client.read(&mut chunk).ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buffer.split_off(end + 4);
            buffer.truncate(end);
            return Some((buffer, rest));
        }
        if buffer.len() > MAX_HEAD_BYTES {
            return None;
        }
    }
}
