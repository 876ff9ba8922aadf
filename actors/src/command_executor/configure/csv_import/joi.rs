//! Item settings checked against a manifest the way OIBus's `JoiValidator.validateSettings`
//! does (Joi 18, `abortEarly: false`): all failures, each `"<path>" <problem>` with Joi's own
//! wording, joined by `. ` as Joi's `ValidationError.message` joins them.
//!
//! Covered: REQUIRED, MINIMUM, MAXIMUM, select values, enabling conditions (`then: required`,
//! `otherwise: optional, '' allowed`), unknown keys, nested objects and arrays. Not covered:
//! PATTERN and PLATFORM (no item manifest of OIBus 3.8.8 uses them), the array validators
//! UNIQUE / SINGLE_TRUE and the MQTT topic-overlap rule, and Joi's "safe number" / infinity
//! checks. Children are checked in manifest order; Joi sorts a `when` referral before its target,
//! which every manifest already does.

use serde_json::{Map, Value};

use crate::entities::manifests::Attribute;

/// Check `settings` against the object attribute `manifest`; the error is Joi's message.
pub fn validate(manifest: &Attribute, settings: &Map<String, Value>) -> Result<(), String> {
    let mut errors = Vec::new();
    check_object(manifest, settings, "", &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join(". "))
    }
}

fn label(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

fn check_object(
    manifest: &Attribute,
    value: &Map<String, Value>,
    path: &str,
    errors: &mut Vec<String>,
) {
    for child in &manifest.attributes {
        let mut required = child.is_required();
        let mut allow_empty = false;
        if let Some(condition) = manifest
            .enabling_conditions
            .iter()
            .find(|c| c.target == child.key)
        {
            let referral = value.get(&condition.referral);
            if referral.is_some_and(|r| condition.values.contains(r)) {
                required = true;
            } else {
                required = false;
                allow_empty = true;
            }
        }
        let at = label(path, &child.key);
        check(
            child,
            value.get(&child.key),
            required,
            allow_empty,
            &at,
            errors,
        );
    }
    for key in value.keys() {
        if !manifest.attributes.iter().any(|a| &a.key == key) {
            errors.push(format!("\"{}\" is not allowed", label(path, key)));
        }
    }
}

fn check(
    attribute: &Attribute,
    value: Option<&Value>,
    required: bool,
    allow_empty: bool,
    at: &str,
    errors: &mut Vec<String>,
) {
    let Some(value) = value else {
        if required {
            errors.push(format!("\"{at}\" is required"));
        }
        return;
    };
    if allow_empty && value.as_str() == Some("") {
        return;
    }
    let mut fail = |problem: String| errors.push(format!("\"{at}\" {problem}"));
    match attribute.kind.as_str() {
        "number" => {
            // Not required: null allowed. Numeric strings are converted, as Joi does.
            let number = match value {
                Value::Null if !required => return,
                Value::Number(n) => n.as_f64(),
                Value::String(s) => js_number(s),
                _ => None,
            };
            let Some(number) = number else {
                return fail("must be a number".into());
            };
            if let Some(min) = attribute.argument("MINIMUM").and_then(parse_int) {
                if number < min {
                    fail(format!("must be greater than or equal to {min}"));
                }
            }
            if let Some(max) = attribute.argument("MAXIMUM").and_then(parse_int) {
                if number > max {
                    fail(format!("must be less than or equal to {max}"));
                }
            }
        }
        "string-select" => {
            // Joi checks `valid(...)` before the type: anything else is "must be one of".
            let listed = value
                .as_str()
                .is_some_and(|s| attribute.selectable_values.iter().any(|v| v == s));
            if !listed {
                fail(format!(
                    "must be one of [{}]",
                    attribute.selectable_values.join(", ")
                ));
            }
        }
        "boolean" => {
            let ok = match value {
                Value::Bool(_) => true,
                Value::String(s) => matches!(s.to_lowercase().as_str(), "true" | "false"),
                Value::Number(n) => n.as_f64() == Some(0.0) || n.as_f64() == Some(1.0),
                _ => false,
            };
            if !ok {
                fail("must be a boolean".into());
            }
        }
        "object" => match value {
            Value::Object(map) => check_object(attribute, map, at, errors),
            _ => fail("must be of type object".into()),
        },
        "array" => match value {
            Value::Array(elements) => {
                for (i, element) in elements.iter().enumerate() {
                    let at = format!("{at}[{i}]");
                    match (element, attribute.root_attribute.as_deref()) {
                        (Value::Object(map), Some(root)) => check_object(root, map, &at, errors),
                        (Value::Object(_), None) => {}
                        _ => errors.push(format!("\"{at}\" must be of type object")),
                    }
                }
            }
            _ => fail("must be an array".into()),
        },
        // string, secret, code, timezone, instant, scan-mode, certificate: Joi.string(); when
        // not required, null and '' are allowed.
        _ => match value {
            Value::Null if !required => {}
            Value::String(s) if s.is_empty() && required => {
                fail("is not allowed to be empty".into())
            }
            Value::String(_) => {}
            _ => fail("must be a string".into()),
        },
    }
}

/// `parseInt` of a manifest argument.
fn parse_int(argument: &str) -> Option<f64> {
    let t = argument.trim();
    let digits_end = t
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && (c == '-' || c == '+'))))
        .map_or(t.len(), |(i, _)| i);
    t[..digits_end].parse::<i64>().ok().map(|v| v as f64)
}

