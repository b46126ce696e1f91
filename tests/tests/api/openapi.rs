//! The OpenAPI contract: the checked-in document is exactly what the code generates, and every
//! operation is fully described.

use std::collections::BTreeSet;

use serde_json::Value;

const CHECKED_IN: &str = include_str!("../../../openapi/openapi.json");

#[test]
fn the_checked_in_document_matches_the_code() {
    let generated = petrel_api::routes::openapi_json();
    if generated != CHECKED_IN {
        let first_difference = generated
            .lines()
            .zip(CHECKED_IN.lines())
            .enumerate()
            .find(|(_, (a, b))| a != b)
            .map(|(i, (a, b))| format!("line {}: generated {a:?}, checked in {b:?}", i + 1))
            .unwrap_or_else(|| "the lengths differ".into());
        panic!(
            "openapi/openapi.json is out of date ({first_difference}).\n\
             Regenerate it: cargo run -p petrel-api -- openapi > openapi/openapi.json"
        );
    }
}

#[test]
fn every_operation_has_an_id_tag_summary_security_and_errors() {
    let doc: Value = serde_json::from_str(CHECKED_IN).unwrap();
    assert_eq!(doc["openapi"].as_str().map(|v| v.starts_with("3.1")), Some(true));
    let schemes: BTreeSet<&str> =
        doc["components"]["securitySchemes"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(schemes, BTreeSet::from(["agent", "bearer", "session", "worker"]));
    let mut ids = BTreeSet::new();
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let at = format!("{method} {path}");
            let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{at}: no operationId"));
            assert!(ids.insert(id.to_string()), "{at}: operationId {id} is used twice");
            assert!(op["tags"].as_array().is_some_and(|t| !t.is_empty()), "{at}: no tag");
            assert!(op["summary"].as_str().is_some_and(|s| !s.is_empty()), "{at}: no summary");
            let security =
                op["security"].as_array().unwrap_or_else(|| panic!("{at}: no security requirement"));
            assert!(!security.is_empty(), "{at}: empty security list");
            let responses = op["responses"].as_object().unwrap();
            assert!(responses.keys().any(|k| k.starts_with('2')), "{at}: no success response");
            assert!(responses.contains_key("500"), "{at}: no 500 response");
            let secured = security.iter().any(|r| r.as_object().is_some_and(|o| !o.is_empty()));
            if secured {
                assert!(responses.contains_key("401"), "{at}: secured but no 401");
            }
            if op.get("requestBody").is_some() {
                assert!(responses.contains_key("400"), "{at}: takes a body but documents no 400");
                let content = op["requestBody"]["content"].as_object().unwrap();
                if let Some(json) = content.get("application/json") {
                    let name = json["schema"]["$ref"]
                        .as_str()
                        .and_then(|r| r.rsplit('/').next())
                        .unwrap_or_else(|| panic!("{at}: body schema"));
                    assert!(
                        doc["components"]["schemas"][name].get("example").is_some(),
                        "{at}: request body schema {name} has no example"
                    );
                } else {
                    assert!(
                        content.contains_key("application/octet-stream"),
                        "{at}: body is neither JSON nor bytes"
                    );
                }
            }
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    let text = response.to_string();
                    assert!(
                        text.contains("problem+json")
                            || text.contains("#/components/responses/")
                            || path.ends_with("readyz"),
                        "{at}: error {status} is not a problem+json"
                    );
                }
            }
        }
    }
    assert!(operations >= 20, "{operations} operations");
}

#[tokio::test]
async fn the_server_serves_the_same_document_and_offline_docs() {
    let s = petrel_tests::TestServer::start().await;
    let c = s.client();
    let served = c.get("/api/v1/openapi.json").await.expect(200);
    let checked_in: Value = serde_json::from_str(CHECKED_IN).unwrap();
    assert_eq!(served.body, checked_in);
    let docs = c.get("/api/v1/docs/").await.expect(200);
    assert!(docs.content_type.starts_with("text/html"), "{}", docs.content_type);
    // Every script and stylesheet the page loads comes from this server, not a CDN.
    for needle in ["https://", "http://", "//cdn", "unpkg"] {
        let external =
            docs.text.lines().any(|l| (l.contains("src=") || l.contains("href=")) && l.contains(needle));
        assert!(!external, "the docs page loads something from outside: {}", docs.text);
    }
    let initializer = c.get("/api/v1/docs/swagger-initializer.js").await.expect(200);
    assert!(initializer.text.contains("/api/v1/openapi.json"));
    c.get("/api/v1/docs/swagger-ui-bundle.js").await.expect(200);
}
