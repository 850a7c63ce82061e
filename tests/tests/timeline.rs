//! `report --svg` and `--html` on a recording the test makes: in a user
//! namespace capped at 6 watches, two holders take 4 and 2, then a failer
//! (whose comm is hostile markup) gets ENOSPC twice. The SVG is well-formed
//! (xmllint), its plotted peak is the summary's and the cap, it has one
//! failure mark per failed call, and headless Chromium (Debian's) renders
//! it to a PNG that is not blank and shows the cap line.
use std::{path::Path, process::Command};

use serde_json::Value;
use tests::{report, require_bpf, tracer_binary, workload_binary};

/// The failer's comm: markup and an ampersand, which the picture must
/// carry as text.
const HOSTILE: &str = "<b>&fail\"";

/// Records the scenario into `dir/rec`.
fn record(dir: &Path) -> std::path::PathBuf {
    let d: Vec<String> = (0..8)
        .map(|i| {
            let p = dir.join(format!("d{i}"));
            std::fs::create_dir(&p).unwrap();
            p.to_str().unwrap().to_owned()
        })
        .collect();
    let w = workload_binary();
    let w = w.display();
    let ready = dir.join("ready");
    std::fs::write(&ready, b"").unwrap();
    let ready = ready.display();
    let script = format!(
        "echo 6 > /proc/sys/user/max_inotify_watches; \
         {w} --comm tl-big init add {} add {} add {} add {} sleep 3 >> {ready} & \
         {w} --comm tl-small init add {} add {} sleep 3 >> {ready} & \
         {}; {w} --comm '{HOSTILE}' init add {} add {} >/dev/null",
        d[0],
        d[1],
        d[2],
        d[3],
        d[4],
        d[5],
        tests::until_lines(&ready.to_string(), 8),
        d[6],
        d[7],
    );
    let recording = dir.join("rec");
    let out = Command::new(tracer_binary())
        .args(["-q", "-w"])
        .arg(&recording)
        .args(["--", "unshare", "-U", "-r", "sh", "-c", &script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    recording
}

/// The (x, y) pairs of an SVG `points` attribute.
fn points(text: &str) -> Vec<(f64, f64)> {
    text.split_whitespace()
        .map(|p| {
            let (x, y) = p.split_once(',').unwrap();
            (x.parse().unwrap(), y.parse().unwrap())
        })
        .collect()
}

/// Headless Chromium's screenshot of `svg`, as RGBA rows.
fn render(svg: &Path, out: &Path) -> (u32, u32, Vec<u8>) {
    let text = std::fs::read_to_string(svg).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    let (width, height) = (
        doc.root_element().attribute("width").unwrap(),
        doc.root_element().attribute("height").unwrap(),
    );
    let png = out.join("timeline.png");
    let profile = tempfile::tempdir().unwrap();
    let shot = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", svg.display()))
        .output()
        .expect("chromium (Debian's; cargo xtask test installs it)");
    assert!(shot.status.success() && png.is_file(), "{shot:?}");
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    pixels.truncate(info.buffer_size());
    let rgba = match info.color_type {
        png::ColorType::Rgba => pixels,
        png::ColorType::Rgb => pixels
            .chunks(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
        other => panic!("a PNG of {other:?}"),
    };
    (info.width, info.height, rgba)
}

#[test]
fn the_timeline_plots_the_peak_against_the_cap_with_a_mark_per_failed_call() {
    require_bpf!();
    let dir = tempfile::tempdir().unwrap();
    let recording = record(dir.path());
    let rec = recording.to_str().unwrap();

    let json = report(&[rec, "--json"]);
    assert!(json.status.success(), "{json:?}");
    let summary: Value = serde_json::from_slice(&json.stdout).unwrap();
    let user = &summary["users"][0];
    assert_eq!(user["uid"], 0, "{summary:#}");
    // The truth: 4 + 2 held at once, the namespace's cap.
    assert_eq!(user["peak_watches"], 6, "{summary:#}");
    let failed: u64 = summary["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["count"].as_u64().unwrap())
        .sum();
    assert_eq!(failed, 2, "{summary:#}");

    let svg = dir.path().join("timeline.svg");
    let out = report(&[rec, "--svg", svg.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    // The text report is printed as without --svg.
    assert!(String::from_utf8_lossy(&out.stdout).contains("== inotify-trace summary"));
    let lint = Command::new("xmllint")
        .arg("--noout")
        .arg(&svg)
        .output()
        .expect("xmllint (libxml2-utils; cargo xtask test installs it)");
    assert!(lint.status.success(), "xmllint: {lint:?}");

    let text = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    let class = |name: &str| -> Vec<roxmltree::Node<'_, '_>> {
        doc.descendants()
            .filter(|n| n.attribute("class") == Some(name))
            .collect()
    };
    let held = class("held");
    assert_eq!(held.len(), 1, "one uid, one outline");
    assert_eq!(
        held[0].attribute("data-peak"),
        Some(user["peak_watches"].to_string().as_str())
    );
    let cap = class("cap");
    assert_eq!(cap.len(), 1);
    assert_eq!(cap[0].attribute("data-cap"), Some("6"));
    // Drawn, the outline's highest point is on the cap line.
    let top = points(held[0].attribute("points").unwrap())
        .into_iter()
        .map(|(_, y)| y)
        .fold(f64::INFINITY, f64::min);
    let cap_y: f64 = cap[0].attribute("y1").unwrap().parse().unwrap();
    assert!(
        (top - cap_y).abs() < 0.2,
        "outline top {top}, cap at {cap_y}"
    );
    let failures = class("failure");
    assert_eq!(failures.len() as u64, failed);
    assert!(failures
        .iter()
        .all(|f| f.attribute("data-errno") == Some("ENOSPC")));
    assert_eq!(class("diagnosis").len(), 1);
    // The hostile comm is text, escaped; the bands name the holders.
    assert!(text.contains("&lt;b&gt;&amp;fail&quot;"), "{text}");
    let bands: Vec<String> = class("band")
        .iter()
        .map(|b| {
            b.descendants()
                .find_map(|n| n.text().map(str::to_owned))
                .unwrap()
        })
        .collect();
    assert!(bands[0].starts_with("tl-big (pid "), "{bands:?}");
    assert!(bands[1].starts_with("tl-small (pid "), "{bands:?}");
    assert_labels_apart(&text);

    // Rendered: not blank, and the cap line is there, a dashed red row.
    let (width, height, rgba) = render(&svg, dir.path());
    let pixel = |x: u32, y: u32| {
        let at = ((y * width + x) * 4) as usize;
        (rgba[at], rgba[at + 1], rgba[at + 2])
    };
    let drawn = (0..height)
        .flat_map(|y| (0..width).map(move |x| (x, y)))
        .filter(|&(x, y)| pixel(x, y) != (255, 255, 255))
        .count();
    assert!(
        drawn as f64 > 0.02 * f64::from(width * height),
        "{drawn} pixels drawn"
    );
    let red = |(r, g, b): (u8, u8, u8)| r > 180 && g < 90 && b < 90;
    let cap_row = cap_y.round() as u32;
    let on_cap_line = (cap_row.saturating_sub(2)..cap_row + 2)
        .map(|y| (0..width).filter(|&x| red(pixel(x, y))).count())
        .max()
        .unwrap();
    assert!(
        on_cap_line > 300,
        "{on_cap_line} red pixels on the cap's row"
    );
}

#[test]
fn the_html_page_and_stdout_carry_the_picture() {
    require_bpf!();
    let dir = tempfile::tempdir().unwrap();
    let recording = record(dir.path());
    let rec = recording.to_str().unwrap();

    // To stdout: the SVG only, no text report.
    let out = report(&[rec, "--svg", "-"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.starts_with("<?xml"), "{stdout}");
    assert!(!stdout.contains("== inotify-trace summary"));
    roxmltree::Document::parse(&stdout).unwrap();

    let html = dir.path().join("timeline.html");
    let out = report(&[rec, "--html", html.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(page.contains("== inotify-trace summary"));
    assert!(page.contains("&lt;b&gt;&amp;fail"), "{page}");
    assert!(!page.contains("<script"), "no script in the page");
    let lint = Command::new("xmllint")
        .args(["--html", "--noout"])
        .arg(&html)
        .output()
        .unwrap();
    assert!(lint.status.success(), "xmllint --html: {lint:?}");

    // Refused in one line, nothing written: both to stdout; an existing
    // file without --force.
    let both = report(&[rec, "--svg", "-", "--html", "-"]);
    assert_eq!(both.status.code(), Some(1), "{both:?}");
    assert!(both.stdout.is_empty());
    assert_eq!(String::from_utf8_lossy(&both.stderr).lines().count(), 1);
    let again = report(&[rec, "--html", html.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1), "{again:?}");
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(
        said.contains("exists already") && said.contains("--force"),
        "{said}"
    );
    assert_eq!(std::fs::read_to_string(&html).unwrap(), page);
    let forced = report(&[rec, "--html", html.to_str().unwrap(), "--force"]);
    assert!(forced.status.success(), "{forced:?}");

    // A recording that turns out corrupt leaves no picture file behind,
    // and replaces none, even with --force.
    let corrupt = dir.path().join("corrupt.rec");
    std::fs::write(&corrupt, b"INOTRACE").unwrap();
    let svg = dir.path().join("never.svg");
    let out = report(&[corrupt.to_str().unwrap(), "--svg", svg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(!svg.exists(), "a picture of nothing was created");
    let kept = std::fs::read_to_string(&html).unwrap();
    let out = report(&[
        corrupt.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
        "--force",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(std::fs::read_to_string(&html).unwrap(), kept);
}

/// The estimated box of a `<text>` the picture draws (the picture's own
/// rule: a character is 0.62 of the font size wide, the font size high;
/// `rotate(-90 x y)` turns it up from its anchor).
fn text_box(node: roxmltree::Node<'_, '_>) -> (f64, f64, f64, f64) {
    let number = |name: &str| node.attribute(name).unwrap().parse::<f64>().unwrap();
    let (x, y) = (number("x"), number("y"));
    let size: f64 = node
        .attribute("font-size")
        .map_or(12.0, |s| s.parse().unwrap());
    let length = node.text().unwrap_or("").chars().count() as f64 * size * 0.62;
    if node
        .attribute("transform")
        .is_some_and(|t| t.starts_with("rotate(-90"))
    {
        return (x - size, y - length, x + size * 0.25, y);
    }
    let x0 = match node.attribute("text-anchor") {
        Some("end") => x - length,
        _ => x,
    };
    (x0, y - size, x0 + length, y + size * 0.25)
}

/// In each panel, the labels (and its title) overlap neither each other
/// nor the cap line, and stay inside the picture.
fn assert_labels_apart(svg: &str) {
    let doc = roxmltree::Document::parse(svg).unwrap();
    let width: f64 = doc
        .root_element()
        .attribute("width")
        .unwrap()
        .parse()
        .unwrap();
    let overlap = |a: (f64, f64, f64, f64), b: (f64, f64, f64, f64)| {
        a.0 < b.2 && b.0 < a.2 && a.1 < b.3 && b.1 < a.3
    };
    for panel in doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("panel"))
    {
        let mut boxes: Vec<((f64, f64, f64, f64), String)> = panel
            .descendants()
            .filter(|n| n.has_tag_name("text") && n.attribute("class") == Some("label"))
            .map(|n| (text_box(n), n.text().unwrap_or("").to_owned()))
            .collect();
        let title = panel.children().find(|n| n.has_tag_name("text")).unwrap();
        boxes.push((text_box(title), "the title".to_owned()));
        for (b, label) in &boxes {
            assert!(
                b.0 >= 0.0 && b.2 <= width && b.1 >= 0.0,
                "{label:?} leaves the picture: {b:?}"
            );
        }
        for (i, (a, la)) in boxes.iter().enumerate() {
            for (b, lb) in &boxes[i + 1..] {
                assert!(!overlap(*a, *b), "{la:?} {a:?} overlaps {lb:?} {b:?}");
            }
        }
        if let Some(cap) = panel
            .descendants()
            .find(|n| n.attribute("class") == Some("cap"))
        {
            let y: f64 = cap.attribute("y1").unwrap().parse().unwrap();
            for (b, label) in &boxes {
                assert!(
                    !(b.1 < y + 1.0 && y - 1.0 < b.3),
                    "{label:?} {b:?} crosses the cap line at {y}"
                );
            }
        }
    }
}

/// The budget in a namespace capped at 100: a holder of 90 and a watcher of
/// 10 from before the session; during it the watcher is stopped, the holder
/// exits (no traced call: only the kernel's count shows either), and a new
/// process adds 10. The outline is the count: it peaks at the cap, never
/// above (new less removals seen would say 110); the holder from before the
/// session has its band and tops the Processes table, live and in report;
/// no label overlaps another or the cap line.
#[test]
fn the_timeline_follows_the_kernels_count_and_never_draws_above_the_cap() {
    require_bpf!();
    let dir = tempfile::tempdir().unwrap();
    let dirs = |tag: &str, n: usize| -> String {
        (0..n)
            .map(|i| {
                let p = dir.path().join(format!("{tag}{i}"));
                std::fs::create_dir(&p).unwrap();
                format!("add {}", p.display())
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let w = workload_binary();
    let w = w.display();
    let (go, done) = (dir.path().join("go"), dir.path().join("done"));
    let script = format!(
        "echo 100 > /proc/sys/user/max_inotify_watches; T=$(mktemp); \
         {w} --comm tl-hold init {} sleep 60 >>$T & H=$!; \
         {w} --comm tl-watch init {} sleep 60 >>$T & W=$!; \
         {}; echo ready; \
         for i in $(seq 3000); do [ -e {go} ] && break; sleep 0.02; done; \
         kill $W; wait $W; kill $H; wait $H; \
         {w} --comm tl-new init {} >/dev/null; touch {done}",
        dirs("h", 90),
        dirs("w", 10),
        tests::until_lines("$T", 102),
        dirs("n", 10),
        go = go.display(),
        done = done.display(),
    );
    let mut namespace = tests::spawned::Spawned::in_user_namespace(&script);
    assert_eq!(namespace.line(), "ready");
    let recording = dir.path().join("rec");
    let tracer = tests::Tracer::start(&["-q", "--json", "-w", recording.to_str().unwrap()]);
    std::fs::write(&go, b"").unwrap();
    tests::wait::wait_for(
        "the new process's calls",
        std::time::Duration::from_secs(30),
        || done.exists(),
    );
    let finished = tracer.stop();
    assert!(namespace.succeeded());
    finished.assert_clean_exit();
    let live: Value = serde_json::from_str(finished.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(live["processes"][0]["comm"], "tl-hold", "{live:#}");
    assert_eq!(
        live["processes"][0]["held_at_start"]["watches"], 90,
        "{live:#}"
    );

    let rec = recording.to_str().unwrap();
    let json = report(&[rec, "--json"]);
    let replayed: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(replayed["processes"], live["processes"]);
    let svg = dir.path().join("timeline.svg");
    let out = report(&[rec, "--svg", svg.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    let held: Vec<_> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("held"))
        .collect();
    let cap: Vec<_> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("cap"))
        .collect();
    assert_eq!((held.len(), cap.len()), (1, 1), "{text}");
    assert_eq!(held[0].attribute("data-peak"), Some("100"), "{text}");
    assert_eq!(cap[0].attribute("data-cap"), Some("100"), "{text}");
    assert!(text.contains("the kernel&apos;s count at each traced call"));
    let bands: Vec<String> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("band"))
        .filter_map(|b| b.descendants().find_map(|n| n.text().map(str::to_owned)))
        .collect();
    assert!(
        bands.iter().any(|b| b.starts_with("tl-hold (pid ")),
        "{bands:?}"
    );
    assert_labels_apart(&text);
}
