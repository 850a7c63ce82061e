//! Drawing a [`Chart`] as one self-contained SVG: plain elements, no
//! script, no external fonts or images, readable in any browser or viewer.
//! Every name in it comes from the traced processes: the chart's labels
//! (and the title the caller gives) arrive escaped as the terminal views
//! escape them (`\u{1b}`, `\xff`: XML 1.0 cannot carry most control
//! characters at all), and XML's own five are escaped here. The elements a test or a script
//! may want carry classes and data attributes: `held` (the outline, with
//! `data-peak`), `cap` (`data-cap`), `band`, `failure` and `diagnosis`
//! (`data-pid`, `data-errno`).
use std::fmt::Write as _;

use super::chart::{Chart, Mark, Panel, COLUMNS};
use crate::words::fit;

const WIDTH: f64 = 1000.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const PLOT_HEIGHT: f64 = 260.0;
const LEGEND_LINE: f64 = 16.0;
/// Failure marks labelled at most per panel (every one is drawn): the first
/// of each process and errno.
const LABELLED: usize = 12;
/// A cap more than this many times the peak is not drawn to scale: the
/// held watches would be a flat line at the bottom.
const CAP_IN_SCALE: u64 = 4;

const BAND_COLOURS: [&str; 6] = [
    "#1f77b4", "#2ca02c", "#17becf", "#bcbd22", "#8c564b", "#7f7f7f",
];
const OTHERS_COLOUR: &str = "#c7c7c7";
const CAP_COLOUR: &str = "#d62728";
/// A character's width as a share of the font size: sans-serif's wider
/// letters, so an estimated box holds the text drawn.
pub const CHAR_WIDTH: f64 = 0.62;

/// A label's box, as the picture's coordinates.
#[derive(Clone, Copy, Debug)]
struct Rect {
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
}

impl Rect {
    /// A horizontal text's box: `chars` characters of `size` at (x, the
    /// baseline y), anchored at its start or its end.
    fn text(x: f64, y: f64, size: f64, chars: usize, anchor_end: bool) -> Rect {
        let width = chars as f64 * size * CHAR_WIDTH;
        let x0 = if anchor_end { x - width } else { x };
        Rect {
            x0,
            y0: y - size,
            x1: x0 + width,
            y1: y + size * 0.25,
        }
    }

    fn overlaps(&self, other: &Rect) -> bool {
        self.x0 < other.x1 && other.x0 < self.x1 && self.y0 < other.y1 && other.y0 < self.y1
    }

    fn inside(&self, width: f64) -> bool {
        self.x0 >= 0.0 && self.x1 <= width && self.y0 >= 0.0
    }
}

/// The labels of a panel drawn so far (and the cap line): a label goes
/// where it overlaps none of them and stays inside the picture, or is not
/// drawn (its mark keeps its tooltip).
#[derive(Default)]
struct Layout {
    taken: Vec<Rect>,
}

impl Layout {
    /// Takes the first of `candidates` that is free and inside.
    fn place(&mut self, candidates: impl IntoIterator<Item = Rect>) -> Option<Rect> {
        let free = candidates
            .into_iter()
            .find(|r| r.inside(WIDTH) && !self.taken.iter().any(|t| t.overlaps(r)))?;
        self.taken.push(free);
        Some(free)
    }
}

/// The SVG of `chart`, under `title` (escaped already, as labels are).
pub fn svg(chart: &Chart, title: &str) -> String {
    let mut panels = String::new();
    let mut y = 50.0;
    for panel in &chart.panels {
        y += draw_panel(&mut panels, panel, chart.duration_s, y) + 30.0;
    }
    if chart.panels.is_empty() {
        let _ = write!(
            panels,
            r#"<text x="{LEFT}" y="{}">No watch was added, removed or refused in this recording.</text>"#,
            y + 20.0
        );
        y += 40.0;
    }
    if chart.marks_left_out > 0 {
        let _ = write!(
            panels,
            r#"<text x="{LEFT}" y="{y}" class="note">{} more failed calls are not drawn (at most {} marks; the summary counts them all).</text>"#,
            chart.marks_left_out,
            super::chart::MARKS
        );
        y += 20.0;
    }
    let height = y.ceil();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{LEFT}" y="28" font-size="16" font-weight="bold">{}</text>
{panels}</svg>
"#,
        xml(title)
    )
}

