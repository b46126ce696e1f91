//! How answers are printed: aligned tables (or `field: value` lines for one object) for
//! people, the API's JSON unchanged with `--json` for scripts.

use serde::Serialize;
use serde_json::Value;

/// A column: its header and where its value is in each row (a JSON pointer).
pub type Column = (&'static str, &'static str);

#[derive(Clone, Copy)]
pub struct Output {
    pub json: bool,
}

impl Output {
    /// A list: one table row per item (`items` of a page, or the array itself).
    pub fn list<T: Serialize>(&self, value: &T, columns: &[Column]) {
        let value = serde_json::to_value(value).expect("API types serialize");
        if self.json {
            return print_json(&value);
        }
        let empty = Vec::new();
        let rows = value.get("items").unwrap_or(&value).as_array().unwrap_or(&empty);
        print!("{}", table(rows, columns));
        if let Some(cursor) = value.get("next_cursor").and_then(Value::as_str) {
            eprintln!("(more: --cursor {cursor})");
        }
    }

    /// One object: `field: value` lines.
    pub fn object<T: Serialize>(&self, value: &T, fields: &[Column]) {
        let value = serde_json::to_value(value).expect("API types serialize");
        if self.json {
            return print_json(&value);
        }
        let width = fields.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
        for (name, pointer) in fields {
            println!("{name:<width$}  {}", cell(value.pointer(pointer)));
        }
    }

    /// A short confirmation for people; the object itself for scripts.
    pub fn done<T: Serialize>(&self, value: &T, message: &str) {
        if self.json {
            print_json(&serde_json::to_value(value).expect("API types serialize"));
        } else {
            println!("{message}");
        }
    }
}

fn print_json(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).expect("JSON prints"));
}

pub fn table(rows: &[Value], columns: &[Column]) -> String {
    let cells: Vec<Vec<String>> =
        rows.iter().map(|row| columns.iter().map(|(_, p)| cell(row.pointer(p))).collect()).collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (name, _))| cells.iter().map(|r| r[i].chars().count()).chain([name.len()]).max().unwrap())
        .collect();
    let line = |values: Vec<String>| {
        let padded: Vec<String> = values.iter().zip(&widths).map(|(v, w)| format!("{v:<w$}")).collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(columns.iter().map(|(name, _)| name.to_string()).collect());
    for row in cells {
        out.push_str(&line(row));
    }
    out
}

/// A value for a table cell: strings bare, absent and null as `-`, lists comma-separated.
pub fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) if items.is_empty() => "-".into(),
        Some(Value::Array(items)) => items.iter().map(|v| cell(Some(v))).collect::<Vec<_>>().join(","),
        // Objects in a cell (a build's deployments) by their name.
        Some(Value::Object(object)) if object.contains_key("name") => cell(object.get("name")),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_columns_and_show_missing_values_as_dashes() {
        let rows =
            vec![json!({"name": "a", "n": 1, "tags": ["x", "y"]}), json!({"name": "longer", "n": null})];
        let text = table(&rows, &[("NAME", "/name"), ("N", "/n"), ("TAGS", "/tags")]);
        assert_eq!(text, "NAME    N  TAGS\na       1  x,y\nlonger  -  -\n");
    }
}