/// A string Joi's number type converts: optional spaces, sign, decimal digits with an optional
/// fraction and exponent.
fn js_number(s: &str) -> Option<f64> {
    let t = s.trim();
    let body = t.strip_prefix(['+', '-']).unwrap_or(t);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |p: &str| p.chars().all(|c| c.is_ascii_digit());
    let mantissa_ok = digits(int)
        && digits(frac)
        && (!int.is_empty() || !frac.is_empty())
        && !(mantissa.contains('.') && int.is_empty() && frac.is_empty());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    if !(mantissa_ok && exponent_ok) {
        return None;
    }
    t.parse::<f64>().ok().filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::entities::manifests::south_item_settings;

    fn check_settings(south_type: &str, settings: Value) -> Result<(), String> {
        let manifest = south_item_settings(south_type).unwrap();
        match settings {
            Value::Object(map) => validate(&manifest, &map),
            _ => unreachable!("settings are an object"),
        }
    }

    #[test]
    fn opcua_needs_ha_mode_only_in_ha_mode() {
        assert_eq!(
            check_settings("opcua", json!({"nodeId": "ns=3", "mode": "ha"})),
            Err("\"haMode\" is required".into())
        );
        assert_eq!(
            check_settings(
                "opcua",
                json!({"nodeId": "ns=3", "mode": "da", "timestampOrigin": "point"})
            ),
            Ok(())
        );
        assert_eq!(
            check_settings(
                "opcua",
                json!({"nodeId": "ns=3", "mode": "ha", "haMode": {"aggregate": "avg"}})
            ),
            Err(
                "\"haMode.aggregate\" must be one of [raw, average, minimum, maximum, count]"
                    .into()
            )
        );
    }

    #[test]
    fn every_problem_is_reported_in_joi_wording() {
        assert_eq!(
            check_settings("modbus", json!({"modbusType": "coil", "x": 1})),
            Err("\"address\" is required. \"x\" is not allowed".into())
        );
        assert_eq!(
            check_settings(
                "folder-scanner",
                json!({"regex": "", "minAge": "abc", "preserveFiles": true,
                       "maxFiles": "-1", "maxSize": "0", "recursive": false})
            ),
            Err(
                "\"regex\" is not allowed to be empty. \"minAge\" must be a number. \
                 \"ignoreModifiedDate\" is required. \
                 \"maxFiles\" must be greater than or equal to 0"
                    .into()
            )
        );
    }

    #[test]
    fn joi_number_conversion_accepts_decimal_strings_only() {
        for ok in ["1", " 2.5 ", "-3", "1e3", ".5", "5."] {
            assert!(js_number(ok).is_some(), "{ok}");
        }
        for bad in ["", "abc", "0x10", "1e", ".", "1.2.3", "Infinity", "1e999"] {
            assert!(js_number(bad).is_none(), "{bad}");
        }
        assert_eq!(parse_int("1000ms"), Some(1000.0));
    }
}