/// Draws one uid's panel with its top at `top`; returns its height.
fn draw_panel(out: &mut String, panel: &Panel, duration_s: f64, top: f64) -> f64 {
    let (plot_left, plot_right) = (LEFT, WIDTH - RIGHT);
    let plot_top = top + 34.0;
    let plot_bottom = plot_top + PLOT_HEIGHT;
    let peak = panel.peak();
    let cap_in_scale = panel
        .cap
        .as_ref()
        .filter(|(cap, _)| *cap <= peak.max(1) * CAP_IN_SCALE);
    let highest = cap_in_scale.map_or(peak, |(cap, _)| (*cap).max(peak));
    let tick = nice_step(highest as f64 * 1.1 / 4.0);
    let y_max = (tick * ((highest as f64 * 1.1) / tick).ceil()).max(1.0);
    let x = |column: usize| plot_left + (plot_right - plot_left) * column as f64 / COLUMNS as f64;
    let x_at =
        |s: f64| plot_left + (plot_right - plot_left) * (s / duration_s.max(1e-9)).clamp(0.0, 1.0);
    let y = |v: f64| plot_bottom - (plot_bottom - plot_top) * v / y_max;

    // The title says what the outline is.
    let title = match (panel.counted, panel.user_ns) {
        (true, Some(ns)) if ns != super::chart::INITIAL_USER_NS => format!(
            "uid {} in user namespace {ns}: watches charged (the kernel's count at each traced call), peak {peak}",
            panel.uid
        ),
        (true, _) => format!(
            "uid {}: watches charged (the kernel's count at each traced call), peak {peak}",
            panel.uid
        ),
        (false, _) => format!(
            "uid {}: watches held (new less removals seen), peak {peak}",
            panel.uid
        ),
    };
    let mut layout = Layout::default();
    layout.taken.push(Rect::text(
        plot_left,
        top + 10.0,
        14.0,
        title.chars().count(),
        false,
    ));
    let _ = write!(
        out,
        r#"<g class="panel" data-uid="{uid}"><text x="{plot_left}" y="{}" font-size="14" font-weight="bold">{}</text>"#,
        top + 10.0,
        xml(&title),
        uid = panel.uid
    );
    // Axes, with the time and count at their ends and middles.
    let _ = write!(
        out,
        r##"<line x1="{plot_left}" y1="{plot_bottom}" x2="{plot_right}" y2="{plot_bottom}" stroke="#333"/><line x1="{plot_left}" y1="{plot_top}" x2="{plot_left}" y2="{plot_bottom}" stroke="#333"/>"##
    );
    for i in 0..=4 {
        let s = duration_s * f64::from(i) / 4.0;
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{s:.1}s</text>"#,
            x_at(s),
            plot_bottom + 16.0
        );
    }
    let mut v = 0.0;
    while v <= y_max + tick / 2.0 {
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{v:.0}</text>"#,
            plot_left - 6.0,
            y(v) + 4.0
        );
        v += tick;
    }
    // The bands, stacked from the bottom.
    let mut below = vec![0u64; COLUMNS];
    for (i, band) in panel.bands.iter().enumerate() {
        let colour = match band.label.as_str() {
            label if label.starts_with("others") => OTHERS_COLOUR,
            _ => BAND_COLOURS[i % BAND_COLOURS.len()],
        };
        let above: Vec<u64> = below.iter().zip(&band.values).map(|(b, v)| b + v).collect();
        let mut points = steps(&above, &x, &y, false);
        points.push(' ');
        points.push_str(&steps(&below, &x, &y, true));
        let _ = write!(
            out,
            r#"<polygon class="band" fill="{colour}" fill-opacity="0.75" stroke="none" points="{points}"><title>{}</title></polygon>"#,
            xml(&band.label)
        );
        below = above;
    }
    // The outline: each column's highest.
    let _ = write!(
        out,
        r##"<polyline class="held" data-peak="{peak}" fill="none" stroke="#000" stroke-width="1.5" points="{}"/>"##,
        steps(&panel.held, &x, &y, false)
    );
    // The cap, drawn to scale or said above the plot.
    let mut cap_y = None;
    match (&panel.cap, cap_in_scale) {
        (Some((cap, what)), Some(_)) => {
            let at = y(*cap as f64);
            cap_y = Some(at);
            let _ = write!(
                out,
                r#"<line class="cap" data-cap="{cap}" x1="{plot_left}" y1="{at:.1}" x2="{plot_right}" y2="{at:.1}" stroke="{CAP_COLOUR}" stroke-width="2" stroke-dasharray="10 4" shape-rendering="crispEdges"/>"#,
            );
            layout.taken.push(Rect {
                x0: plot_left,
                y0: at - 1.5,
                x1: plot_right,
                y1: at + 1.5,
            });
            // Above the line, else below it.
            let label = format!("cap {cap}: {what}");
            let chars = label.chars().count();
            let placed = layout.place([
                Rect::text(plot_right, at - 5.0, 12.0, chars, true),
                Rect::text(plot_right, at + 15.0, 12.0, chars, true),
            ]);
            if let Some(r) = placed {
                let _ = write!(
                    out,
                    r#"<text class="label" x="{:.1}" y="{:.1}" font-size="12" text-anchor="end" fill="{CAP_COLOUR}" stroke="white" stroke-width="3" paint-order="stroke">{}</text>"#,
                    r.x1,
                    r.y1 - 12.0 * 0.25,
                    xml(&label)
                );
            }
        }
        (Some((cap, what)), None) => {
            let _ = write!(
                out,
                r#"<text class="cap-above" data-cap="{cap}" x="{plot_right}" y="{:.1}" text-anchor="end" fill="{CAP_COLOUR}">cap {cap} ({}), far above this scale</text>"#,
                plot_top - 4.0,
                xml(what)
            );
        }
        (None, _) => {}
    }
    for mark in &panel.diagnoses {
        let at = x_at(mark.at_s);
        let _ = write!(
            out,
            r##"<g class="diagnosis" data-pid="{}" data-errno="{}"><polygon points="{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}" fill="#000"/><title>{label}</title>"##,
            mark.pid,
            xml(&mark.errno),
            at - 6.0,
            plot_top - 12.0,
            at + 6.0,
            plot_top - 12.0,
            at,
            plot_top,
            label = xml(&mark.label)
        );
        // Right of the triangle, else left of it, on its line or the one
        // above.
        let chars = mark.label.chars().count();
        let placed = layout.place([
            Rect::text(at + 8.0, plot_top - 2.0, 11.0, chars, false),
            Rect::text(at - 8.0, plot_top - 2.0, 11.0, chars, true),
            Rect::text(at + 8.0, plot_top - 15.0, 11.0, chars, false),
            Rect::text(at - 8.0, plot_top - 15.0, 11.0, chars, true),
        ]);
        if let Some(r) = placed {
            let _ = write!(
                out,
                r#"<text class="label" x="{:.1}" y="{:.1}" font-size="11">{}</text>"#,
                r.x0,
                r.y1 - 11.0 * 0.25,
                xml(&mark.label)
            );
        }
        out.push_str("</g>");
    }
    // Every failure is drawn; the first of each process and errno is
    // labelled (a few at most): a burst from one caller is one story.
    let mut labelled = std::collections::HashSet::new();
    for mark in &panel.failures {
        let label = labelled.len() < LABELLED && labelled.insert((mark.pid, mark.errno.as_str()));
        let at = x_at(mark.at_s);
        // Up from the bottom of the plot, as far as the cap line (or the
        // plot's top), cut to fit.
        let room = plot_bottom - 4.0 - cap_y.map_or(plot_top, |c| c.max(plot_top) + 2.0);
        let fits = (room / (10.0 * CHAR_WIDTH)).floor() as usize;
        let text = fit(&mark.label, fits);
        let placed = (label && fits >= 8)
            .then(|| {
                layout.place([Rect {
                    x0: at - 3.0 - 10.0,
                    y0: plot_bottom - 4.0 - text.chars().count() as f64 * 10.0 * CHAR_WIDTH,
                    x1: at - 3.0 + 2.5,
                    y1: plot_bottom - 4.0,
                }])
            })
            .flatten();
        failure_mark(out, mark, at, plot_top, plot_bottom, placed.map(|_| &*text));
    }
    // The legend, one line per band.
    let mut legend_y = plot_bottom + 36.0;
    for (i, band) in panel.bands.iter().enumerate() {
        let colour = match band.label.as_str() {
            label if label.starts_with("others") => OTHERS_COLOUR,
            _ => BAND_COLOURS[i % BAND_COLOURS.len()],
        };
        let _ = write!(
            out,
            r#"<rect x="{plot_left}" y="{:.1}" width="12" height="12" fill="{colour}"/><text x="{:.1}" y="{legend_y:.1}">{}</text>"#,
            legend_y - 10.0,
            plot_left + 18.0,
            xml(&band.label)
        );
        legend_y += LEGEND_LINE;
    }
    let _ = write!(
        out,
        r##"<text x="{plot_left}" y="{legend_y:.1}" fill="#555">Failed calls: vertical marks (ENOSPC red, EMFILE orange); diagnoses: black triangles.</text></g>"##
    );
    legend_y + LEGEND_LINE - top
}

