//! Canonical rendering of opam values and files.
//!
//! One layout for every input (two-space indents, one element per line in multi-element field
//! lists, normalised strings and integers, no comments), so two files that differ only in
//! formatting render identically and diffs show real changes. Rendering then parsing gives the
//! same tree back (checked by the fuzzer).

use std::fmt::Write;

use super::{Item, LogOp, OpamFile, PfxOp, Value};

/// Renders a whole file, items in their order.
pub fn render_file(file: &OpamFile) -> String {
    let mut out = String::new();
    render_items(&mut out, &file.items, 0);
    out
}

/// Renders with top-level fields and sections sorted by name (stable, so repeated names keep
/// their order). Field order carries no meaning in opam files: this is the form compared to
/// decide whether two opam files are effectively equal.
pub fn render_normalised(file: &OpamFile) -> String {
    let mut items: Vec<&Item> = file.items.iter().collect();
    items.sort_by(|a, b| item_key(a).cmp(&item_key(b)));
    let mut out = String::new();
    for item in items {
        render_item(&mut out, item, 0);
    }
    out
}

fn item_key(item: &Item) -> (&str, Option<&str>) {
    match item {
        Item::Field { name, .. } => (name, None),
        Item::Section { kind, name, .. } => (kind, name.as_deref()),
    }
}

fn render_items(out: &mut String, items: &[Item], indent: usize) {
    for item in items {
        render_item(out, item, indent);
    }
}

fn render_item(out: &mut String, item: &Item, indent: usize) {
    pad(out, indent);
    match item {
        Item::Field { name, value } => {
            out.push_str(name);
            out.push_str(": ");
            match value {
                Value::List(values) if values.len() > 1 => {
                    out.push_str("[\n");
                    for v in values {
                        pad(out, indent + 2);
                        render_value(out, v);
                        out.push('\n');
                    }
                    pad(out, indent);
                    out.push(']');
                }
                _ => render_value(out, value),
            }
            out.push('\n');
        }
        Item::Section { kind, name, items } => {
            out.push_str(kind);
            if let Some(name) = name {
                out.push(' ');
                render_string(out, name);
            }
            out.push_str(" {\n");
            render_items(out, items, indent + 2);
            pad(out, indent);
            out.push_str("}\n");
        }
    }
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// Renders one value on one line (strings may still hold newlines).
pub fn render_value(out: &mut String, value: &Value) {
    match value {
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::String(s) => render_string(out, s),
        Value::Ident(i) => out.push_str(i),
        Value::Relop(op, l, r) => {
            render_value(out, l);
            out.push(' ');
            out.push_str(op.as_str());
            out.push(' ');
            render_value(out, r);
        }
        Value::PrefixRelop(op, v) => {
            out.push_str(op.as_str());
            out.push(' ');
            render_value(out, v);
        }
        Value::Logop(op, l, r) => {
            render_value(out, l);
            out.push_str(match op {
                LogOp::And => " & ",
                LogOp::Or => " | ",
            });
            render_value(out, r);
        }
        Value::Pfxop(op, v) => {
            out.push(match op {
                PfxOp::Not => '!',
                PfxOp::Defined => '?',
            });
            // `!` directly followed by `=` would lex as `!=`.
            if matches!(**v, Value::PrefixRelop(..)) {
                out.push(' ');
            }
            render_value(out, v);
        }
        Value::EnvBinding(l, op, r) => {
            render_value(out, l);
            out.push(' ');
            out.push_str(op.as_str());
            out.push(' ');
            render_value(out, r);
        }
        Value::List(values) => {
            out.push('[');
            render_values(out, values);
            out.push(']');
        }
        Value::Group(values) => {
            out.push('(');
            render_values(out, values);
            out.push(')');
        }
        Value::Option(v, filter) => {
            render_value(out, v);
            out.push_str(" {");
            render_values(out, filter);
            out.push('}');
        }
    }
}

/// Values separated by spaces.
pub fn render_values(out: &mut String, values: &[Value]) {
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        render_value(out, v);
    }
}

/// A value as a string, e.g. a dependency's constraint for display.
pub fn value_to_string(value: &Value) -> String {
    let mut out = String::new();
    render_value(&mut out, value);
    out
}

fn render_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            // Newlines and tabs stay literal: multi-line descriptions diff line by line.
            '\n' | '\t' => out.push(c),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
