//! The recorded kube-apiserver exchanges in `tests/fixtures/api-responses/NN-*.txt`: one parser
//! for their format, which is
//!
//! ```text
//! ### request
//! METHOD /path?query
//! Header: value            (optional lines)
//!
//! request body             (optional)
//!
//! ### response
//! HTTP/2 200 \r\n
//! header: value\r\n
//! \r\n
//! response body (JSON, or one JSON watch event a line)
//! ```

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The recordings used by the stand-in, by file name.
pub mod files {
    pub const GET_DEPLOYMENT: &str = "01-get-deployment.txt";
    pub const NOT_FOUND: &str = "02-get-deployment-not-found.txt";
    pub const CONFLICT: &str = "04-patch-stale-resourceversion-conflict.txt";
    pub const JSON_PATCH_TEST_FAILED: &str = "05-jsonpatch-test-op-failed.txt";
    pub const INVALID: &str = "06-patch-selector-immutable-invalid.txt";
    pub const LIST_REPLICASETS: &str = "07-list-replicasets-by-selector.txt";
    pub const LIST_PODS: &str = "08-list-pods-by-selector.txt";
    pub const FORBIDDEN: &str = "09-get-deployment-forbidden.txt";
    pub const LIST_ENDPOINTSLICES: &str = "10-list-endpointslices-for-service.txt";
    pub const WATCH_DEPLOYMENTS: &str = "11-watch-deployments-stream.txt";
    pub const GET_SCALE: &str = "12-get-scale-subresource.txt";
    pub const VERSION: &str = "13-version.txt";
    pub const LIST_EVENTS: &str = "14-list-events-for-deployment.txt";
    pub const GET_STATEFULSET: &str = "15-get-statefulset.txt";
    pub const LIST_STATEFULSET_REVISIONS: &str = "16-list-controllerrevisions-statefulset.txt";
    pub const GET_DAEMONSET: &str = "17-get-daemonset.txt";
    pub const LIST_DAEMONSET_REVISIONS: &str = "18-list-controllerrevisions-daemonset.txt";
    pub const PATCH_PARTITION: &str = "19-patch-statefulset-partition-with-precondition.txt";
    pub const PARTITION_CONFLICT: &str = "20-patch-statefulset-stale-resourceversion-conflict.txt";
}

/// Why a recording could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("cannot read the recorded API exchange {}: {source} (they are committed under tests/fixtures/api-responses)", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}: {what}", path.display())]
    Format {
        path: PathBuf,
        line: usize,
        what: String,
    },
    #[error("{}:{line}: the body is not JSON: {source}", path.display())]
    Json {
        path: PathBuf,
        line: usize,
        source: serde_json::Error,
    },
}

/// One recorded request and its response.
#[derive(Debug, Clone)]
pub struct Recording {
    pub path: PathBuf,
    pub request: RecordedRequest,
    pub response: RecordedResponse,
}

#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

#[derive(Debug, Clone)]
pub struct RecordedResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The line of the file the body starts on, for error messages.
    pub body_line: usize,
}

impl Recording {
    /// `tests/fixtures/api-responses/<file>`, parsed.
    pub fn load(file: &str) -> Result<Recording, RecordingError> {
        let path = rollout_safe_testkit::fixture("api-responses").join(file);
        let text = std::fs::read_to_string(&path).map_err(|source| RecordingError::Read {
            path: path.clone(),
            source,
        })?;
        Recording::parse(&path, &text)
    }

    /// Parses the text of a recording; `path` only names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Recording, RecordingError> {
        let format = |line: usize, what: &str| RecordingError::Format {
            path: path.to_path_buf(),
            line,
            what: what.to_owned(),
        };
        let lines: Vec<&str> = text.split('\n').collect();
        let header_at = |name: &str| lines.iter().position(|l| l.trim_end() == name);
        let request_at =
            header_at("### request").ok_or_else(|| format(1, "no `### request` line"))?;
        let response_at =
            header_at("### response").ok_or_else(|| format(1, "no `### response` line"))?;
        if response_at < request_at {
            return Err(format(
                response_at + 1,
                "`### response` comes before `### request`",
            ));
        }
        let request = parse_request(&lines[request_at + 1..response_at], request_at + 2)
            .map_err(|(line, what)| format(line, &what))?;
        let response = parse_response(&lines[response_at + 1..], response_at + 2)
            .map_err(|(line, what)| format(line, &what))?;
        Ok(Recording {
            path: path.to_path_buf(),
            request,
            response,
        })
    }

    /// The response body as one JSON value.
    pub fn json(&self) -> Result<Value, RecordingError> {
        serde_json::from_str(self.response.body.trim()).map_err(|source| RecordingError::Json {
            path: self.path.clone(),
            line: self.response.body_line + source.line().saturating_sub(1),
            source,
        })
    }

    /// The response body as a watch stream: one JSON event a line.
    pub fn watch_events(&self) -> Result<Vec<Value>, RecordingError> {
        self.response
            .body
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l).map_err(|source| RecordingError::Json {
                    path: self.path.clone(),
                    line: self.response.body_line + i,
                    source,
                })
            })
            .collect()
    }
}

