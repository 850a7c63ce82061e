//! The agent's endpoint as the network sees it: TLS with basic auth and
//! client certificates from an exporter-toolkit web config (curl and a real
//! Prometheus as the clients), and bounded under abuse: idle and half-sent
//! connections, oversized headers and a burst of scrapes.
use std::{
    io::{BufRead, BufReader, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use tests::{
    require_bpf,
    scrape::{free_port, get, prometheus, query, Agent},
    tracer_binary,
    wait::{wait_for, wait_until},
};

/// The DaemonSet's memory limit (deploy/kubernetes/base/inotify-trace.yaml).
const MEMORY_LIMIT_BYTES: u64 = 128 << 20;

/// A CA, a server certificate for 127.0.0.1 and a client certificate, made
/// with openssl in `dir`.
fn certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.crt", "-days", "2"],
            &["-subj", "/CN=inotify-trace test CA"],
            &["-addext", "basicConstraints=critical,CA:TRUE"],
            &["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ]
        .concat(),
    );
    for (name, usage, san) in [
        ("server", "serverAuth", "subjectAltName=IP:127.0.0.1"),
        ("client", "clientAuth", "subjectAltName=DNS:prometheus"),
    ] {
        let (key, csr, crt) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
        );
        openssl(
            &[
                &["req"][..],
                &ec,
                &[
                    "-keyout",
                    &key,
                    "-out",
                    &csr,
                    "-subj",
                    &format!("/CN={name}"),
                ],
            ]
            .concat(),
        );
        let ext = format!("{name}.ext");
        std::fs::write(
            dir.join(&ext),
            format!("{san}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage={usage}\n"),
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
            "-extfile",
            &ext,
        ]);
    }
}

/// An agent serving with `web_config`; returns it and its port once it
/// has said where it serves.
fn agent(web_config: Option<&Path>) -> (Agent, u16) {
    let config = web_config.map(|c| c.to_str().unwrap());
    let args = match config {
        Some(config) => vec!["--web-config", config],
        None => vec![],
    };
    let (mut agent, port) = Agent::start_with_stderr(&args);
    let mut first = String::new();
    BufReader::new(agent.0.stderr.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("serving metrics on"), "{first}");
    (agent, port)
}

/// curl's answer: the HTTP status it got (`None` when it got none: a
/// refused handshake) and its stderr.
fn curl(args: &[&str]) -> (Option<u16>, String) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .args(args)
        .output()
        .expect("curl");
    let code = String::from_utf8_lossy(&out.stdout).trim().parse().ok();
    let code = code.filter(|c| *c != 0 && out.status.success());
    (code, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// curl until the agent has a snapshot (503 before the first).
fn curl_until_ready(args: &[&str]) -> u16 {
    // curl's last complaint, for the failure's message.
    struct Said(std::cell::RefCell<String>);
    impl std::fmt::Display for Said {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(
                f,
                "an answer other than 503 (curl said {:?})",
                self.0.borrow()
            )
        }
    }
    let said = Said(Default::default());
    wait_until(&said, Duration::from_secs(10), || {
        let (code, stderr) = curl(args);
        *said.0.borrow_mut() = stderr;
        code.filter(|code| *code != 503)
    })
}

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    kib * 1024
}

/// Holds `n` connections to `port` open, each having sent `preamble`
/// (nothing: idle; a request line and no end of headers: slowloris), and
/// returns once the agent has accepted them all.
fn hold_connections(port: u16, n: usize, preamble: &[u8]) -> Vec<TcpStream> {
    let held = (0..n)
        .map(|_| {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
            stream.write_all(preamble).unwrap();
            stream
        })
        .collect();
    wait_for(
        "the agent accepts the connections",
        Duration::from_secs(30),
        || accept_queue(port) == Some(0),
    );
    held
}

/// How many connections wait in the kernel for the listener on `port` to
/// accept them (a listening socket's rx_queue in /proc/net/tcp).
fn accept_queue(port: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let local = format!("0100007F:{port:04X}");
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // sl, local_address, rem_address, st (0A: LISTEN), tx:rx queues.
        (fields.get(1) == Some(&local.as_str()) && fields.get(3) == Some(&"0A"))
            .then(|| u64::from_str_radix(fields[4].split(':').nth(1)?, 16).ok())?
    })
}

