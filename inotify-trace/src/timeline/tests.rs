use std::collections::HashMap;

use super::{
    chart::{chart, Facts, Holder, Mark, COLUMNS, MARKS},
    svg::svg,
};
use crate::{
    errno::Errno,
    event::Syscall,
    summary::aggregate::{Change, Changed, Charged},
};

const START: u64 = 1_000_000_000;

fn at(s: f64, pid: u32, uid: u32, what: Changed) -> Change {
    Change {
        charged: None,
        time_ns: START + (s * 1e9) as u64,
        pid,
        uid,
        what,
    }
}

fn facts(host_cap: u64) -> Facts {
    Facts {
        duration_s: 1.0,
        names: HashMap::from([
            (1, "big (pid 1)".to_owned()),
            (2, "<small> & co".to_owned()),
        ]),
        holders: Vec::new(),
        caps: HashMap::new(),
        host_cap: Some(host_cap),
        diagnoses: vec![(
            0,
            Mark {
                at_s: 0.9,
                pid: 3,
                errno: "ENOSPC".to_owned(),
                label: "diagnosis: failer (pid 3) got ENOSPC".to_owned(),
            },
        )],
    }
}

/// Two holders and a failer: pid 1 takes 3, pid 2 takes 2 (the peak, 5),
/// pid 1 gives one back, pid 3 fails.
fn session() -> Vec<Change> {
    let enospc = Changed::Failed(Syscall::AddWatch, Errno::ENOSPC);
    vec![
        at(0.1, 1, 0, Changed::Added),
        at(0.2, 1, 0, Changed::Added),
        at(0.3, 1, 0, Changed::Added),
        at(0.5, 2, 0, Changed::Added),
        at(0.5, 2, 0, Changed::Added),
        at(0.8, 1, 0, Changed::Removed),
        at(0.9, 3, 0, enospc),
    ]
}

#[test]
fn the_outline_keeps_the_peak_and_the_bands_add_up_at_each_column_end() {
    let c = chart(&session(), &facts(8), START);
    assert_eq!(c.panels.len(), 1);
    let p = &c.panels[0];
    assert_eq!(p.peak(), 5);
    assert_eq!(p.held.len(), COLUMNS);
    assert_eq!(*p.held.last().unwrap(), 4);
    let labels: Vec<&str> = p.bands.iter().map(|b| b.label.as_str()).collect();
    assert_eq!(
        labels,
        ["big (pid 1)", "<small> & co"],
        "no others band: all named"
    );
    for col in 0..COLUMNS {
        let stacked: u64 = p.bands.iter().map(|b| b.values[col]).sum();
        assert!(stacked <= p.held[col], "column {col}");
    }
    let end: Vec<u64> = p.bands.iter().map(|b| *b.values.last().unwrap()).collect();
    assert_eq!(end, [2, 2]);
    assert_eq!(p.failures.len(), 1);
    assert_eq!(p.failures[0].label, "ENOSPC from inotify_add_watch: pid 3");
    assert_eq!(p.diagnoses.len(), 1);
    assert_eq!(p.cap, Some((8, "fs.inotify.max_user_watches".to_owned())));
}