type LineError = (usize, String);

fn parse_request(lines: &[&str], first_line: usize) -> Result<RecordedRequest, LineError> {
    let start_line = lines
        .first()
        .map(|l| l.trim_end())
        .filter(|l| !l.is_empty())
        .ok_or((
            first_line,
            "the request has no `METHOD /path` line".to_owned(),
        ))?;
    let (method, target) = start_line.split_once(' ').ok_or((
        first_line,
        format!("not a `METHOD /path` line: {start_line:?}"),
    ))?;
    let (headers, body_at) = parse_headers(&lines[1..], first_line + 1)?;
    let body = lines[1 + body_at..].join("\n").trim().to_owned();
    Ok(RecordedRequest {
        method: method.to_owned(),
        target: target.trim().to_owned(),
        headers,
        body,
    })
}

fn parse_response(lines: &[&str], first_line: usize) -> Result<RecordedResponse, LineError> {
    let status_line = lines
        .first()
        .map(|l| l.trim_end())
        .ok_or((first_line, "the response has no status line".to_owned()))?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or((first_line, format!("not a status line: {status_line:?}")))?;
    let (headers, body_at) = parse_headers(&lines[1..], first_line + 1)?;
    Ok(RecordedResponse {
        status,
        headers,
        body: lines[1 + body_at..].join("\n"),
        body_line: first_line + 1 + body_at,
    })
}

/// `Name: value` lines up to the first empty one; returns them and the index after it.
fn parse_headers(
    lines: &[&str],
    first_line: usize,
) -> Result<(Vec<(String, String)>, usize), LineError> {
    let mut headers = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        // Response headers end in CRLF, as on the wire.
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            return Ok((headers, i + 1));
        }
        let (name, value) = line.split_once(':').ok_or((
            first_line + i,
            format!("not a `Name: value` header: {line:?}"),
        ))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    Ok((headers, lines.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_committed_recording_parses() {
        let dir = rollout_safe_testkit::fixture("api-responses");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if !name.ends_with(".txt") {
                continue;
            }
            let r = Recording::load(&name).unwrap();
            assert!(r.request.target.starts_with('/'), "{name}");
            if name == files::WATCH_DEPLOYMENTS {
                let events = r.watch_events().unwrap();
                assert!(events.len() > 1, "{name}");
                assert_eq!(events[0]["type"], "ADDED");
            } else {
                let body = r.json().unwrap();
                assert!(body.is_object(), "{name}");
            }
            seen += 1;
        }
        assert!(seen >= 20, "only {seen} recordings in {}", dir.display());
    }

    #[test]
    fn request_headers_and_body_and_response_status() {
        let r = Recording::load("03-patch-image-with-resourceversion-precondition.txt").unwrap();
        assert_eq!(r.request.method, "PATCH");
        assert_eq!(
            r.request.target,
            "/apis/apps/v1/namespaces/api/deployments/good"
        );
        assert_eq!(
            r.request.headers,
            [(
                "content-type".to_owned(),
                "application/merge-patch+json".to_owned()
            )]
        );
        assert!(r.request.body.starts_with("{\"metadata\""));
        assert_eq!(r.response.status, 200);
        let conflict = Recording::load(files::CONFLICT).unwrap();
        assert_eq!(conflict.response.status, 409);
        assert_eq!(conflict.json().unwrap()["reason"], "Conflict");
    }

    #[test]
    fn bad_recordings_name_the_file_and_line() {
        let path = Path::new("broken.txt");
        let e = Recording::parse(path, "### request\nGET /x\n\n").unwrap_err();
        assert_eq!(e.to_string(), "broken.txt:1: no `### response` line");
        let e = Recording::parse(
            path,
            "### request\nGET /x\n\n### response\nHTTP/2 abc\r\n\r\n{}",
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with("broken.txt:5: not a status line"),
            "{e}"
        );
        let r = Recording::parse(
            path,
            "### request\nGET /x\n\n### response\nHTTP/2 200\r\nx: y\r\n\r\n{\n  \"a\": nope\n}",
        )
        .unwrap();
        let e = r.json().unwrap_err();
        assert!(
            e.to_string()
                .starts_with("broken.txt:9: the body is not JSON"),
            "{e}"
        );
        let e = Recording::load("99-missing.txt").unwrap_err();
        assert!(e.to_string().contains("99-missing.txt"), "{e}");
    }
}
