//! Counts in words, as every text view writes them.

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

#[cfg(test)]
mod tests {
    use super::plural;

    #[test]
    fn one_is_singular_and_the_rest_plural() {
        assert_eq!(plural(1, "watch"), "1 watch");
        assert_eq!(plural(2, "watch"), "2 watches");
        assert_eq!(plural(0, "process"), "0 processes");
        assert_eq!(plural(1, "instance"), "1 instance");
        assert_eq!(plural(3, "event"), "3 events");
    }
}
