//! Talking to the agent and to Prometheus over HTTP, for the agent's tests.
use std::{
    io::{Read, Write},
    net::TcpStream,
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::Value;

/// A port free now on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP GET: the status code and the body.
pub fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

/// The value of the sample whose name and labels are `series`.
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

pub struct Agent(pub Child);

impl Agent {
    /// `inotify-trace agent --interval 1s --listen 127.0.0.1:PORT ARGS` on a
    /// free port: the agent, stopped when dropped, and its port. Its output
    /// is dropped.
    pub fn start(args: &[&str]) -> (Agent, u16) {
        Agent::spawn(args, Stdio::null())
    }

    /// [`Agent::start`] with its stderr piped, for a test that reads it.
    pub fn start_with_stderr(args: &[&str]) -> (Agent, u16) {
        Agent::spawn(args, Stdio::piped())
    }

    fn spawn(args: &[&str], stderr: Stdio) -> (Agent, u16) {
        let port = free_port();
        let child = Command::new(crate::tracer_binary())
            .args(["agent", "--interval", "1s"])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        (Agent(child), port)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The value of the first sample of `name` whose labels contain all of
/// `labels` (`key="value"` pairs).
pub fn sample_with(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix('{')?;
        let (set, value) = rest.split_once("} ")?;
        labels
            .iter()
            .all(|l| set.split(',').any(|pair| pair == *l))
            .then(|| value.parse().ok())?
    })
}

/// Polls `/metrics` until `done` says so (10 s at most).
/// A failure shows the samples of the last answer.
pub fn scrape_until(port: u16, what: &str, done: impl Fn(&str) -> bool) -> String {
    let last = std::cell::RefCell::new(None);
    crate::wait::wait_until_explained(
        what,
        Duration::from_secs(15),
        || {
            let answer = get(port, "/metrics");
            let ready = answer
                .as_ref()
                .filter(|(status, body)| *status == 200 && done(body))
                .map(|(_, body)| body.clone());
            *last.borrow_mut() = answer;
            ready
        },
        || match last.take() {
            Some((status, body)) => format!(
                "the last answer ({status}):\n{}",
                body.lines()
                    .filter(|l| !l.starts_with('#'))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
            None => "no answer".to_owned(),
        },
    )
}

/// Percent-encodes a PromQL query for a URL.
pub fn encoded(query: &str) -> String {
    query
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of an instant query's first result, from Prometheus's HTTP API.
pub fn query(port: u16, promql: &str) -> Option<f64> {
    let (status, body) = get(port, &format!("/api/v1/query?query={}", encoded(promql)))?;
    if status != 200 {
        return None;
    }
    // The body may come chunked: the JSON is from the first `{` to the last `}`.
    let json = &body[body.find('{')?..=body.rfind('}')?];
    let answer: Value = serde_json::from_str(json).ok()?;
    answer["data"]["result"][0]["value"][1]
        .as_str()?
        .parse()
        .ok()
}

/// A real Prometheus server (Debian's) with `config`, its data in `dir`,
/// its API on `port`; stopped when dropped.
pub fn prometheus(config: &Path, dir: &Path, port: u16) -> Agent {
    Agent(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (Debian's; cargo xtask test installs it)"),
    )
}

/// An instant query's whole answer: each result's labels and value, or the
/// error Prometheus gave (a query that does not parse, an unknown function).
pub fn query_result(port: u16, promql: &str) -> Result<Vec<(Value, f64)>, String> {
    let (status, body) = get(port, &format!("/api/v1/query?query={}", encoded(promql)))
        .ok_or_else(|| "Prometheus did not answer".to_owned())?;
    let json = body
        .find('{')
        .zip(body.rfind('}'))
        .map(|(from, to)| &body[from..=to])
        .ok_or_else(|| format!("{status}: {body}"))?;
    let answer: Value = serde_json::from_str(json).map_err(|e| format!("{e}: {json}"))?;
    if status != 200 || answer["status"] != "success" {
        return Err(format!("{status}: {answer}"));
    }
    Ok(answer["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let value = r["value"][1].as_str().and_then(|v| v.parse().ok());
            (r["metric"].clone(), value.unwrap_or(f64::NAN))
        })
        .collect())
}

/// A real Prometheus scraping the agent on `agent_port` every second (job
/// `inotify-trace`, with `labels` on its series): the server, its API's
/// port, and its data directory (removed when dropped).
pub fn prometheus_scraping(
    agent_port: u16,
    labels: &[(&str, &str)],
) -> (Agent, u16, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("prometheus.yml");
    let labels: String = labels
        .iter()
        .map(|(k, v)| format!("          {k}: {v}\n"))
        .collect();
    let labels = match labels.is_empty() {
        true => String::new(),
        false => format!("        labels:\n{labels}"),
    };
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: inotify-trace\n    static_configs:\n\
             \x20     - targets: ['127.0.0.1:{agent_port}']\n{labels}"
        ),
    )
    .unwrap();
    let port = free_port();
    (prometheus(&config, data.path(), port), port, data)
}
