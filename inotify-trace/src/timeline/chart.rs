//! What a recording's timeline shows, worked out from the session's budget
//! changes (new watches, removals, failures, as the kernel charges them) and
//! its summary, before any drawing: per charged uid, the watches held over
//! time against its cap, the top holders as stacked bands, every failure and
//! diagnosis as a mark.
use std::collections::HashMap;

use crate::{
    escape::Escaped,
    summary::{
        aggregate::{Change, Changed},
        Summary,
    },
    words::{fit, place_text},
};

/// Columns a panel is cut into: the held outline is each column's highest
/// value (so the peak drawn is the real one), the bands each process's
/// value at the column's end.
pub const COLUMNS: usize = 600;
/// Uids drawn at most (those that held the most), and processes a panel
/// names (the rest are one band, "others").
const PANELS: usize = 3;
const BANDS: usize = 5;
/// Marks drawn at most, over all panels: a storm of failures would make a
/// picture no one can read, and a file no browser opens.
pub const MARKS: usize = 1000;
/// Names are cut to this many characters, with an ellipsis.
const NAME_WIDTH: usize = 48;

pub struct Chart {
    pub duration_s: f64,
    pub panels: Vec<Panel>,
    /// Failures not drawn past [`MARKS`].
    pub marks_left_out: u64,
}

pub struct Panel {
    pub uid: u32,
    /// The cap that applies, and what it is.
    pub cap: Option<(u64, String)>,
    /// Per column, the most watches held in it (new less removals seen).
    pub held: Vec<u64>,
    /// The top holders, then "others", each its watches at each column's
    /// end (stacked in this order, they add up to the total there).
    pub bands: Vec<Band>,
    pub failures: Vec<Mark>,
    pub diagnoses: Vec<Mark>,
}

impl Panel {
    /// The most watches held at once, as drawn.
    pub fn peak(&self) -> u64 {
        self.held.iter().copied().max().unwrap_or(0)
    }
}

pub struct Band {
    /// `comm (pid N) ns/pod`, escaped and cut.
    pub label: String,
    pub values: Vec<u64>,
}

#[derive(Clone)]
pub struct Mark {
    /// Seconds from the session's start.
    pub at_s: f64,
    pub pid: u32,
    /// `ENOSPC`, `EMFILE`, ...
    pub errno: String,
    /// What it says, escaped and cut.
    pub label: String,
}

/// What the chart takes from the session's summary: how long it lasted,
/// what to call each pid, the caps, the diagnoses.
pub struct Facts {
    pub duration_s: f64,
    /// `comm (pid N) ns/pod`, escaped and cut, for the listed processes.
    pub names: HashMap<u32, String>,
    /// Per uid, the cap a diagnosis of it named (its user namespace's).
    pub caps: HashMap<u32, (u64, String)>,
    /// The host's, for the others.
    pub host_cap: Option<u64>,
    /// Each diagnosis: its uid and its mark.
    pub diagnoses: Vec<(u32, Mark)>,
}

impl Facts {
    /// From the summary of a session that started at boot time
    /// `start_ns` (`boot_epoch_ns`: the recording's clock base).
    pub fn of(summary: &Summary, start_ns: u64, boot_epoch_ns: i128) -> Facts {
        let names = summary
            .processes
            .iter()
            .map(|p| {
                let comm = Escaped(crate::event::comm_bytes(&p.comm)).to_string();
                let place = place_text(p.place());
                let name = match place.is_empty() {
                    true => format!("{comm} (pid {})", p.pid),
                    false => format!("{comm} (pid {}) {place}", p.pid),
                };
                (p.pid, fit(&name, NAME_WIDTH).into_owned())
            })
            .collect();
        let mut caps = HashMap::new();
        let mut diagnoses = Vec::new();
        for d in &summary.diagnoses {
            if let Some(cap) = d.usage.as_ref().and_then(|u| u.max_watches) {
                let what = match d.user_ns {
                    Some(ns) => format!("user namespace {ns}'s user.max_inotify_watches"),
                    None => "fs.inotify.max_user_watches".to_owned(),
                };
                caps.entry(d.uid).or_insert((cap, what));
            }
            let boot_ns = humantime::parse_rfc3339(&d.time)
                .ok()
                .and_then(|w| w.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|since| since.as_nanos() as i128 - boot_epoch_ns)
                .and_then(|ns| u64::try_from(ns).ok())
                .unwrap_or(start_ns);
            let comm = fit(&Escaped(d.comm.bytes()).to_string(), NAME_WIDTH).into_owned();
            diagnoses.push((
                d.uid,
                Mark {
                    at_s: boot_ns.saturating_sub(start_ns) as f64 / 1e9,
                    pid: d.pid,
                    errno: d.errno.to_string(),
                    label: format!("diagnosis: {comm} (pid {}) got {}", d.pid, d.errno),
                },
            ));
        }
        Facts {
            duration_s: summary.duration_s,
            names,
            caps,
            host_cap: summary.limits.start.max_user_watches,
            diagnoses,
        }
    }

    fn name(&self, pid: u32) -> String {
        self.names
            .get(&pid)
            .cloned()
            .unwrap_or_else(|| format!("pid {pid}"))
    }

    /// The cap a uid's panel is drawn against: the user namespace's own
    /// when a diagnosis of that uid names it, else the host's sysctl.
    fn cap(&self, uid: u32) -> Option<(u64, String)> {
        self.caps.get(&uid).cloned().or_else(|| {
            self.host_cap
                .map(|cap| (cap, "fs.inotify.max_user_watches".to_owned()))
        })
    }
}

