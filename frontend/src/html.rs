//! Read-only content (tables, facts, diffs) as escaped HTML text, set with `inner_html`.
//!
//! Every `view!` shape compiles to its own rendering code, and the wasm budget (400 KB gzipped)
//! cannot pay for a shape per table cell: what has no event handlers is written here as text
//! instead. Every value goes through [`esc`] (text and attribute values alike); only the
//! builders below produce markup. Links stay client-side: the router handles clicks on any `<a>`.
//! No web dependencies, so the tests run on the host:
//! `rustc --edition 2024 --test frontend/src/html.rs -o /tmp/html-tests && /tmp/html-tests`.

use std::fmt::Write;

/// Escapes text for element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An element: `attrs` are (name, value) pairs, values escaped here; `inner` is markup made by
/// these functions (or [`esc`]aped text).
pub fn el(tag: &str, attrs: &[(&str, &str)], inner: &str) -> String {
    let mut out = String::with_capacity(inner.len() + 16 * (attrs.len() + 1));
    let _ = write!(out, "<{tag}");
    for (name, value) in attrs {
        let _ = write!(out, " {name}=\"{}\"", esc(value));
    }
    let _ = write!(out, ">{inner}</{tag}>");
    out
}

/// Text in an element with a class (or none): `<span class="mono">text</span>`.
pub fn text(tag: &str, class: &str, text: &str) -> String {
    if class.is_empty() { el(tag, &[], &esc(text)) } else { el(tag, &[("class", class)], &esc(text)) }
}

/// A link with text.
pub fn link(href: &str, text: &str) -> String {
    el("a", &[("href", href)], &esc(text))
}

/// A link with text and a class.
pub fn link_class(href: &str, class: &str, text: &str) -> String {
    el("a", &[("href", href), ("class", class)], &esc(text))
}

/// A table with a header row; `rows` are `<tr>` markup (see [`row`]).
pub fn table(testid: &str, headers: &[&str], rows: &[String]) -> String {
    let head: String = headers.iter().map(|h| el("th", &[("scope", "col")], &esc(h))).collect();
    let body: String = rows.concat();
    let inner = format!("<thead><tr>{head}</tr></thead><tbody>{body}</tbody>");
    let table = if testid.is_empty() {
        el("table", &[], &inner)
    } else {
        el("table", &[("data-testid", testid)], &inner)
    };
    el("div", &[("class", "table-wrap")], &table)
}

/// A table row of cells that are already markup.
pub fn row(testid: &str, cells: &[String]) -> String {
    let inner: String = cells.iter().map(|c| el("td", &[], c)).collect();
    if testid.is_empty() { el("tr", &[], &inner) } else { el("tr", &[("data-testid", testid)], &inner) }
}

/// A `<dl class="facts">` of (term, markup) pairs.
pub fn facts(testid: &str, items: &[(&str, String)]) -> String {
    let inner: String = items.iter().map(|(t, d)| format!("<dt>{}</dt><dd>{d}</dd>", esc(t))).collect();
    if testid.is_empty() {
        el("dl", &[("class", "facts")], &inner)
    } else {
        el("dl", &[("class", "facts"), ("data-testid", testid)], &inner)
    }
}

/// A unified diff, each line in a span classed by its kind (`diff-add`, `diff-del`, ...).
pub fn diff(text: &str) -> String {
    let lines: String = text
        .lines()
        .map(|l| {
            let class = if l.starts_with("+++") || l.starts_with("---") {
                "diff-file"
            } else if l.starts_with("@@") {
                "diff-hunk"
            } else if l.starts_with('+') {
                "diff-add"
            } else if l.starts_with('-') {
                "diff-del"
            } else {
                "diff-ctx"
            };
            format!("<span class=\"{class}\">{}\n</span>", esc(l))
        })
        .collect();
    el("pre", &[("class", "diff")], &lines)
}

/// `<option>`s of a select: (value, label, selected).
pub fn options<'a>(items: impl IntoIterator<Item = (&'a str, &'a str, bool)>) -> String {
    items
        .into_iter()
        .map(|(value, label, selected)| {
            let selected = if selected { " selected" } else { "" };
            format!("<option value=\"{}\"{selected}>{}</option>", esc(value), esc(label))
        })
        .collect()
}

/// "1 build", "2 builds".
pub fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_text_and_attributes() {
        assert_eq!(esc(r#"<a href="x">&'"#), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
        assert_eq!(
            el("a", &[("href", "/x?a=1&b=\"2\"")], &esc("<b>")),
            "<a href=\"/x?a=1&amp;b=&quot;2&quot;\">&lt;b&gt;</a>"
        );
        assert_eq!(text("span", "mono", "<x>"), "<span class=\"mono\">&lt;x&gt;</span>");
        assert_eq!(text("p", "", "a"), "<p>a</p>");
        assert_eq!(link("/jobs/1", "a&b"), "<a href=\"/jobs/1\">a&amp;b</a>");
    }

    #[test]
    fn tables_and_facts() {
        let t = table("t", &["A", "<B>"], &[row("r", &[esc("1"), esc("<2>")])]);
        assert_eq!(
            t,
            "<div class=\"table-wrap\"><table data-testid=\"t\"><thead><tr><th scope=\"col\">A</th>\
             <th scope=\"col\">&lt;B&gt;</th></tr></thead><tbody><tr data-testid=\"r\"><td>1</td>\
             <td>&lt;2&gt;</td></tr></tbody></table></div>"
        );
        assert_eq!(facts("", &[("k", esc("v"))]), "<dl class=\"facts\"><dt>k</dt><dd>v</dd></dl>");
    }

    #[test]
    fn diffs_are_classed_per_line() {
        let d = diff("--- a\n+++ b\n@@ -1 +1 @@\n ctx\n-old <x>\n+new");
        assert!(d.contains("<span class=\"diff-file\">--- a\n</span>"));
        assert!(d.contains("<span class=\"diff-hunk\">@@ -1 +1 @@\n</span>"));
        assert!(d.contains("<span class=\"diff-ctx\"> ctx\n</span>"));
        assert!(d.contains("<span class=\"diff-del\">-old &lt;x&gt;\n</span>"));
        assert!(d.contains("<span class=\"diff-add\">+new\n</span>"));
        assert_eq!(
            options([("a", "<A>", false), ("b", "B", true)]),
            "<option value=\"a\">&lt;A&gt;</option><option value=\"b\" selected>B</option>"
        );
        assert_eq!(plural(1, "build", "builds"), "1 build");
        assert_eq!(plural(2, "build", "builds"), "2 builds");
    }
}
