//! Query strings read from the raw text: the API repeats keys (`externalId[]=a&externalId[]=b`,
//! `extraFields=...` twice), which axum's `Query` cannot express.

use std::str::FromStr;

use super::reply::{self, ApiReply};

/// The most a page may hold; more is answered 413.
pub(crate) const MAX_LIMIT: usize = 250;
const DEFAULT_LIMIT: usize = 10;

#[derive(Debug, Default)]
pub(crate) struct RawQuery(Vec<(String, String)>);

impl RawQuery {
    pub(crate) fn parse(raw: Option<&str>) -> Self {
        let pairs = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
            .map(|(key, value)| (key.into_owned(), value.into_owned()))
            .collect();
        Self(pairs)
    }

    /// The first non-empty value of `key`: `?status=` is treated as absent, as query
    /// builders often send empty parameters.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(name, value)| name == key && !value.is_empty())
            .map(|(_, value)| value.as_str())
    }

    /// Every non-empty value under any of `keys`, in order.
    pub(crate) fn all(&self, keys: &[&str]) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(name, value)| keys.contains(&name.as_str()) && !value.is_empty())
            .map(|(_, value)| value.as_str())
            .collect()
    }

    /// A parsed value, or a 400 naming the parameter.
    pub(crate) fn number<T: FromStr>(&self, key: &str) -> Result<Option<T>, ApiReply> {
        self.get(key)
            .map(|text| {
                text.trim()
                    .parse()
                    .map_err(|_| reply::bad_request(&format!("{key}: Please enter a valid number")))
            })
            .transpose()
    }

    /// One of the allowed words, or a 400 listing them.
    pub(crate) fn one_of<'a>(
        &self,
        key: &str,
        allowed: &[&'a str],
    ) -> Result<Option<&'a str>, ApiReply> {
        let Some(text) = self.get(key) else {
            return Ok(None);
        };
        allowed
            .iter()
            .find(|word| **word == text)
            .copied()
            .map(Some)
            .ok_or_else(|| {
                reply::bad_request(&format!("{key}: must be one of {}", allowed.join(", ")))
            })
    }

    /// `isIncludeExtraFields`-style flags: `0` or `1`.
    pub(crate) fn flag(&self, key: &str) -> Result<bool, ApiReply> {
        Ok(self.one_of(key, &["0", "1"])? == Some("1"))
    }
}

/// `offset`/`limit` of a list request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Page {
    pub offset: usize,
    pub limit: usize,
}

impl Page {
    pub(crate) fn parse(query: &RawQuery) -> Result<Self, ApiReply> {
        let offset = query.number::<usize>("offset")?.unwrap_or(0);
        let limit = match query.number::<i64>("limit")? {
            None => DEFAULT_LIMIT,
            Some(limit) if limit < 1 => {
                return Err(reply::bad_request("limit: must be at least 1"))
            }
            Some(limit) => usize::try_from(limit).unwrap_or(usize::MAX),
        };
        if limit > MAX_LIMIT {
            return Err(reply::too_large(&format!(
                "limit: must be at most {MAX_LIMIT}"
            )));
        }
        Ok(Self { offset, limit })
    }

    /// How many items match, and this page of them sorted by `order` (reversed when
    /// `descending`), ties broken by `id` so that paging through equal keys is stable.
    pub(crate) fn sorted<'s, T>(
        &self,
        mut matching: Vec<&'s T>,
        descending: bool,
        order: impl Fn(&T, &T) -> std::cmp::Ordering,
        id: impl Fn(&T) -> u64,
    ) -> (usize, Vec<&'s T>) {
        matching.sort_by(|a, b| {
            let order = order(a, b).then(id(a).cmp(&id(b)));
            if descending {
                order.reverse()
            } else {
                order
            }
        });
        (matching.len(), self.slice(matching))
    }

    /// The items of this page.
    pub(crate) fn slice<T>(&self, items: Vec<T>) -> Vec<T> {
        items
            .into_iter()
            .skip(self.offset)
            .take(self.limit)
            .collect()
    }
}

/// `needle` (already lowercase) in `field`, without case.
pub(crate) fn contains(field: Option<&str>, needle: &str) -> bool {
    field.is_some_and(|text| text.to_lowercase().contains(needle))
}

/// Whether a `searchBy` + `q` search matches: on its field, or on any of `fields` when no field
/// was named; `searched(field, needle)` looks in one field.
pub(crate) fn search_matches(
    search: &Option<(Option<&'static str>, String)>,
    fields: &[&str],
    searched: impl Fn(&str, &str) -> bool,
) -> bool {
    match search {
        None => true,
        Some((Some(field), needle)) => searched(field, needle),
        Some((None, needle)) => fields.iter().any(|field| searched(field, needle)),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    #[test]
    fn repeated_and_bracketed_keys_are_all_kept() {
        let query = RawQuery::parse(Some(
            "externalId%5B%5D=a&externalId[]=b%20c&externalId=d&externalId[]=&q=x+y",
        ));
        assert_eq!(
            query.all(&["externalId[]", "externalId"]),
            vec!["a", "b c", "d"]
        );
        assert_eq!(query.get("q"), Some("x y"));
        assert_eq!(query.get("missing"), None);
    }

    #[test]
    fn paging_defaults_limits_and_errors() {
        assert_eq!(
            Page::parse(&RawQuery::parse(None)).unwrap(),
            Page {
                offset: 0,
                limit: 10
            }
        );
        let page = Page::parse(&RawQuery::parse(Some("offset=20&limit=250"))).unwrap();
        assert_eq!(
            page,
            Page {
                offset: 20,
                limit: 250
            }
        );
        let status = |raw| Page::parse(&RawQuery::parse(Some(raw))).unwrap_err().status;
        assert_eq!(status("limit=251"), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(status("limit=0"), StatusCode::BAD_REQUEST);
        assert_eq!(status("limit=-3"), StatusCode::BAD_REQUEST);
        assert_eq!(status("offset=-1"), StatusCode::BAD_REQUEST);
        assert_eq!(status("limit=ten"), StatusCode::BAD_REQUEST);
        assert_eq!(
            page.slice((0..300).collect()),
            (20..270).collect::<Vec<_>>()
        );
    }

    #[test]
    fn enums_and_flags_are_checked() {
        let query = RawQuery::parse(Some("orderBy=ASC&isIncludeExtraFields=1&sortBy=nope"));
        assert_eq!(
            query.one_of("orderBy", &["DESC", "ASC"]).unwrap(),
            Some("ASC")
        );
        assert!(query.flag("isIncludeExtraFields").unwrap());
        assert!(query.one_of("sortBy", &["createdAt"]).is_err());
        assert!(!RawQuery::parse(None).flag("isIncludeExtraFields").unwrap());
    }
}
