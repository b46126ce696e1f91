//! Generates the API client from the checked-in `openapi.json`, so every CLI call goes through
//! the published contract. progenitor reads OpenAPI 3.0, and utoipa writes 3.1: the document is
//! first rewritten into its 3.0 equivalent (nullable types, no `propertyNames`), which changes
//! no operation, path or schema shape.

use serde_json::{Map, Value};

fn main() {
    let spec_path = "openapi.json";
    println!("cargo:rerun-if-changed={spec_path}");
    let mut spec: Value =
        serde_json::from_str(&std::fs::read_to_string(spec_path).expect("read openapi.json"))
            .expect("openapi.json is JSON");
    spec["openapi"] = "3.0.3".into();
    to_openapi_30(&mut spec);
    one_success_type(&mut spec);
    problems_as_json(&mut spec);
    let spec: openapiv3::OpenAPI = serde_json::from_value(spec).expect("openapi.json as OpenAPI 3.0");
    let mut settings = progenitor::GenerationSettings::default();
    settings.with_interface(progenitor::InterfaceStyle::Builder).with_tag(progenitor::TagStyle::Merged);
    let mut generator = progenitor::Generator::new(&settings);
    let tokens = generator.generate_tokens(&spec).unwrap_or_else(|e| panic!("generating the client: {e}"));
    let file = syn::parse2(tokens).expect("the generated client parses");
    let out = std::path::Path::new(&std::env::var("OUT_DIR").unwrap()).join("client.rs");
    std::fs::write(out, prettyplease::unparse(&file)).expect("write the client");
}

/// `type: [T, "null"]` → `type: T, nullable: true`; `oneOf: [null, X]` → `allOf: [X],
/// nullable: true`; JSON Schema 2020's `propertyNames` dropped (3.0 has no such keyword).
fn to_openapi_30(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("propertyNames");
            if let Some(license) = map.get_mut("license").and_then(Value::as_object_mut) {
                license.remove("identifier");
            }
            nullable_type(map);
            nullable_one_of(map);
            map.values_mut().for_each(to_openapi_30);
        }
        Value::Array(items) => items.iter_mut().for_each(to_openapi_30),
        _ => {}
    }
}

fn nullable_type(map: &mut Map<String, Value>) {
    let Some(Value::Array(types)) = map.get("type") else { return };
    let rest: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
    if rest.len() == 1 && rest.len() < types.len() {
        map.insert("type".into(), rest[0].clone());
        map.insert("nullable".into(), true.into());
    }
}

fn nullable_one_of(map: &mut Map<String, Value>) {
    let Some(Value::Array(variants)) = map.get("oneOf") else { return };
    let is_null = |v: &Value| v.get("type").is_some_and(|t| t == "null");
    if variants.len() == 2 && variants.iter().any(is_null) {
        let mut other = variants.iter().find(|v| !is_null(v)).cloned().unwrap();
        // A `$ref` takes no siblings in 3.0: its description moves to the wrapper.
        if let Some(description) = other.as_object_mut().and_then(|o| o.remove("description")) {
            map.entry("description").or_insert(description);
        }
        map.remove("oneOf");
        map.insert("allOf".into(), Value::Array(vec![other]));
        map.insert("nullable".into(), true.into());
    }
}

/// progenitor 0.11 gives each operation one success type and one error type, so where a
/// body-less success (`204` from a long-poll with nothing to hand out) sits beside one with a
/// body, the body-less one is left out here, as are error answers that are not problem+json
/// (`/readyz`'s 503 with its checks). The generated client reports those as
/// `UnexpectedResponse` with their status, which is how the few callers of them see them.
fn one_success_type(spec: &mut Value) {
    let Some(paths) = spec.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for operation in paths.values_mut().filter_map(Value::as_object_mut).flat_map(|item| item.values_mut()) {
        let Some(responses) = operation.get_mut("responses").and_then(Value::as_object_mut) else { continue };
        let success = |code: &String| code.starts_with('2');
        let with_body = responses.iter().any(|(code, r)| success(code) && r.get("content").is_some());
        if with_body {
            responses.retain(|code, r| !success(code) || r.get("content").is_some());
        }
        let error = |code: &String| code.starts_with('4') || code.starts_with('5');
        let problem =
            |r: &Value| r.get("$ref").is_some() || r.pointer("/content/application~1problem+json").is_some();
        responses.retain(|code, r| !error(code) || problem(r));
    }
}

/// progenitor decodes only `application/json` bodies; problem+json is JSON too, and decoding it
/// gives callers the typed `Problem` rather than raw bytes.
fn problems_as_json(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Object(content)) = map.get_mut("content")
                && let Some(problem) = content.remove("application/problem+json")
            {
                content.entry("application/json").or_insert(problem);
            }
            map.values_mut().for_each(problems_as_json);
        }
        Value::Array(items) => items.iter_mut().for_each(problems_as_json),
        _ => {}
    }
}
