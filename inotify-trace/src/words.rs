//! Counts in words, and text cut to its column, as every text view writes
//! them.

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