/// The chart of a session that started at boot time `start_ns`.
pub fn chart(changes: &[Change], facts: &Facts, start_ns: u64) -> Chart {
    let duration_ns = ((facts.duration_s * 1e9) as u64).max(1);
    let column_of = |time_ns: u64| {
        let offset = time_ns.saturating_sub(start_ns).min(duration_ns - 1);
        (offset as u128 * COLUMNS as u128 / duration_ns as u128) as usize
    };
    let at_s = |time_ns: u64| time_ns.saturating_sub(start_ns) as f64 / 1e9;

    // The uids that held the most, then those that only failed.
    let mut uids: HashMap<u32, (u64, i64, u64)> = HashMap::new();
    for c in changes {
        let (peak, held, failed) = uids.entry(c.uid).or_default();
        match c.what {
            Changed::Added => *held += 1,
            Changed::Removed => *held -= 1,
            Changed::Failed(..) => *failed += 1,
        }
        *peak = (*peak).max((*held).max(0) as u64);
    }
    let mut order: Vec<(u32, (u64, i64, u64))> = uids.into_iter().collect();
    order.sort_by_key(|(uid, (peak, _, failed))| (std::cmp::Reverse((*peak, *failed)), *uid));
    order.truncate(PANELS);

    let mut marks_left = MARKS;
    let mut marks_left_out = 0;
    let panels = order
        .into_iter()
        .map(|(uid, _)| {
            let mine: Vec<&Change> = changes.iter().filter(|c| c.uid == uid).collect();
            let mut panel = Panel {
                uid,
                cap: facts.cap(uid),
                held: vec![0; COLUMNS],
                bands: Vec::new(),
                failures: Vec::new(),
                diagnoses: Vec::new(),
            };
            held_and_bands(&mine, &column_of, facts, &mut panel);
            for c in &mine {
                if let Changed::Failed(syscall, errno) = c.what {
                    if marks_left == 0 {
                        marks_left_out += 1;
                        continue;
                    }
                    marks_left -= 1;
                    let call = syscall.name();
                    panel.failures.push(Mark {
                        at_s: at_s(c.time_ns),
                        pid: c.pid,
                        errno: errno.to_string(),
                        label: format!("{errno} from {call}: {}", facts.name(c.pid)),
                    });
                }
            }
            panel.diagnoses = facts
                .diagnoses
                .iter()
                .filter(|(of, _)| *of == uid)
                .map(|(_, mark)| mark.clone())
                .collect();
            panel
        })
        .collect();
    Chart {
        duration_s: facts.duration_s,
        panels,
        marks_left_out,
    }
}

/// The held outline (each column's highest) and the bands (each process at
/// each column's end), from one uid's changes in time order.
fn held_and_bands(
    mine: &[&Change],
    column_of: &dyn Fn(u64) -> usize,
    facts: &Facts,
    panel: &mut Panel,
) {
    // The top holders: most new watches charged to this uid.
    let mut added: HashMap<u32, u64> = HashMap::new();
    for c in mine.iter().filter(|c| c.what == Changed::Added) {
        *added.entry(c.pid).or_default() += 1;
    }
    let mut top: Vec<(u32, u64)> = added.into_iter().collect();
    top.sort_by_key(|(pid, n)| (std::cmp::Reverse(*n), *pid));
    top.truncate(BANDS);
    let band_of: HashMap<u32, usize> = top
        .iter()
        .enumerate()
        .map(|(i, (pid, _))| (*pid, i))
        .collect();
    let others = top.len();
    let mut now = vec![0i64; others + 1];
    let mut values = vec![vec![0u64; COLUMNS]; others + 1];
    let mut total = 0i64;
    let mut column = 0;
    for c in mine {
        let delta = match c.what {
            Changed::Added => 1,
            Changed::Removed => -1,
            Changed::Failed(..) => continue,
        };
        let at = column_of(c.time_ns);
        if at > column {
            // The columns before this change end with the values so far.
            let state = State { now: &now, total };
            state.fill(column..at, &mut values, &mut panel.held);
            column = at;
        }
        total += delta;
        now[band_of.get(&c.pid).copied().unwrap_or(others)] += delta;
        panel.held[column] = panel.held[column].max(total.max(0) as u64);
    }
    let state = State { now: &now, total };
    state.fill(column..COLUMNS, &mut values, &mut panel.held);
    let mut labels: Vec<String> = top.iter().map(|(pid, _)| facts.name(*pid)).collect();
    labels.push("others".to_owned());
    panel.bands = labels
        .into_iter()
        .zip(values)
        .filter(|(label, values)| label != "others" || values.iter().any(|v| *v > 0))
        .map(|(label, values)| Band { label, values })
        .collect();
}

/// Each band's and the total's watches at one moment.
struct State<'a> {
    now: &'a [i64],
    total: i64,
}

impl State<'_> {
    /// Columns that end in this state: the bands take its values, the
    /// outline at least its total.
    fn fill(&self, columns: std::ops::Range<usize>, values: &mut [Vec<u64>], held: &mut [u64]) {
        for col in columns {
            for (band, v) in self.now.iter().enumerate() {
                values[band][col] = (*v).max(0) as u64;
            }
            held[col] = held[col].max(self.total.max(0) as u64);
        }
    }
}
