//! Forms drawn as markup (see `html`), read on submit with `FormData`, with the API's messages
//! per field written next to their fields.
//!
//! A form made with `view!` costs the wasm a rendering type per element and a signal per field;
//! the longer forms (a deployment, a quota) are markup instead: one listener for the form,
//! values read when it is submitted, and each field followed by a `data-error-for` span that
//! [`show_errors`] fills from the API's problem+json (`aria-invalid` set on the field).

use leptos::wasm_bindgen::JsCast;
use web_sys::{Element, FormData, HtmlFormElement};

use crate::api::ApiError;
use crate::html::{el, esc};

/// A form's values when it was submitted.
pub struct Values(FormData);

impl Values {
    /// The values of the form an event (`submit`) came from.
    pub fn of(ev: &web_sys::Event) -> Option<(HtmlFormElement, Values)> {
        let form: HtmlFormElement = ev.target()?.dyn_into().ok()?;
        let data = FormData::new_with_form(&form).ok()?;
        Some((form, Values(data)))
    }

    /// A field's value, trimmed ("" when absent).
    pub fn get(&self, name: &str) -> String {
        self.0.get(name).as_string().map(|s| s.trim().to_string()).unwrap_or_default()
    }

    /// Every value of a repeated field, in document order.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0.get_all(name).iter().map(|v| v.as_string().unwrap_or_default().trim().to_string()).collect()
    }

    /// A whole number, or `invalid` (a value the API refuses with its own message).
    pub fn number(&self, name: &str, invalid: i64) -> i64 {
        self.get(name).parse().unwrap_or(invalid)
    }

    /// A comma- or space-separated list.
    pub fn list(&self, name: &str) -> Vec<String> {
        split_list(&self.get(name))
    }
}

/// "0, 1 2" → ["0", "1", "2"].
pub fn split_list(s: &str) -> Vec<String> {
    s.split([',', ' ']).filter(|p| !p.is_empty()).map(str::to_string).collect()
}

/// Numbers of a list; one that is not becomes -1, which the API refuses with its message.
pub fn numbers(items: &[String]) -> Vec<i32> {
    items.iter().map(|s| s.parse().unwrap_or(-1)).collect()
}

/// A labelled input followed by its error span. `attrs` are the input's other attributes.
pub fn field(label: &str, name: &str, attrs: &[(&str, &str)], hint: &str) -> String {
    let id = format!("f-{name}");
    let error_id = format!("{id}-error");
    let mut all: Vec<(&str, &str)> = vec![("id", &id), ("name", name), ("aria-describedby", &error_id)];
    all.extend_from_slice(attrs);
    let input = if attrs.iter().any(|(k, v)| *k == "data-kind" && *v == "textarea") {
        el("textarea", &all, "")
    } else if attrs.iter().any(|(k, v)| *k == "data-kind" && *v == "select") {
        el("select", &all, "")
    } else {
        el("input", &all, "")
    };
    let hint = if hint.is_empty() { String::new() } else { el("small", &[("class", "muted")], &esc(hint)) };
    el(
        "div",
        &[("class", "field")],
        &format!("{}{input}{}{hint}", el("label", &[("for", &id)], &esc(label)), error_span(&error_id, name)),
    )
}

/// The span the API's message for `field` goes into (see [`show_errors`]).
pub fn error_span(id: &str, field: &str) -> String {
    el("span", &[("class", "field-error"), ("id", id), ("data-error-for", field), ("role", "alert")], "")
}

/// Writes each of the API's field messages into its span (clearing the others) and marks the
/// field before it `aria-invalid`. Spans with `data-row-field` belong to the repeated rows
/// (`data-row="<list>"`): the n-th row of a list shows `<list>[n].<row-field>`. Returns the
/// messages no span showed, as "field: message".
pub fn show_errors(form: &Element, error: Option<&ApiError>) -> Vec<String> {
    let errors = error.and_then(|e| e.problem.as_ref()).map(|p| p.errors.clone()).unwrap_or_default();
    let mut shown = vec![false; errors.len()];
    let mut place = |span: &Element, key: &str| {
        let mut text = String::new();
        for (i, e) in errors.iter().enumerate() {
            if e.field == key {
                if !text.is_empty() {
                    text.push_str("; ");
                }
                text.push_str(&e.message);
                shown[i] = true;
            }
        }
        span.set_text_content(Some(&text));
        if let Some(input) = span.previous_element_sibling() {
            let _ = if text.is_empty() {
                input.remove_attribute("aria-invalid")
            } else {
                input.set_attribute("aria-invalid", "true")
            };
        }
    };
    for span in all(form, "[data-error-for]") {
        let key = span.get_attribute("data-error-for").unwrap_or_default();
        place(&span, &key);
    }
    // Rows are numbered per list.
    let mut counts: Vec<(String, usize)> = Vec::new();
    for row in all(form, "[data-row]") {
        let list = row.get_attribute("data-row").unwrap_or_default();
        let n = match counts.iter_mut().find(|(l, _)| *l == list) {
            Some((_, c)) => {
                *c += 1;
                *c - 1
            }
            None => {
                counts.push((list.clone(), 1));
                0
            }
        };
        for span in all(&row, "[data-row-field]") {
            let key = format!("{list}[{n}].{}", span.get_attribute("data-row-field").unwrap_or_default());
            place(&span, &key);
        }
    }
    errors
        .iter()
        .zip(shown)
        .filter(|(_, shown)| !shown)
        .map(|(e, _)| format!("{}: {}", e.field, e.message))
        .collect()
}

/// The elements under `root` that match `css`.
pub fn all(root: &Element, css: &str) -> Vec<Element> {
    let Ok(list) = root.query_selector_all(css) else { return Vec::new() };
    (0..list.length()).filter_map(|i| list.item(i)?.dyn_into::<Element>().ok()).collect()
}

/// The element with this id, if the page has it.
pub fn by_id(id: &str) -> Option<Element> {
    web_sys::window()?.document()?.get_element_by_id(id)
}

/// Sets the value of the input with this id.
pub fn set_value(id: &str, value: &str) {
    if let Some(input) = by_id(id).and_then(|e| e.dyn_into::<web_sys::HtmlInputElement>().ok()) {
        input.set_value(value);
    }
}