/// A step for axis ticks near `rough`: 1, 2 or 5 times a power of ten, and
/// whole numbers (watches are counted).
fn nice_step(rough: f64) -> f64 {
    let rough = rough.max(1.0);
    let power = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|step| *step >= rough)
        .unwrap_or(10.0 * power);
    step.max(1.0).round()
}

/// The points of a step line through `values` (one per column): two per
/// run of equal values, its start and end; right to left with `reverse`.
fn steps(
    values: &[u64],
    x: &dyn Fn(usize) -> f64,
    y: &dyn Fn(f64) -> f64,
    reverse: bool,
) -> String {
    let mut runs: Vec<(usize, usize, u64)> = Vec::new();
    for (col, v) in values.iter().enumerate() {
        match runs.last_mut() {
            Some((_, end, last)) if *last == *v => *end = col + 1,
            _ => runs.push((col, col + 1, *v)),
        }
    }
    let mut points: Vec<String> = Vec::with_capacity(runs.len() * 2);
    for (start, end, v) in runs {
        let at = y(v as f64);
        points.push(format!("{:.1},{at:.1}", x(start)));
        points.push(format!("{:.1},{at:.1}", x(end)));
    }
    if reverse {
        points.reverse();
    }
    points.join(" ")
}

fn failure_mark(
    out: &mut String,
    mark: &Mark,
    at: f64,
    plot_top: f64,
    plot_bottom: f64,
    label_text: Option<&str>,
) {
    let colour = match mark.errno.as_str() {
        "ENOSPC" => "#e6194b",
        "EMFILE" => "#ff7f0e",
        _ => "#9467bd",
    };
    let label = xml(&mark.label);
    let _ = write!(
        out,
        r#"<g class="failure" data-pid="{}" data-errno="{}"><line x1="{at:.1}" y1="{plot_top:.1}" x2="{at:.1}" y2="{plot_bottom:.1}" stroke="{colour}" stroke-width="1.5" stroke-opacity="0.8"/><title>{label} at +{:.3}s</title>"#,
        mark.pid,
        xml(&mark.errno),
        mark.at_s
    );
    if let Some(text) = label_text {
        let _ = write!(
            out,
            r#"<text class="label" x="{:.1}" y="{:.1}" font-size="10" fill="{colour}" stroke="white" stroke-width="3" paint-order="stroke" transform="rotate(-90 {:.1} {:.1})">{}</text>"#,
            at - 3.0,
            plot_bottom - 4.0,
            at - 3.0,
            plot_bottom - 4.0,
            xml(text)
        );
    }
    out.push_str("</g>");
}

/// XML's five special characters.
pub fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}
