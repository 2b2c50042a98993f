//! The proxy's HTTP/1.1 plumbing: requests and responses, reading heads and bodies (with
//! limits), forwarding upstream, and writing responses back. Only what DynamoDB's JSON protocol
//! over plain HTTP needs.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// `host:port` of the upstream.
pub(super) struct Upstream {
    pub(super) authority: String,
}

/// `host:port` of a plain-HTTP URL (`http://host:port/...`, or `host:port`); port 80 when the
/// URL names none.
pub(crate) fn authority(url: &str) -> io::Result<String> {
    let invalid =
        |why: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("{why}: {url:?}"));
    let rest = if let Some(rest) = url.strip_prefix("http://") {
        rest
    } else if url.starts_with("https://") {
        return Err(invalid("only plain http:// servers are supported"));
    } else {
        url
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    if authority.is_empty() {
        return Err(invalid("no host in the URL"));
    }
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));
    Ok(if has_port {
        authority.to_string()
    } else {
        format!("{authority}:80")
    })
}

pub(super) struct Request {
    pub(super) method: String,
    pub(super) target: String,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
}

impl Request {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    pub(super) fn operation(&self) -> String {
        let target = self.header("x-amz-target").unwrap_or("");
        target.rsplit('.').next().unwrap_or(target).to_string()
    }

    pub(super) fn wants_close(&self) -> bool {
        has_token(self.header("connection"), "close")
    }
}

pub(super) struct Response {
    pub(super) status: u16,
    pub(super) reason: String,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
}

pub(super) const MAX_HEAD: usize = 64 * 1024;

pub(super) fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

pub(super) fn has_token(value: Option<&str>, token: &str) -> bool {
    value.is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

pub(super) fn bad_data(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// Reads more bytes into `buf`; returns how many (0 at EOF).
pub(super) async fn fill<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> io::Result<usize> {
    let mut chunk = [0u8; 16 * 1024];
    let n = stream.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

pub(super) async fn fill_to<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    len: usize,
) -> io::Result<()> {
    while buf.len() < len {
        if fill(stream, buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(())
}

pub(super) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The head (start line and headers) of the next message, without the blank line; `None` on a
/// clean EOF between messages.
pub(super) async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> io::Result<Option<(String, Vec<(String, String)>)>> {
    loop {
        // Tolerate stray CRLFs between messages (RFC 9112 §2.2).
        while buf.starts_with(b"\r\n") {
            buf.drain(..2);
        }
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head: Vec<u8> = buf.drain(..end + 4).collect();
            let head = String::from_utf8_lossy(&head[..end]).into_owned();
            let mut lines = head.split("\r\n");
            let start = lines.next().unwrap_or("").to_string();
            let mut headers = Vec::new();
            for line in lines {
                let (name, value) = line
                    .split_once(':')
                    .ok_or_else(|| bad_data(format!("bad header line {line:?}")))?;
                headers.push((name.trim().to_string(), value.trim().to_string()));
            }
            return Ok(Some((start, headers)));
        }
        if buf.len() > MAX_HEAD {
            return Err(bad_data("header section too large"));
        }
        if fill(stream, buf).await? == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
    }
}

pub(super) async fn read_line<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> io::Result<String> {
    loop {
        if let Some(end) = find(buf, b"\r\n") {
            let line: Vec<u8> = buf.drain(..end + 2).collect();
            return Ok(String::from_utf8_lossy(&line[..end]).into_owned());
        }
        if buf.len() > MAX_HEAD {
            return Err(bad_data("line too long"));
        }
        if fill(stream, buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
}

/// A message body framed by `headers`: chunked, `Content-Length`, or (when `eof_framed`, i.e.
/// for responses) everything up to EOF.
pub(super) async fn read_body<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    headers: &[(String, String)],
    eof_framed: bool,
) -> io::Result<Vec<u8>> {
    if has_token(header(headers, "transfer-encoding"), "chunked") {
        let mut body = Vec::new();
        loop {
            let line = read_line(stream, buf).await?;
            let size = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| bad_data(format!("bad chunk size {line:?}")))?;
            if size == 0 {
                // Trailers, up to the blank line.
                while !read_line(stream, buf).await?.is_empty() {}
                return Ok(body);
            }
            fill_to(stream, buf, size + 2).await?;
            body.extend(buf.drain(..size));
            if !buf.starts_with(b"\r\n") {
                return Err(bad_data("chunk not followed by CRLF"));
            }
            buf.drain(..2);
        }
    } else if let Some(len) = header(headers, "content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| bad_data(format!("bad Content-Length {len:?}")))?;
        fill_to(stream, buf, len).await?;
        Ok(buf.drain(..len).collect())
    } else if eof_framed {
        while fill(stream, buf).await? > 0 {}
        Ok(std::mem::take(buf))
    } else {
        Ok(Vec::new())
    }
}

pub(super) async fn read_request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> io::Result<Option<Request>> {
    let Some((start, headers)) = read_head(stream, buf).await? else {
        return Ok(None);
    };
    let mut parts = start.split_whitespace();
    let (Some(method), Some(target), Some(_version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad_data(format!("bad request line {start:?}")));
    };
    if has_token(header(&headers, "expect"), "100-continue") {
        // Harmless if the client did not wait and the body is already on its way.
        stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
        stream.flush().await?;
    }
    let body = read_body(stream, buf, &headers, false).await?;
    Ok(Some(Request {
        method: method.to_string(),
        target: target.to_string(),
        headers,
        body,
    }))
}

/// Headers that describe one hop's connection or framing; never copied across the proxy.
pub(super) const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "content-length",
    "te",
    "trailer",
    "upgrade",
    "expect",
];

pub(super) fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
}

/// Sends `request` (with `body` in place of its own) to the upstream on a new connection and
/// reads the whole response.
pub(super) async fn forward(
    upstream: &Upstream,
    request: &Request,
    body: &[u8],
) -> io::Result<Response> {
    let mut stream = TcpStream::connect(&upstream.authority).await?;
    let _ = stream.set_nodelay(true);
    let mut head = format!("{} {} HTTP/1.1\r\n", request.method, request.target);
    head.push_str(&format!("Host: {}\r\n", upstream.authority));
    for (name, value) in &request.headers {
        // Accept-Encoding goes too: bodies the proxy rewrites must come back uncompressed.
        if is_hop_by_hop(name)
            || name.eq_ignore_ascii_case("host")
            || name.eq_ignore_ascii_case("accept-encoding")
        {
            continue;
        }
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.flush().await?;

    let mut buf = Vec::new();
    loop {
        let (start, headers) = read_head(&mut stream, &mut buf)
            .await?
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        let mut parts = start.splitn(3, ' ');
        let _version = parts.next();
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad_data(format!("bad status line {start:?}")))?;
        let reason = parts.next().unwrap_or("").to_string();
        if (100..200).contains(&status) {
            continue; // interim response; the real one follows
        }
        let body = if status == 204 || status == 304 || request.method.eq_ignore_ascii_case("HEAD")
        {
            Vec::new()
        } else {
            read_body(&mut stream, &mut buf, &headers, true).await?
        };
        return Ok(Response {
            status,
            reason,
            headers,
            body,
        });
    }
}

pub(super) async fn write_response<S: AsyncWrite + Unpin>(
    stream: &mut S,
    response: &Response,
    close: bool,
) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", response.status, response.reason);
    for (name, value) in &response.headers {
        if !is_hop_by_hop(name) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str(&format!("Content-Length: {}\r\n", response.body.len()));
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&response.body).await?;
    stream.flush().await
}
