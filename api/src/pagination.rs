//! Keyset pagination: `limit` and an opaque `cursor` that encodes the last row's sort key.
//! Queries fetch `limit + 1` rows to learn whether another page exists.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use petrel_wire::Page;
use petrel_wire::page::PageQuery;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

#[derive(Debug)]
pub struct Keyset<K> {
    pub limit: i64,
    /// The sort key of the last row of the previous page.
    pub after: Option<K>,
}

impl<K> Keyset<K> {
    /// What to pass as SQL `LIMIT`.
    pub fn fetch(&self) -> i64 {
        self.limit + 1
    }
}

pub fn keyset<K: DeserializeOwned>(q: &PageQuery) -> Result<Keyset<K>, ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::field("limit", format!("must be between 1 and {MAX_LIMIT}")));
    }
    let after = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(cursor) => Some(decode(cursor).ok_or_else(|| {
            ApiError::field("cursor", "is not a cursor this list returned; start again without it")
        })?),
    };
    Ok(Keyset { limit, after })
}

fn decode<K: DeserializeOwned>(cursor: &str) -> Option<K> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn encode<K: Serialize>(key: &K) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(key).unwrap_or_default())
}

/// Turns `limit + 1` fetched rows into a page and its next cursor.
pub fn page<T, K: Serialize>(mut rows: Vec<T>, keyset_limit: i64, key: impl Fn(&T) -> K) -> Page<T> {
    let limit = usize::try_from(keyset_limit).unwrap_or(usize::MAX);
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|last| encode(&key(last)))
    } else {
        None
    };
    Page { items: rows, next_cursor }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip_and_bad_input() {
        let q = PageQuery { limit: Some(2), cursor: None };
        let k: Keyset<(String, i64)> = keyset(&q).unwrap();
        let p = page(vec![1, 2, 3], k.limit, |i| (format!("n{i}"), *i as i64));
        assert_eq!(p.items, vec![1, 2]);
        let next = PageQuery { limit: Some(2), cursor: p.next_cursor };
        let k: Keyset<(String, i64)> = keyset(&next).unwrap();
        assert_eq!(k.after, Some(("n2".to_string(), 2)));
        let bad = PageQuery { limit: None, cursor: Some("!!".into()) };
        assert!(keyset::<(String, i64)>(&bad).is_err());
        let zero = PageQuery { limit: Some(0), cursor: None };
        assert!(keyset::<i64>(&zero).is_err());
    }
}
