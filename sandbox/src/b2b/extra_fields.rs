//! Invoice extra fields: the store's configs (`GET /ip/invoices/extra-fields`) and the
//! `[{fieldName, fieldValue}]` values invoices carry, checked against those configs.

use serde_json::{json, Map, Value};

use super::fields::FieldErrors;
use super::query::{Page, RawQuery};
use super::reply::{self, ApiReply};
use super::state::{ExtraFieldConfig, ExtraFieldType, ExtraFieldValue, StoreData};

const KEY: &str = "extraFields";

/// The invoice extra fields every sandbox store is configured with. None is required, so
/// clients that send no extra fields work; names that are not configured are refused.
pub(crate) fn default_invoice_configs(store_hash: &str) -> Vec<ExtraFieldConfig> {
    let config =
        |id: u64, name: &str, field_type, list: &[&str], maximum_length| ExtraFieldConfig {
            id,
            uuid: format!(
                "00000000-0000-4000-8000-{:04x}{id:08x}",
                store_tag(store_hash)
            ),
            name: name.to_owned(),
            field_type,
            is_required: false,
            is_unique: false,
            visible_to_end_user: true,
            default_value: String::new(),
            maximum_length,
            list_of_value: list.iter().map(|value| (*value).to_owned()).collect(),
        };
    vec![
        config(1, "ERP Sync Source", ExtraFieldType::Text, &[], Some(100)),
        config(
            2,
            "Payment Terms",
            ExtraFieldType::Dropdown,
            &["Net 15", "Net 30", "Net 60", "Due on receipt"],
            None,
        ),
        config(3, "ERP Revision", ExtraFieldType::Number, &[], None),
        config(
            4,
            "Internal Note",
            ExtraFieldType::Multiline,
            &[],
            Some(1000),
        ),
    ]
}

/// A short stable number per store, so config uuids differ between stores.
fn store_tag(store_hash: &str) -> u16 {
    store_hash.bytes().fold(0u16, |tag, byte| {
        tag.wrapping_mul(31).wrapping_add(u16::from(byte))
    })
}

/// Reads `extraFields` of a request body (`None` when absent). On create, `require` also
/// demands the configs marked required.
pub(crate) fn parse_values(
    body: &Map<String, Value>,
    configs: &[ExtraFieldConfig],
    require: bool,
    errors: &mut FieldErrors,
) -> Option<Vec<ExtraFieldValue>> {
    let values: Option<Vec<ExtraFieldValue>> = match body.get(KEY) {
        None => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .filter_map(|item| parse_value(item, configs, errors))
                .collect(),
        ),
        Some(_) => {
            errors.push(KEY, "Please enter a valid list of {fieldName, fieldValue}");
            return None;
        }
    };
    if require {
        let given = values.as_deref().unwrap_or_default();
        for config in configs.iter().filter(|config| config.is_required) {
            if !given.iter().any(|value| value.name == config.name) {
                errors.push(KEY, format!("{} is required", config.name));
            }
        }
    }
    values
}

fn parse_value(
    item: &Value,
    configs: &[ExtraFieldConfig],
    errors: &mut FieldErrors,
) -> Option<ExtraFieldValue> {
    let (Some(Value::String(name)), Some(Value::String(value))) =
        (item.get("fieldName"), item.get("fieldValue"))
    else {
        errors.push(
            KEY,
            "each item needs a string fieldName and a string fieldValue",
        );
        return None;
    };
    let Some(config) = configs.iter().find(|config| &config.name == name) else {
        errors.push(
            KEY,
            format!("{name} is not a configured invoice extra field"),
        );
        return None;
    };
    let problem = match config.field_type {
        ExtraFieldType::Dropdown if !config.list_of_value.contains(value) => Some(format!(
            "{name} must be one of {}",
            config.list_of_value.join(", ")
        )),
        ExtraFieldType::Number
            if value
                .trim()
                .parse::<f64>()
                .map_or(true, |number| !number.is_finite()) =>
        {
            Some(format!("{name} must be a number"))
        }
        ExtraFieldType::Text | ExtraFieldType::Multiline
            if config
                .maximum_length
                .is_some_and(|max| value.chars().count() > max) =>
        {
            Some(format!("{name} is too long"))
        }
        _ => None,
    };
    if let Some(problem) = problem {
        errors.push(KEY, problem);
        return None;
    }
    Some(ExtraFieldValue {
        name: name.clone(),
        value: value.clone(),
    })
}