/// TLS with basic auth: the right password gets the metrics, a wrong one
/// and none get 401 (`/healthz` needs none), plain HTTP gets no answer;
/// a real Prometheus scrapes it over TLS with basic auth (`up` is 1); 500
/// idle connections do not keep a scrape from answering within a second,
/// and the agent stays inside the DaemonSet's memory limit.
#[test]
fn tls_and_basic_auth_from_a_web_config_and_a_real_prometheus_scrapes_it() {
    require_bpf!();
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let hash = bcrypt::hash("s3cret", 5).unwrap();
    let config = dir.path().join("web.yml");
    std::fs::write(
        &config,
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n\
             basic_auth_users:\n  prom: {hash}\n"
        ),
    )
    .unwrap();
    let (agent, port) = agent(Some(&config));
    let url = format!("https://127.0.0.1:{port}/metrics");
    let ca = dir.path().join("ca.crt");
    let ca = ca.to_str().unwrap();
    assert_eq!(
        curl_until_ready(&["--cacert", ca, "-u", "prom:s3cret", &url]),
        200
    );
    assert_eq!(
        curl(&["--cacert", ca, "-u", "prom:wrong", &url]).0,
        Some(401)
    );
    assert_eq!(
        curl(&["--cacert", ca, "-u", "nobody:s3cret", &url]).0,
        Some(401)
    );
    assert_eq!(curl(&["--cacert", ca, &url]).0, Some(401));
    let healthz = format!("https://127.0.0.1:{port}/healthz");
    assert_eq!(curl(&["--cacert", ca, &healthz]).0, Some(200));
    let (plain, stderr) = curl(&[&format!("http://127.0.0.1:{port}/metrics")]);
    assert_eq!(plain, None, "plain HTTP is refused: {stderr}");
    // Headers past the limit: 431, not a growing buffer.
    let big = format!("X-Big: {}", "a".repeat(20_000));
    assert_eq!(
        curl(&["--cacert", ca, "-u", "prom:s3cret", "-H", &big, &url]).0,
        Some(431)
    );

    // 500 connections that never start their handshake.
    let idle = hold_connections(port, 500, b"");
    let started = Instant::now();
    assert_eq!(
        curl(&["--cacert", ca, "-u", "prom:s3cret", &url]).0,
        Some(200)
    );
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "a scrape took {took:?}");
    let rss = rss_bytes(agent.0.id());
    assert!(
        rss < MEMORY_LIMIT_BYTES,
        "{rss} bytes with 500 idle connections"
    );
    drop(idle);

    // A real Prometheus over TLS with basic auth.
    let prometheus_port = free_port();
    let prometheus_config = dir.path().join("prometheus.yml");
    std::fs::write(
        &prometheus_config,
        format!(
            "global:\n  scrape_interval: 1s\n\
             scrape_configs:\n  - job_name: tls\n    scheme: https\n\
             \x20   tls_config:\n      ca_file: {ca}\n\
             \x20   basic_auth:\n      username: prom\n      password: s3cret\n\
             \x20   static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        ),
    )
    .unwrap();
    let _prometheus = prometheus(&prometheus_config, dir.path(), prometheus_port);
    wait_for(
        "Prometheus scraping over TLS",
        Duration::from_secs(30),
        || query(prometheus_port, "up{job=\"tls\"}") == Some(1.0),
    );
    // What it stored came from a scrape: the agent's own series is there.
    assert!(query(prometheus_port, "inotify_trace_tracing{job=\"tls\"}").is_some());
}

/// `RequireAndVerifyClientCert`: a client without a certificate from the
/// CA is refused at the handshake, one with it gets the metrics.
#[test]
fn client_certificates_are_required_and_verified() {
    require_bpf!();
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let config = dir.path().join("web.yml");
    std::fs::write(
        &config,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
         client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n",
    )
    .unwrap();
    let (_agent, port) = agent(Some(&config));
    let url = format!("https://127.0.0.1:{port}/metrics");
    let file = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let (ca, cert, key) = (file("ca.crt"), file("client.crt"), file("client.key"));
    assert_eq!(
        curl_until_ready(&["--cacert", &ca, "--cert", &cert, "--key", &key, &url]),
        200
    );
    let (without, stderr) = curl(&["--cacert", &ca, &url]);
    assert_eq!(without, None, "no client certificate: {stderr}");
    // A certificate the CA did not sign: the server's own key, self-signed.
    let stranger: PathBuf = dir.path().join("stranger.crt");
    let made = Command::new("openssl")
        .args(["req", "-x509", "-key", "client.key", "-out", "stranger.crt"])
        .args(["-days", "2", "-subj", "/CN=stranger"])
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(made.success());
    let (stranger, stderr) = curl(&[
        "--cacert",
        &ca,
        "--cert",
        stranger.to_str().unwrap(),
        "--key",
        &key,
        &url,
    ]);
    assert_eq!(stranger, None, "an unknown CA's certificate: {stderr}");
}

/// Plain HTTP under abuse: 1,500 connections (past the agent's cap of
/// 1,024) that sent a request line and never finish their headers, then a
/// burst of 64 scrapes at once: every scrape is answered, the first within
/// a second, and memory stays bounded. A bad web config is one line, before the port is taken.
#[test]
fn half_sent_requests_and_a_burst_of_scrapes_do_not_stop_metrics() {
    require_bpf!();
    let (agent, port) = agent(None);
    wait_for("a first snapshot", Duration::from_secs(10), || {
        get(port, "/metrics").is_some_and(|(status, _)| status == 200)
    });
    let slow = hold_connections(port, 1500, b"GET /metrics HTTP/1.1\r\nHost: x\r\n");
    let started = Instant::now();
    let answer = get(port, "/metrics");
    let took = started.elapsed();
    assert_eq!(
        answer.as_ref().map(|(status, _)| *status),
        Some(200),
        "{answer:?} after {took:?}"
    );
    assert!(took < Duration::from_secs(1), "a scrape took {took:?}");
    let burst: Vec<_> = (0..64)
        .map(|_| std::thread::spawn(move || get(port, "/metrics").map(|(status, _)| status)))
        .collect();
    for scrape in burst {
        assert_eq!(scrape.join().unwrap(), Some(200));
    }
    let rss = rss_bytes(agent.0.id());
    assert!(rss < MEMORY_LIMIT_BYTES, "{rss} bytes under abuse");
    drop(slow);

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("web.yml");
    std::fs::write(&bad, "basic_auth_users:\n  prom: not-a-hash\n").unwrap();
    let out = Command::new(tracer_binary())
        .args(["agent", "--listen", "127.0.0.1:0", "--web-config"])
        .arg(&bad)
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("basic_auth_users.prom is not a bcrypt hash"),
        "{stderr}"
    );
}
