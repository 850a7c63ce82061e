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
    /// The budget's user namespace, when the records carry the charge.
    pub user_ns: Option<u32>,
    /// The outline is the kernel's count (the records' charge), not new
    /// watches less removals seen.
    pub counted: bool,
    /// The cap that applies, and what it is.
    pub cap: Option<(u64, String)>,
    /// Per column, the most watches held in it.
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
    /// Per listed process: its uid, the watches it held at the start and
    /// at the end (when known), and the most it held (the summary's order).
    pub holders: Vec<Holder>,
    /// Per uid, the cap a diagnosis of it named (its user namespace's).
    pub caps: HashMap<u32, (u64, String)>,
    /// The host's, for the others.
    pub host_cap: Option<u64>,
    /// Each diagnosis: its uid and its mark.
    pub diagnoses: Vec<(u32, Mark)>,
}

#[derive(Clone, Copy)]
pub struct Holder {
    pub pid: u32,
    pub uid: u32,
    pub at_start: u64,
    pub at_end: Option<u64>,
    pub most_held: u64,
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
        let holders = summary
            .processes
            .iter()
            .map(|p| Holder {
                pid: p.pid,
                uid: p.uid,
                at_start: p.at_start().map_or(0, |h| h.watches),
                at_end: summary
                    .held_known
                    .then(|| p.held().map_or(0, |(_, watches)| watches)),
                most_held: p.most_held(),
            })
            .collect();
        Facts {
            duration_s: summary.duration_s,
            names,
            holders,
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

/// The initial user namespace's inode number (the kernel's
/// `PROC_USER_INIT_INO`): its caps are the `fs.inotify` sysctls.
pub const INITIAL_USER_NS: u32 = 0xEFFF_FFFD;

/// A panel's budget: the uid charged and, when the records carry the
/// charge, its level's user namespace.
type Budget = (u32, Option<u32>);

fn budget_of(c: &Change) -> Budget {
    (c.uid, c.charged.map(|k| k.user_ns))
}

/// What a change did to the count of watches.
fn delta(c: &Change) -> i64 {
    match c.what {
        Changed::Added => 1,
        Changed::Removed => -1,
        Changed::Failed(..) => 0,
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

    // The budgets that held the most, then those that only failed.
    let mut budgets: HashMap<Budget, (u64, i64, u64)> = HashMap::new();
    for c in changes {
        let (peak, held, failed) = budgets.entry(budget_of(c)).or_default();
        *held = match c.charged {
            Some(k) => i64::from(k.watches),
            None => *held + delta(c),
        };
        *failed += u64::from(matches!(c.what, Changed::Failed(..)));
        *peak = (*peak).max((*held).max(0) as u64);
    }
    let mut order: Vec<(Budget, (u64, i64, u64))> = budgets.into_iter().collect();
    order.sort_by_key(|(budget, (peak, _, failed))| (std::cmp::Reverse((*peak, *failed)), *budget));
    order.truncate(PANELS);

    let mut marks_left = MARKS;
    let mut marks_left_out = 0;
    let panels = order
        .into_iter()
        .map(|((uid, user_ns), _)| {
            let mine: Vec<&Change> = changes
                .iter()
                .filter(|c| budget_of(c) == (uid, user_ns))
                .collect();
            let counted = user_ns.is_some();
            // Counted: the cap the kernel enforced, from the records.
            let cap = match mine.iter().find_map(|c| c.charged) {
                Some(k) => Some((
                    u64::from(k.max_watches),
                    match k.user_ns {
                        INITIAL_USER_NS => "fs.inotify.max_user_watches".to_owned(),
                        ns => format!("user namespace {ns}'s user.max_inotify_watches"),
                    },
                )),
                None => facts.cap(uid),
            };
            let mut panel = Panel {
                uid,
                user_ns,
                counted,
                cap,
                held: vec![0; COLUMNS],
                bands: Vec::new(),
                failures: Vec::new(),
                diagnoses: Vec::new(),
            };
            match counted {
                true => counted_held_and_bands(&mine, &column_of, facts, &mut panel),
                false => held_and_bands(&mine, &column_of, facts, &mut panel),
            }
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

/// A budget whose records carry the kernel's count: the outline is that
/// count (exact at each traced call; before the first, the start snapshot's
/// count, else the first call's less what it did), so it never goes above
/// the cap. The bands start from what
/// each listed holder of the uid held at the start, follow its traced new
/// watches and removals, and give way where the count shows watches
/// released without a traced call (an exit, an instance closed, a directory
/// deleted): first the holders the end shows holding less, then the
/// largest. What no band accounts for is "others (untraced, or released)".
fn counted_held_and_bands(
    mine: &[&Change],
    column_of: &dyn Fn(u64) -> usize,
    facts: &Facts,
    panel: &mut Panel,
) {
    let mut top: Vec<Holder> = facts
        .holders
        .iter()
        .filter(|h| h.uid == panel.uid && h.most_held > 0)
        .copied()
        .collect();
    top.sort_by_key(|h| (std::cmp::Reverse(h.most_held), h.pid));
    top.truncate(BANDS);
    let band_of: HashMap<u32, usize> = top.iter().enumerate().map(|(i, h)| (h.pid, i)).collect();
    let mut now: Vec<i64> = top.iter().map(|h| h.at_start as i64).collect();
    let mut values = vec![vec![0u64; COLUMNS]; top.len() + 1];
    // Before the first traced call: what the start snapshot counted, else
    // the first call's count less what it did.
    let at_start: i64 = facts
        .holders
        .iter()
        .filter(|h| h.uid == panel.uid)
        .map(|h| h.at_start as i64)
        .sum();
    let mut count = match at_start {
        0 => mine
            .iter()
            .find_map(|c| c.charged.map(|k| i64::from(k.watches) - delta(c)))
            .unwrap_or(0)
            .max(0),
        counted => counted,
    };
    let mut column = 0;
    let end_column = |column: usize, count: i64, now: &mut Vec<i64>, values: &mut Vec<Vec<u64>>| {
        give_way(&top, now, count);
        let banded: i64 = now.iter().sum();
        for (band, v) in now.iter().enumerate() {
            values[band][column] = (*v).max(0) as u64;
        }
        values[top.len()][column] = (count - banded).max(0) as u64;
    };
    for c in mine {
        let at = column_of(c.time_ns);
        while column < at {
            panel.held[column] = panel.held[column].max(count as u64);
            end_column(column, count, &mut now, &mut values);
            column += 1;
        }
        if let Some(&band) = band_of.get(&c.pid) {
            now[band] += delta(c);
        }
        count = match c.charged {
            Some(k) => i64::from(k.watches),
            None => count + delta(c),
        }
        .max(0);
        panel.held[column] = panel.held[column].max(count as u64);
    }
    while column < COLUMNS {
        panel.held[column] = panel.held[column].max(count as u64);
        end_column(column, count, &mut now, &mut values);
        column += 1;
    }
    let mut labels: Vec<String> = top.iter().map(|h| facts.name(h.pid)).collect();
    labels.push("others (untraced, or released)".to_owned());
    panel.bands = labels
        .into_iter()
        .zip(values)
        .filter(|(_, values)| values.iter().any(|v| *v > 0))
        .map(|(label, values)| Band { label, values })
        .collect();
}

/// Lowers the bands until they add up to no more than `count`: first those
/// the end shows holding less than their band (they released watches
/// without a traced call), down to what they held then; then the largest.
fn give_way(top: &[Holder], now: &mut [i64], count: i64) {
    let mut excess = now.iter().sum::<i64>() - count;
    for (h, v) in top.iter().zip(now.iter_mut()) {
        if excess <= 0 {
            return;
        }
        if let Some(end) = h.at_end.map(|e| e as i64).filter(|e| *v > *e) {
            let cut = (*v - end).min(excess);
            *v -= cut;
            excess -= cut;
        }
    }
    while excess > 0 {
        let Some(largest) = now.iter_mut().filter(|v| **v > 0).max_by_key(|v| **v) else {
            return;
        };
        let cut = (*largest).min(excess);
        *largest -= cut;
        excess -= cut;
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
