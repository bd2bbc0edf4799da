//! A minimal HTTP/1.1 client for 127.0.0.1 (admin ports, VictoriaMetrics,
//! QuestDB's `/exec`), with no client dependency.

use std::time::Duration;

pub(crate) fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A minimal HTTP/1.1 request on 127.0.0.1 (no client dependency needed):
/// (status code, body), `None` when the server is not there.
pub fn http(port: u16, method: &str, path: &str, form: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    // Read until the response is complete: some servers (QuestDB) keep the
    // connection open despite `Connection: close`.
    let mut raw = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    while !response_complete(&raw) {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
            Err(_) if !raw.is_empty() => break,
            Err(_) => return None,
        }
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Some((code, body))
}

/// The value of an unlabelled sample `name` on the admin port's `/metrics`
/// (`None` when the port does not answer or has no such sample).
pub fn metric(admin_port: u16, name: &str) -> Option<f64> {
    let (_, page) = http(admin_port, "GET", "/metrics", "")?;
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Whether `raw` holds a whole HTTP/1.1 response: its headers, and the body
/// its `Content-Length` or chunked encoding announces (no body for 204/304).
fn response_complete(raw: &[u8]) -> bool {
    let text = String::from_utf8_lossy(raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let head = head.to_ascii_lowercase();
    let status = head.split_whitespace().nth(1).unwrap_or_default();
    if status == "204" || status == "304" {
        return true;
    }
    if let Some(length) = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        return body.len() >= length;
    }
    if head.contains("transfer-encoding: chunked") {
        // The last chunk: a size of zero (written "0" or "00"), then an empty line.
        return body
            .strip_suffix("\r\n\r\n")
            .map(|b| b.rsplit("\r\n").next().unwrap_or(b))
            .is_some_and(|last| !last.is_empty() && last.bytes().all(|c| c == b'0'));
    }
    false
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}
