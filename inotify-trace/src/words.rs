//! Counts in words, text cut to its column, and the phrases every text view
//! shares (live lines, the summary, `usage`, the diagnosis, the timeline): a
//! process's place, a known program's two lines, where a holder's watches
//! are.
use crate::{culprits::Culprit, escape::Escaped, held::HolderFacts, pods::Attribution};

/// A share in whole percent, rounded down: a share short of the whole never
/// reads 100% (1200 of 1204 is 99%, not the 100% that rounding gives).
pub fn whole_percent(pct: f64) -> String {
    format!("{}%", pct.floor() as i64)
}

/// `text` on one line, its runs of whitespace (newlines too) one space:
/// an error from elsewhere, made fit for a log line or an HTTP body.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `1.3 MiB`, `41 KiB`, `512 B`: a size in binary units, for the kernel
/// memory columns.
pub fn memory_text(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    match bytes {
        0..1024 => format!("{bytes} B"),
        1024..1_048_576 => format!("{:.0} KiB", b / KIB),
        1_048_576..1_073_741_824 => format!("{:.1} MiB", b / (KIB * KIB)),
        _ => format!("{:.1} GiB", b / (KIB * KIB * KIB)),
    }
}

/// `1 watch`, `2 watches`: the count and its noun.
pub fn plural(n: u64, noun: &str) -> String {
    let plural = match noun {
        "watch" | "process" => format!("{noun}es"),
        _ => format!("{noun}s"),
    };
    match n {
        1 => format!("1 {noun}"),
        n => format!("{n} {plural}"),
    }
}

/// `text` cut to `width` characters, its last one `…` when cut: the one
/// width policy of every text column that others follow (a long pod name
/// must not push RESULT and PATH right). JSON always carries the whole.
pub fn fit(text: &str, width: usize) -> std::borrow::Cow<'_, str> {
    if text.chars().count() <= width {
        return text.into();
    }
    let kept: String = text.chars().take(width.saturating_sub(1)).collect();
    (kept + "…").into()
}

/// A process's pod (and container), unit or container, escaped; empty
/// when its cgroup says nothing.
pub fn place_text(place: Option<&Attribution>) -> String {
    match place.map(Attribution::label) {
        Some(label) if label != "-" => Escaped(label.as_bytes()).to_string(),
        _ => String::new(),
    }
}

/// Arguments shown of a command line at most: the rest is cut with `...`.
const CMDLINE_SHOWN: usize = 160;

/// Two lines under a known program's row: `known: NAME: WHAT ITS WATCHES
/// ARE FOR` and `fix: FIX (LINK).` with whether raising the limit is the
/// fix for it.
pub fn culprit_lines(c: &Culprit) -> [String; 2] {
    let raise = match c.raise_limit.as_str() {
        "watches" => " Raising max_user_watches is the right fix for it.",
        "instances" => " Raising max_user_instances is the right fix for it.",
        "no" => " Raising the limit only postpones the next failure.",
        _ => "",
    };
    let link = c
        .link
        .as_ref()
        .map_or_else(String::new, |l| format!(" ({l})"));
    [
        format!("known: {}: {}", c.name, c.watches_for),
        format!("fix: {}{link}.{raise}", c.fix),
    ]
}

/// `where: 55 under /srv/data; cmdline: inotifywait -r -m /srv/data`, for a
/// holder whose watches or command line are known.
pub fn where_and_command(facts: &HolderFacts) -> Option<String> {
    let (places, cmdline) = (&facts.places, &facts.cmdline);
    let mut parts = Vec::new();
    if !places.is_empty() {
        let places: Vec<String> = places
            .iter()
            .map(|p| format!("{} under {}", p.watches, p.dir))
            .collect();
        parts.push(format!("where: {}", places.join(", ")));
    }
    if !cmdline.is_empty() {
        let args: Vec<String> = cmdline
            .iter()
            .map(|a| Escaped(a.as_bytes()).to_string())
            .collect();
        let mut text = args.join(" ");
        if text.chars().count() > CMDLINE_SHOWN {
            text = text.chars().take(CMDLINE_SHOWN - 3).collect::<String>() + "...";
        }
        parts.push(format!("cmdline: {text}"));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::{fit, plural};

    #[test]
    fn text_longer_than_its_column_is_cut_with_an_ellipsis() {
        assert_eq!(fit("kubelet", 15), "kubelet");
        assert_eq!(fit("exactly-15-char", 15), "exactly-15-char");
        assert_eq!(
            fit("kube-system/coredns-5d78c/coredns", 24),
            "kube-system/coredns-5d7…"
        );
        assert_eq!(
            fit("kube-system/coredns-5d78c/coredns", 24).chars().count(),
            24
        );
    }

    #[test]
    fn one_is_singular_and_the_rest_plural() {
        assert_eq!(plural(1, "watch"), "1 watch");
        assert_eq!(plural(2, "watch"), "2 watches");
        assert_eq!(plural(0, "process"), "0 processes");
        assert_eq!(plural(1, "instance"), "1 instance");
        assert_eq!(plural(3, "event"), "3 events");
    }
}