/// Update semantics (a guess, see the module docs of `invoices`): values are upserted by
/// name, fields not mentioned keep their value.
pub(crate) fn upsert(existing: &mut Vec<ExtraFieldValue>, incoming: Vec<ExtraFieldValue>) {
    for value in incoming {
        match existing
            .iter_mut()
            .find(|current| current.name == value.name)
        {
            Some(current) => current.value = value.value,
            None => existing.push(value),
        }
    }
}

pub(crate) fn render_values(values: &[ExtraFieldValue]) -> Value {
    values
        .iter()
        .map(|value| json!({ "fieldName": value.name, "fieldValue": value.value }))
        .collect()
}

/// `GET /ip/invoices/extra-fields`.
pub(crate) fn list(store: &StoreData, query: &RawQuery) -> ApiReply {
    let page = match Page::parse(query) {
        Ok(page) => page,
        Err(reply) => return reply,
    };
    let configs = &store.invoice_extra_fields;
    let items: Vec<Value> = page.slice(configs.iter().map(render_config).collect());
    reply::page(Value::Array(items), configs.len(), page.limit, page.offset)
}

fn render_config(config: &ExtraFieldConfig) -> Value {
    let only_for = |wanted: ExtraFieldType, text: String| {
        if config.field_type == wanted {
            text
        } else {
            String::new()
        }
    };
    json!({
        "id": config.id,
        "uuid": config.uuid,
        "fieldName": config.name,
        "fieldType": config.field_type as u8,
        "isRequired": config.is_required,
        "isUnique": config.is_unique,
        "visibleToEnduser": config.visible_to_end_user,
        "configType": 2,
        "defaultValue": config.default_value,
        "maximumLength": only_for(ExtraFieldType::Text, config.maximum_length.map(|max| max.to_string()).unwrap_or_default()),
        "numberOfRows": only_for(ExtraFieldType::Multiline, "5".to_owned()),
        "maximumValue": only_for(ExtraFieldType::Number, String::new()),
        "listOfValue": if config.field_type == ExtraFieldType::Dropdown { config.list_of_value.clone() } else { Vec::new() },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!("test bodies are objects"),
        }
    }

    #[test]
    fn accepts_configured_values_and_refuses_the_rest() {
        let configs = default_invoice_configs("s");
        let mut errors = FieldErrors::default();
        let good = body(json!({"extraFields": [
            {"fieldName": "Payment Terms", "fieldValue": "Net 30"},
            {"fieldName": "ERP Revision", "fieldValue": "3"}
        ]}));
        let values = parse_values(&good, &configs, true, &mut errors).unwrap();
        assert!(errors.is_empty());
        assert_eq!(
            render_values(&values)[0],
            json!({"fieldName": "Payment Terms", "fieldValue": "Net 30"})
        );

        let bad = body(json!({"extraFields": [
            {"fieldName": "Nope", "fieldValue": "x"},
            {"fieldName": "Payment Terms", "fieldValue": "Net 31"},
            {"fieldName": "ERP Revision", "fieldValue": "three"},
            {"fieldName": "ERP Sync Source", "fieldValue": 5}
        ]}));
        parse_values(&bad, &configs, false, &mut errors);
        assert_eq!(
            errors.render().matches("; ").count(),
            4,
            "{}",
            errors.render()
        );
    }

    #[test]
    fn absent_means_untouched_on_update_and_upsert_keeps_others() {
        let configs = default_invoice_configs("s");
        let mut errors = FieldErrors::default();
        assert!(parse_values(&body(json!({})), &configs, false, &mut errors).is_none());
        let mut existing = vec![
            ExtraFieldValue {
                name: "a".into(),
                value: "1".into(),
            },
            ExtraFieldValue {
                name: "b".into(),
                value: "2".into(),
            },
        ];
        upsert(
            &mut existing,
            vec![ExtraFieldValue {
                name: "b".into(),
                value: "3".into(),
            }],
        );
        assert_eq!(existing[1].value, "3");
        assert_eq!(existing.len(), 2);
    }

    #[test]
    fn lists_configs_with_pagination() {
        let mut store = StoreData::new("s");
        store.invoice_extra_fields = default_invoice_configs("s");
        let reply = list(&store, &RawQuery::parse(Some("limit=2&offset=1")));
        let body = reply.json_body();
        assert_eq!(
            body["meta"]["pagination"],
            json!({"totalCount": 4, "limit": 2, "offset": 1})
        );
        assert_eq!(body["data"][0]["fieldName"], "Payment Terms");
        assert_eq!(body["data"][0]["listOfValue"][1], "Net 30");
    }
}