#[test]
fn the_svg_escapes_names_and_draws_the_cap_to_scale_or_says_it_is_above() {
    let picture = svg(&chart(&session(), &facts(8), START), "a <title>");
    assert!(picture.contains("&lt;small&gt; &amp; co"), "{picture}");
    assert!(!picture.contains("<small>"));
    assert!(picture.contains("a &lt;title&gt;"));
    assert!(picture.contains(r#"class="cap" data-cap="8""#), "{picture}");
    assert!(picture.contains(r#"class="held" data-peak="5""#));
    assert_eq!(picture.matches(r#"class="failure""#).count(), 1);
    // The host's 192k against a peak of 5: said, not drawn.
    let far = svg(&chart(&session(), &facts(192_530), START), "t");
    assert!(!far.contains(r#"class="cap""#));
    assert!(far.contains("cap 192530 (fs.inotify.max_user_watches), far above this scale"));
}

#[test]
fn a_storm_of_failures_is_drawn_up_to_the_cap_and_says_how_many_are_not() {
    let enospc = Changed::Failed(Syscall::AddWatch, Errno::ENOSPC);
    let storm: Vec<Change> = (0..MARKS + 500)
        .map(|i| at(i as f64 / 2000.0, 10 + i as u32, 0, enospc))
        .collect();
    let c = chart(&storm, &facts(8), START);
    assert_eq!(c.panels[0].failures.len(), MARKS);
    assert_eq!(c.marks_left_out, 500);
    let picture = svg(&c, "t");
    assert!(picture.contains("500 more failed calls are not drawn"));
    assert_eq!(picture.matches(r#"class="failure""#).count(), MARKS);
}

#[test]
fn an_empty_recording_says_so() {
    let picture = svg(&chart(&[], &facts(8), START), "t");
    assert!(picture.contains("No watch was added, removed or refused in this recording."));
}

/// The issue's scenario, with the kernel's count in every record: cap 100
/// in a user namespace; a holder of 90 from before the session exits at 4 s
/// (no traced call: only the count shows it), another process adds 10
/// after it. New less removals would peak at 110, above the cap; the
/// outline is the count, so it peaks at the cap, and the bands start with
/// the holder's 90, give way when the count drops, and add up to the
/// outline at every column.
#[test]
fn the_outline_is_the_kernels_count_and_never_goes_above_the_cap() {
    let ns = 4026532000;
    let counted = |s: f64, pid: u32, what: Changed, watches: u32| Change {
        charged: Some(Charged {
            user_ns: ns,
            watches,
            max_watches: 100,
        }),
        ..at(s, pid, 0, what)
    };
    let mut changes = Vec::new();
    // Before: the holder's 90, and a watcher's 10 (it is stopped at 2 s).
    changes.push(counted(0.5, 7, Changed::Added, 100));
    for (i, watches) in (91..=100).rev().enumerate() {
        // The stopped watcher's removals, traced: 99 down to 90.
        changes.push(counted(
            2.0 + i as f64 * 0.01,
            7,
            Changed::Removed,
            watches - 1,
        ));
    }
    // The holder exits at 4 s: no record; the next call shows 0 + 1.
    for i in 0..10 {
        changes.push(counted(5.0 + i as f64 * 0.1, 8, Changed::Added, i + 1));
    }
    let mut facts = facts(8192);
    facts.duration_s = 6.0;
    facts.diagnoses.clear();
    facts.holders = vec![
        Holder {
            pid: 9,
            uid: 0,
            at_start: 90,
            at_end: Some(0),
            most_held: 90,
        },
        Holder {
            pid: 7,
            uid: 0,
            at_start: 9,
            at_end: Some(0),
            most_held: 10,
        },
        Holder {
            pid: 8,
            uid: 0,
            at_start: 0,
            at_end: Some(10),
            most_held: 10,
        },
    ];
    facts.names.insert(9, "holder (pid 9)".to_owned());
    let chart = chart(&changes, &facts, START);
    assert_eq!(chart.panels.len(), 1);
    let panel = &chart.panels[0];
    assert_eq!((panel.user_ns, panel.counted), (Some(ns), true));
    assert_eq!(panel.peak(), 100, "never above the cap");
    assert_eq!(panel.cap.as_ref().map(|c| c.0), Some(100));
    for column in 0..COLUMNS {
        let banded: u64 = panel.bands.iter().map(|b| b.values[column]).sum();
        assert!(banded <= panel.held[column], "column {column}");
    }
    // The holder's band: 90 at the start, 0 at the end.
    let holder = panel
        .bands
        .iter()
        .find(|b| b.label == "holder (pid 9)")
        .expect("the holder from before the session has its band");
    assert_eq!((holder.values[0], holder.values[COLUMNS - 1]), (90, 0));
    let picture = svg(&chart, "t");
    assert!(picture.contains(r#"data-peak="100""#), "{picture}");
    assert!(picture.contains("the kernel&apos;s count at each traced call"));
}
