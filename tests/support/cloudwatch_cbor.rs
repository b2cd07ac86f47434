//! moto as the current AWS SDK for CloudWatch needs it. From release 1.100 the Rust SDK speaks only
//! Smithy RPC v2 CBOR to CloudWatch (`POST /service/GraniteServiceVersion20100801/operation/OP`,
//! `smithy-protocol: rpc-v2-cbor`, CBOR bodies); moto speaks CloudWatch's query protocol (form-encoded
//! `Action=OP`, XML answers). This front sits before moto on its own port: CloudWatch's CBOR requests
//! for the operations the tests use (PutMetricData, GetMetricStatistics) are translated into query
//! requests and moto's XML answers (errors included) back into CBOR, which the SDK's own deserialisers
//! then judge; every other request is relayed to moto byte for byte. moto still stores and aggregates
//! the metrics: the front only translates.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use ciborium::Value;

use super::git_server::percent_encode;
use super::thread_server::{Stop, ThreadServer};

const CBOR_PATH: &str = "/service/GraniteServiceVersion20100801/operation/";
/// Bounds on what the front reads, so that a broken client or moto cannot make it hang or grow.
const MAX_HEADER_BYTES: usize = 64 * 1024;
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

/// The front; dropping it stops it.
pub struct CloudWatchCbor {
    server: ThreadServer,
}

impl CloudWatchCbor {
    /// Listens on a free loopback port, in front of moto at `upstream`.
    pub fn start(upstream: SocketAddr) -> CloudWatchCbor {
        let server = ThreadServer::start("cloudwatch cbor front", move |stream, stop| {
            serve(stream, stop, upstream)
        });
        CloudWatchCbor { server }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server.addr())
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn serve(stream: TcpStream, stop: &Stop, upstream: SocketAddr) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while !stop.requested() {
        let Ok(Some(request)) = read_request(&mut reader) else {
            return;
        };
        let response = match request.path.strip_prefix(CBOR_PATH) {
            Some(operation) => translate(&request, operation, upstream),
            None => relay(&request, upstream),
        };
        let written = match response {
            Ok(bytes) => writer.write_all(&bytes),
            Err(message) => {
                writer.write_all(&http_response(502, "text/plain", false, message.as_bytes()))
            }
        };
        if written.is_err() {
            return;
        }
    }
}

