//! One self-contained HTML page: the timeline and, beside it, the summary
//! as the text report prints it. No script, no external style or font.
use std::io;

use super::svg::xml;
use crate::summary::{human::write_summary, Summary};

pub fn page(title: &str, svg: &str, summary: &Summary) -> io::Result<String> {
    let mut text = Vec::new();
    write_summary(&mut text, summary)?;
    // The text report escapes what it prints already; here it is only made
    // safe for HTML.
    let text = xml(&String::from_utf8_lossy(&text));
    let picture = svg
        .split_once("?>")
        .map_or(svg, |(_, rest)| rest)
        .trim_start();
    Ok(format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 16px; }}
main {{ display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }}
pre {{ font-size: 12px; line-height: 1.3; margin: 0; }}
</style>
</head>
<body>
<main>
<figure>
{picture}</figure>
<pre class="summary">{text}</pre>
</main>
</body>
</html>
"#,
        title = xml(title)
    ))
}
