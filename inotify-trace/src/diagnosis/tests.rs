//! The diagnosis on a fixture shaped like /proc (`usage`'s).
use super::{diagnose, Failure};
use crate::{
    clock::WallClock,
    errno::Errno,
    event::{fixtures, Event},
    held::Held,
    limits::Limit,
    usage::tests::{fixture, machine, set_start_ticks, source, FakeProcess, POD_NS, POD_UID},
};

/// The failing process is gone (it exited at its ENOSPC, as `inotifywait
/// -r` does) and another started after the failure: the estimate counts
/// what the session saw the first take and leaves the second out; the
/// scope is the record's, not /proc's.
#[test]
fn a_diagnosis_counts_a_gone_failer_and_leaves_out_later_holders() {
    let root = tempfile::tempdir().unwrap();
    let mut processes = machine();
    processes.push(FakeProcess {
        pid: 401,
        comm: "late",
        euid: 100000,
        user_ns: POD_NS,
        fds: vec![(3, 7, vec![9])],
    });
    let table = fixture(root.path(), &processes);
    let failed_at_ns = 5_000_000_000;
    // Started a second after the failure (ticks of 1/CLK_TCK s).
    set_start_ticks(root.path(), 401, 6 * procfs::ticks_per_second());
    let mut header = fixtures::add_watch("inotifywait", -28);
    (header.pid, header.euid, header.uid) = (450, 100000, 100000);
    (header.user_ns, header.time_ns) = (POD_NS as u32, failed_at_ns);
    let record = fixtures::record(&header, b"/srv/data/n/7");
    let event = Event::decode(&record).unwrap();
    let failure = Failure {
        event: &event,
        limit: Limit::Watches,
        errno: Errno::ENOSPC,
        user_ns: Some(POD_NS),
        place: Some(crate::pods::Attribution {
            namespace: Some("shop".into()),
            pod: Some("cart-7".into()),
            pod_uid: Some(POD_UID.into()),
            ..Default::default()
        }),
    };
    let traced = Held {
        instances: 1,
        watches: 1,
    };
    let clock = WallClock {
        boot_epoch_ns: 0,
        utc_offset_s: 0,
    };
    let d = diagnose(
        &source(root.path(), &table),
        &failure,
        &clock,
        Some(failed_at_ns + 3_000_000),
        Some(traced),
    )
    .finish();
    let holders: Vec<(u32, u64, bool, bool)> = d
        .holders
        .iter()
        .map(|p| (p.pid, p.watches, p.gone, p.started_after_failure))
        .collect();
    assert_eq!(
        holders,
        [
            (400, 3, false, false),
            (450, 1, true, false),
            (401, 1, false, true)
        ]
    );
    let usage = d.usage.as_ref().unwrap();
    assert_eq!((usage.watches, usage.max_watches), (4, Some(4)));
    // 3 + 1 held now, less the later one's 1, plus the gone one's 1.
    assert_eq!(
        d.at_failure,
        Some(Held {
            instances: 2,
            watches: 4
        })
    );
    assert_eq!((d.uid, d.user_ns), (100000, Some(POD_NS)));
    assert_eq!(d.snapshot_after_ms, Some(3.0));
    let mut text = Vec::new();
    super::write_text(&mut text, &d, "").unwrap();
    let text = String::from_utf8(text).unwrap();
    for said in [
        "uid 100000 in user namespace 4026532999 held 4 of 4 watches and 2 of 128 instances at the failure",
        "the cap hit: user namespace 4026532999's user.max_inotify_watches (4)",
        "pid 450 (inotifywait), gone by then, had taken 1 watch and 1 instance in this session",
        "1 holder started after the failure, not counted",
        // No log directory for the pod here: it shows its uid. A later
        // holder has no share of what ran out; the gone failer held 1 of 4.
        "    401 late                    1        1      -  pod 1b2c3d4e-0000-4a5b-8c9d-0123456789ab  (started after the failure)",
        "    450 inotifywait             1        1    25%  shop/cart-7  (gone: as traced this session)",
        "diagnosis: inotifywait (pid 450, uid 100000, in shop/cart-7) got ENOSPC",
    ] {
        assert!(text.contains(said), "{said:?} not in:\n{text}");
    }
}

/// A record with the kernel's count: "at the failure" is the charge's
/// innermost level whatever /proc shows by the snapshot (here: the failer
/// released 4 of its watches before it), the full level is named (an
/// ancestor's here) with its cap, and a share short of the whole never
/// reads 100%.
#[test]
fn a_diagnosis_takes_the_failing_records_charge_as_what_was_held() {
    use inotify_trace_common::ChargeLevel;
    let root = tempfile::tempdir().unwrap();
    let table = fixture(root.path(), &machine());
    let mut header = fixtures::add_watch("cadvisor", -28);
    (header.pid, header.euid, header.uid) = (450, 100000, 100000);
    (header.user_ns, header.time_ns) = (POD_NS as u32, 5_000_000_000);
    let inner = ChargeLevel {
        user_ns: POD_NS as u32,
        uid: 100000,
        watches: 7,
        instances: 2,
        max_watches: i32::MAX as u32,
        max_instances: i32::MAX as u32,
    };
    let outer = ChargeLevel {
        user_ns: 4026531837,
        uid: 0,
        watches: 1204,
        instances: 9,
        max_watches: 1204,
        max_instances: 128,
    };
    let mut record = Vec::new();
    crate::event::encode_with_charge(&header, &[inner, outer], b"/sys/fs/cgroup/x", &mut record);
    let event = Event::decode(&record).unwrap();
    let failure = Failure {
        event: &event,
        limit: Limit::Watches,
        errno: Errno::ENOSPC,
        user_ns: Some(POD_NS),
        place: None,
    };
    let clock = WallClock {
        boot_epoch_ns: 0,
        utc_offset_s: 0,
    };
    let d = diagnose(&source(root.path(), &table), &failure, &clock, None, None).finish();
    assert_eq!(
        d.at_failure,
        Some(Held {
            instances: 2,
            watches: 7
        })
    );
    assert_eq!(
        (&d.charge[..], d.full_level),
        (&[inner, outer][..], Some(1))
    );
    let mut text = Vec::new();
    super::write_text(&mut text, &d, "").unwrap();
    let text = String::from_utf8(text).unwrap();
    for said in [
        "held 7 watches (no cap of its own) and 2 instances (no cap of its own) at the failure (the kernel's count)",
        "the full level is an ancestor's: uid 0 in the host's namespace held 1204 of 1204 watches",
        "the cap hit: the host's fs.inotify.max_user_watches (1204)",
    ] {
        assert!(text.contains(said), "{said:?} not in:\n{text}");
    }
    assert_eq!(crate::words::whole_percent(100.0 * 1200.0 / 1204.0), "99%");
    // No level full: said plainly.
    let calm = ChargeLevel {
        watches: 1203,
        ..outer
    };
    let mut record = Vec::new();
    crate::event::encode_with_charge(&header, &[inner, calm], b"/x", &mut record);
    let event = Event::decode(&record).unwrap();
    let d = diagnose(
        &source(root.path(), &table),
        &Failure {
            event: &event,
            ..failure
        },
        &clock,
        None,
        None,
    )
    .finish();
    assert_eq!(d.full_level, None);
    let mut text = Vec::new();
    super::write_text(&mut text, &d, "").unwrap();
    assert!(String::from_utf8(text)
        .unwrap()
        .contains("no level of the kernel's count was full right after the call"));
}