fn read_request(reader: &mut impl BufRead) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        return Ok(None);
    };
    let (method, path) = (method.to_owned(), path.to_owned());
    let mut headers = Vec::new();
    let mut header_bytes = 0;
    loop {
        let mut header = String::new();
        header_bytes += reader.read_line(&mut header)?;
        if header_bytes > MAX_HEADER_BYTES {
            return Ok(None);
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    let mut request = Request {
        method,
        path,
        headers,
        body: Vec::new(),
    };
    let length: usize = request
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if length > MAX_BODY_BYTES {
        return Ok(None);
    }
    request.body = vec![0; length];
    reader.read_exact(&mut request.body)?;
    Ok(Some(request))
}

/// Sends `request` to moto unchanged (over a connection of its own) and returns moto's answer as it
/// came.
fn relay(request: &Request, upstream: SocketAddr) -> Result<Vec<u8>, String> {
    let mut head = format!("{} {} HTTP/1.1\r\n", request.method, request.path);
    for (name, value) in &request.headers {
        if !name.eq_ignore_ascii_case("connection") {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str("Connection: close\r\n\r\n");
    exchange(upstream, head.as_bytes(), &request.body)
}

fn exchange(upstream: SocketAddr, head: &[u8], body: &[u8]) -> Result<Vec<u8>, String> {
    let mut moto = TcpStream::connect_timeout(&upstream, UPSTREAM_TIMEOUT)
        .map_err(|e| format!("moto at {upstream}: {e}"))?;
    moto.set_read_timeout(Some(UPSTREAM_TIMEOUT))
        .map_err(|e| e.to_string())?;
    moto.write_all(head)
        .and_then(|()| moto.write_all(body))
        .map_err(|e| format!("writing to moto: {e}"))?;
    let mut answer = Vec::new();
    moto.take(MAX_BODY_BYTES as u64)
        .read_to_end(&mut answer)
        .map_err(|e| format!("reading moto's answer: {e}"))?;
    Ok(answer)
}

/// Splits a whole HTTP response into status and body (moto answers with a Content-Length, or closes).
fn split_response(answer: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("moto's answer has no header end")?;
    let head = String::from_utf8_lossy(&answer[..end]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("moto's answer has no status")?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = &answer[end + 4..];
    Ok((
        status,
        if chunked {
            dechunk(body)?
        } else {
            body.to_vec()
        },
    ))
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("cut chunk")?;
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&body[..line_end])
                .split(';')
                .next()
                .unwrap_or_default()
                .trim(),
            16,
        )
        .map_err(|e| e.to_string())?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(body.get(..size).ok_or("cut chunk")?);
        body = body.get(size + 2..).ok_or("cut chunk")?;
    }
}

fn http_response(status: u16, content_type: &str, cbor: bool, body: &[u8]) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        if status == 200 { "OK" } else { "Error" },
        body.len()
    );
    if cbor {
        head.push_str("smithy-protocol: rpc-v2-cbor\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

fn cbor_response(status: u16, value: &Value) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    ciborium::ser::into_writer(value, &mut body).map_err(|e| e.to_string())?;
    Ok(http_response(status, "application/cbor", true, &body))
}

fn text(key: &str, value: impl Into<Value>) -> (Value, Value) {
    (Value::Text(key.to_owned()), value.into())
}

/// A CBOR request for `operation` as a query request to moto, and moto's answer as CBOR.
fn translate(request: &Request, operation: &str, upstream: SocketAddr) -> Result<Vec<u8>, String> {
    let input: Value = ciborium::de::from_reader(request.body.as_slice())
        .map_err(|e| format!("the request body is not CBOR: {e}"))?;
    let mut form = vec![
        ("Action".to_owned(), operation.to_owned()),
        ("Version".to_owned(), "2010-08-01".to_owned()),
    ];
    match operation {
        "PutMetricData" | "GetMetricStatistics" => flatten(&input, "", &mut form),
        other => {
            return cbor_response(
                400,
                &Value::Map(vec![
                    text("__type", "UnknownOperationException"),
                    text(
                        "message",
                        format!("the CloudWatch front does not translate {other}"),
                    ),
                ]),
            )
        }
    }
    let body = form
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let mut head = "POST / HTTP/1.1\r\n".to_owned();
    for (name, value) in &request.headers {
        // The credential scope in Authorization tells moto which service this is.
        if [
            "host",
            "authorization",
            "x-amz-date",
            "x-amz-security-token",
        ]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
        {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str(&format!(
        "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let answer = exchange(upstream, head.as_bytes(), body.as_bytes())?;
    let (status, xml) = split_response(&answer)?;
    let xml = String::from_utf8_lossy(&xml).into_owned();
    if status != 200 {
        return cbor_response(
            status,
            &Value::Map(vec![
                text(
                    "__type",
                    element(&xml, "Code").unwrap_or("InternalServiceError"),
                ),
                text("message", element(&xml, "Message").unwrap_or_default()),
            ]),
        );
    }
    let output = match operation {
        "GetMetricStatistics" => statistics_output(&xml)?,
        _ => Value::Map(Vec::new()),
    };
    cbor_response(200, &output)
}

/// A CBOR input structure as query parameters: maps become `Prefix.Key`, arrays `Prefix.member.N`,
/// timestamps (tag 1) ISO 8601 text.
fn flatten(value: &Value, prefix: &str, out: &mut Vec<(String, String)>) {
    let join = |key: &str| {
        if prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{prefix}.{key}")
        }
    };
    match value {
        Value::Map(entries) => {
            for (key, value) in entries {
                if let Value::Text(key) = key {
                    flatten(value, &join(key), out);
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                flatten(item, &join(&format!("member.{}", i + 1)), out);
            }
        }
        Value::Tag(1, inner) => {
            let seconds = match inner.as_ref() {
                Value::Float(f) => *f,
                Value::Integer(i) => i128::from(*i) as f64,
                _ => 0.0,
            };
            let at = time::OffsetDateTime::from_unix_timestamp_nanos((seconds * 1e9) as i128)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
            let text = at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            out.push((prefix.to_owned(), text));
        }
        Value::Text(text) => out.push((prefix.to_owned(), text.clone())),
        Value::Float(f) => out.push((prefix.to_owned(), f.to_string())),
        Value::Integer(i) => out.push((prefix.to_owned(), i128::from(*i).to_string())),
        Value::Bool(b) => out.push((prefix.to_owned(), b.to_string())),
        _ => {}
    }
}

/// GetMetricStatistics' XML answer as the CBOR output structure.
fn statistics_output(xml: &str) -> Result<Value, String> {
    let mut datapoints = Vec::new();
    let points = element(xml, "Datapoints").unwrap_or_default();
    for member in points.split("<member>").skip(1) {
        let mut point = Vec::new();
        if let Some(stamp) = element(member, "Timestamp") {
            let at = time::OffsetDateTime::parse(
                stamp.trim(),
                &time::format_description::well_known::Rfc3339,
            )
            .map_err(|e| format!("moto's timestamp {stamp:?}: {e}"))?;
            point.push(text(
                "Timestamp",
                Value::Tag(
                    1,
                    Box::new(Value::Float(at.unix_timestamp_nanos() as f64 / 1e9)),
                ),
            ));
        }
        for field in ["SampleCount", "Average", "Sum", "Minimum", "Maximum"] {
            if let Some(number) = element(member, field).and_then(|v| v.trim().parse::<f64>().ok())
            {
                point.push(text(field, Value::Float(number)));
            }
        }
        if let Some(unit) = element(member, "Unit") {
            point.push(text("Unit", unit.trim()));
        }
        datapoints.push(Value::Map(point));
    }
    let mut output = vec![text("Datapoints", Value::Array(datapoints))];
    if let Some(label) = element(xml, "Label") {
        output.push(text("Label", label.trim()));
    }
    Ok(Value::Map(output))
}

/// The text between the first `<name>` and the next `</name>` in `xml`.
fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&close)? + start;
    Some(&xml[start..end])
}
