//! Minimal HTTP/1.1 response parsing for the decrypted server stream
//! (RFC 9112): status line, headers, body by `Transfer-Encoding: chunked`,
//! `Content-Length`, or until the end of the stream. Pure, bounded, no I/O.

/// Largest accepted header block, in bytes.
pub const MAX_HEAD: usize = 64 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HttpError {
    #[error("HTTP response head is incomplete or larger than {MAX_HEAD} bytes")]
    IncompleteHead,
    #[error("malformed HTTP response: {0}")]
    Malformed(&'static str),
    #[error("HTTP status {0} (need 200)")]
    Status(u16),
    #[error("HTTP body is shorter than announced")]
    TruncatedBody,
    #[error("data after the HTTP response (a second response is not attested)")]
    TrailingData,
}

/// Returns the body of a `200` response that spans all of `bytes`.
pub fn response_body(bytes: &[u8]) -> Result<Vec<u8>, HttpError> {
    let end = bytes
        .windows(4)
        .take(MAX_HEAD)
        .position(|w| w == b"\r\n\r\n")
        .ok_or(HttpError::IncompleteHead)?;
    let head = std::str::from_utf8(&bytes[..end])
        .map_err(|_| HttpError::Malformed("head is not UTF-8"))?;
    let rest = &bytes[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    if !matches!(parts.next(), Some("HTTP/1.1" | "HTTP/1.0")) {
        return Err(HttpError::Malformed("status line"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or(HttpError::Malformed("status code"))?;
    if status != 200 {
        return Err(HttpError::Status(status));
    }
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or(HttpError::Malformed("header line"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n: usize = value
                .parse()
                .map_err(|_| HttpError::Malformed("content-length"))?;
            if length.is_some_and(|m| m != n) {
                return Err(HttpError::Malformed("conflicting content-length"));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if !value.eq_ignore_ascii_case("chunked") {
                return Err(HttpError::Malformed("unsupported transfer-encoding"));
            }
            chunked = true;
        }
    }
    if chunked {
        if length.is_some() {
            return Err(HttpError::Malformed("both content-length and chunked"));
        }
        return dechunk(rest);
    }
    match length {
        Some(n) if rest.len() < n => Err(HttpError::TruncatedBody),
        Some(n) if rest.len() > n => Err(HttpError::TrailingData),
        _ => Ok(rest.to_vec()),
    }
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, HttpError> {
    let mut out = Vec::new();
    loop {
        let eol = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or(HttpError::TruncatedBody)?;
        let size_text =
            std::str::from_utf8(&b[..eol]).map_err(|_| HttpError::Malformed("chunk size"))?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size =
            usize::from_str_radix(size_text, 16).map_err(|_| HttpError::Malformed("chunk size"))?;
        b = &b[eol + 2..];
        if size == 0 {
            // No trailers accepted: the final CRLF must end the stream.
            return match b {
                b"\r\n" => Ok(out),
                _ if b.len() < 2 => Err(HttpError::TruncatedBody),
                _ => Err(HttpError::TrailingData),
            };
        }
        let chunk = b.get(..size).ok_or(HttpError::TruncatedBody)?;
        out.extend_from_slice(chunk);
        if b.get(size..size + 2) != Some(b"\r\n") {
            return Err(HttpError::Malformed("chunk terminator"));
        }
        b = &b[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_chunked_and_close_delimited() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(response_body(r).unwrap(), b"{}");
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4;x=1\r\n\": 1\r\n1\r\n}\r\n0\r\n\r\n";
        assert_eq!(response_body(r).unwrap(), br#"{"a": 1}"#);
        let r = b"HTTP/1.0 200 OK\r\n\r\n{}";
        assert_eq!(response_body(r).unwrap(), b"{}");
    }

    #[test]
    fn errors_are_specific() {
        assert_eq!(
            response_body(b"HTTP/1.1 200 OK\r\n"),
            Err(HttpError::IncompleteHead)
        );
        assert_eq!(
            response_body(b"HTTP/1.1 401 No\r\n\r\n"),
            Err(HttpError::Status(401))
        );
        assert_eq!(
            response_body(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{}"),
            Err(HttpError::TruncatedBody)
        );
        assert_eq!(
            response_body(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n{}"),
            Err(HttpError::TrailingData)
        );
        assert_eq!(
            response_body(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n"),
            Err(HttpError::TruncatedBody)
        );
        assert!(response_body(b"SMTP 200\r\n\r\n").is_err());
        assert!(
            response_body(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err()
        );
    }
}
