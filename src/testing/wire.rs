//! The two raw DynamoDB requests the kit sends without the SDK: the readiness probe of a server
//! it started (ListTables) and the best-effort clean-up when a [`TestDb`](super::TestDb) is
//! dropped (DeleteTable). Both go to local servers that do not check signatures, so the
//! `Authorization` header only carries what DynamoDB Local needs to pick the database: the
//! access key and the region.

use std::io::{self, Read, Write};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Access key and region of the probe (any pair works for ListTables).
pub(crate) const PROBE_IDENTITY: (&str, &str) = ("test", "us-east-1");

/// An HTTP/1.1 request for DynamoDB `operation` with a JSON `body`, closing the connection.
fn request(authority: &str, operation: &str, body: &str, identity: (&str, &str)) -> Vec<u8> {
    let (access_key, region) = identity;
    format!(
        "POST / HTTP/1.1\r\nHost: {authority}\r\n\
         X-Amz-Target: DynamoDB_20120810.{operation}\r\n\
         Content-Type: application/x-amz-json-1.0\r\n\
         Authorization: AWS4-HMAC-SHA256 \
         Credential={access_key}/20260101/{region}/dynamodb/aws4_request, \
         SignedHeaders=host, Signature=0\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The status code of a raw HTTP response.
fn status(response: &[u8]) -> Option<u16> {
    let line = response.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Whether a DynamoDB server answers ListTables at `authority` (`host:port`) within `timeout`.
pub(crate) async fn answers_list_tables(authority: &str, timeout: Duration) -> bool {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(authority).await?;
        stream
            .write_all(&request(authority, "ListTables", "{}", PROBE_IDENTITY))
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        io::Result::Ok(response)
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(response)) => {
            status(&response) == Some(200) && response.windows(10).any(|w| w == b"TableNames")
        }
        _ => false,
    }
}

/// Deletes `table` with a blocking request (for `Drop`, where no runtime can be relied on);
/// `Ok` when it was deleted or did not exist.
pub(crate) fn delete_table_blocking(
    authority: &str,
    table: &str,
    identity: (&str, &str),
    timeout: Duration,
) -> io::Result<()> {
    let addr = std::net::ToSocketAddrs::to_socket_addrs(authority)?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))?;
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let body = serde_json::json!({ "TableName": table }).to_string();
    stream.write_all(&request(authority, "DeleteTable", &body, identity))?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let not_found = response
        .windows(25)
        .any(|w| w == b"ResourceNotFoundException");
    match status(&response) {
        Some(200) => Ok(()),
        Some(_) if not_found => Ok(()),
        other => Err(io::Error::other(format!(
            "DeleteTable {table} answered {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_the_identity_and_a_content_length() {
        let raw = request("127.0.0.1:8000", "ListTables", "{}", ("AK", "eu-west-1"));
        let raw = String::from_utf8(raw).unwrap();
        assert!(raw.starts_with("POST / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"));
        assert!(raw.contains("X-Amz-Target: DynamoDB_20120810.ListTables\r\n"));
        assert!(raw.contains("Credential=AK/20260101/eu-west-1/dynamodb/aws4_request"));
        assert!(raw.ends_with("Content-Length: 2\r\nConnection: close\r\n\r\n{}"));
    }

    #[test]
    fn status_reads_the_status_line() {
        assert_eq!(status(b"HTTP/1.1 200 OK\r\n\r\n"), Some(200));
        assert_eq!(
            status(b"HTTP/1.1 400 Bad Request\r\nX: y\r\n\r\n"),
            Some(400)
        );
        assert_eq!(status(b""), None);
        assert_eq!(status(b"garbage"), None);
    }
}
