//! The one tiny HTTP/1.1 server behind the Prometheus endpoint and the AdminServer: GET of a few
//! paths, one request per connection, `Connection: close`. It reads the request head only (no
//! bodies), refuses heads over 8 KiB and drops a client that has not sent one within 10 s.

use std::future::Future;
use std::time::Duration;

use crate::signal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A request head larger than this is refused.
const MAX_REQUEST_BYTES: usize = 8192;
/// How long a client may take to send its request head.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What a handler sees of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The target without its query string.
    pub path: String,
}

/// What a handler answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status line after the version, e.g. `200 OK`.
    pub status: &'static str,
    /// The Content-Type header's value.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

/// Accepts connections until shutdown; each request goes to `handler`, whose `None` closes the
/// connection without an answer (the server is shutting down).
pub async fn serve<H, F>(listener: TcpListener, mut shutdown: signal::Receiver<bool>, handler: H)
where
    H: Fn(Request) -> F + Clone + Send + 'static,
    F: Future<Output = Option<Response>> + Send + 'static,
{
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    continue;
                };
                tokio::spawn(answer(stream, handler.clone()));
            }
        }
    }
}

async fn answer<H, F>(mut stream: TcpStream, handler: H)
where
    H: Fn(Request) -> F,
    F: Future<Output = Option<Response>>,
{
    let Ok(Some(head)) = tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut stream)).await else {
        return;
    };
    let Some(response) = handler(parse_head(&head)).await else {
        return;
    };
    let _ = stream.write_all(render(&response).as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// The method and path of a request head (empty strings where it has none).
fn parse_head(head: &str) -> Request {
    let mut words = head.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    Request { method: method.to_string(), path: path.to_string() }
}

fn render(response: &Response) -> String {
    format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        response.status,
        response.content_type,
        response.body.len(),
        response.body
    )
}

/// Reads the request head (up to the blank line); `None` if it is too long or the peer left.
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 || head.len() + n > MAX_REQUEST_BYTES {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_gives_its_method_and_path_without_the_query() {
        let request = parse_head("GET /commands/stat?x=1 HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(request, Request { method: "GET".into(), path: "/commands/stat".into() });
        assert_eq!(parse_head(""), Request { method: String::new(), path: String::new() });
    }

    #[test]
    fn a_response_carries_its_length_and_closes() {
        let text =
            render(&Response { status: "200 OK", content_type: "text/plain", body: "hé".into() });
        assert!(text.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"), "{text}");
        assert!(text.contains("Content-Length: 3\r\nConnection: close\r\n\r\nhé"), "{text}");
    }
}
