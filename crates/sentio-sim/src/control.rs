//! What a simulated device obeys: each kind declares its [`Property`]s, set through the desired
//! twin (`{"lights": "off"}`) or a command of the same name (`lights` with `{"value": "off"}`),
//! plus a few command aliases (a pump's `stop` and `start`). A device reports every property's
//! current value as its twin's `reported` document.
//!
//! An order is checked whole before anything changes: an unknown name or a value outside the
//! property's range is refused with a reason, and the device stays as it was.

use serde_json::{Map, Value};

/// The values a property takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Values {
    /// One of these words.
    OneOf(&'static [&'static str]),
    /// A number in `[min, max]`.
    Range {
        /// Lowest value accepted.
        min: f64,
        /// Highest value accepted.
        max: f64,
    },
}

/// A property a device kind understands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Property {
    /// Its name, in the twin and as a command.
    pub name: &'static str,
    /// What it may be set to.
    pub values: Values,
}

/// A checked value of a property.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Setting {
    Word(&'static str),
    Number(f64),
}

impl Setting {
    pub(crate) fn word(self) -> &'static str {
        match self {
            Setting::Word(w) => w,
            Setting::Number(_) => "",
        }
    }

    pub(crate) fn number(self) -> f64 {
        match self {
            Setting::Number(n) => n,
            Setting::Word(_) => f64::NAN,
        }
    }
}

/// A reported number as JSON: whole numbers as integers, so that a desired `50` and a
/// reported `50` compare equal (the twin's delta is by JSON value).
pub(crate) fn number(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        Value::from(v as i64)
    } else {
        Value::from(v)
    }
}

/// Checks `value` for the property `name` of a device with `properties`.
pub(crate) fn check(
    properties: &'static [Property],
    name: &str,
    value: &Value,
) -> Result<(&'static Property, Setting), String> {
    let property = properties
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| format!("unknown property {name:?} (known: {})", names(properties)))?;
    let setting = match property.values {
        Values::OneOf(words) => value
            .as_str()
            .and_then(|s| words.iter().find(|w| **w == s))
            .map(|w| Setting::Word(w))
            .ok_or_else(|| format!("{name} must be one of {}", words.join(", ")))?,
        Values::Range { min, max } => value
            .as_f64()
            .filter(|v| (min..=max).contains(v))
            .map(Setting::Number)
            .ok_or_else(|| format!("{name} must be a number from {min} to {max}"))?,
    };
    Ok((property, setting))
}

fn names(properties: &[Property]) -> String {
    let names: Vec<&str> = properties.iter().map(|p| p.name).collect();
    names.join(", ")
}

/// Checks every known property of a desired document; returns the settings and, for each
/// member refused (unknown or out of range), why. Refused members are left out (the twin's
/// delta keeps showing them).
pub(crate) fn check_desired(
    properties: &'static [Property],
    desired: &Map<String, Value>,
) -> (Vec<(&'static Property, Setting)>, Vec<String>) {
    let mut settings = Vec::new();
    let mut refused = Vec::new();
    for (name, value) in desired {
        match check(properties, name, value) {
            Ok(s) => settings.push(s),
            Err(why) => refused.push(why),
        }
    }
    (settings, refused)
}

/// A command as a property setting: `<property>` with `{"value": v}`, or one of `aliases`
/// (`(command, property, value)`), which take no params.
pub(crate) fn command(
    properties: &'static [Property],
    aliases: &[(&str, &str, f64)],
    name: &str,
    params: &Value,
) -> Result<(&'static Property, Setting), String> {
    if let Some((_, property, value)) = aliases.iter().find(|(c, _, _)| *c == name) {
        return check(properties, property, &Value::from(*value));
    }
    if !properties.iter().any(|p| p.name == name) {
        let mut known = names(properties);
        for (alias, _, _) in aliases {
            known.push_str(", ");
            known.push_str(alias);
        }
        return Err(format!("unknown command {name:?} (known: {known})"));
    }
    let value = params
        .get("value")
        .ok_or_else(|| format!("{name} takes params {{\"value\": ...}}"))?;
    check(properties, name, value)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const PROPS: &[Property] = &[
        Property {
            name: "lights",
            values: Values::OneOf(&["auto", "on", "off"]),
        },
        Property {
            name: "speed",
            values: Values::Range {
                min: 0.0,
                max: 100.0,
            },
        },
    ];

    #[test]
    fn check_table() {
        let cases: &[(&str, Value, Result<Setting, &str>)] = &[
            ("lights", json!("off"), Ok(Setting::Word("off"))),
            (
                "lights",
                json!("dim"),
                Err("lights must be one of auto, on, off"),
            ),
            ("lights", json!(false), Err("lights must be one of")),
            ("speed", json!(60), Ok(Setting::Number(60.0))),
            (
                "speed",
                json!(100.5),
                Err("speed must be a number from 0 to 100"),
            ),
            ("speed", json!("fast"), Err("speed must be a number")),
            (
                "fan",
                json!(1),
                Err("unknown property \"fan\" (known: lights, speed)"),
            ),
        ];
        for (name, value, want) in cases {
            let got = check(PROPS, name, value).map(|(_, s)| s);
            match (got, want) {
                (Ok(g), Ok(w)) => assert_eq!(g, *w, "{name} {value}"),
                (Err(g), Err(w)) => assert!(g.starts_with(w), "{name} {value}: {g}"),
                (g, w) => panic!("{name} {value}: got {g:?}, want {w:?}"),
            }
        }
    }

    #[test]
    fn commands_and_aliases() {
        let aliases = [("stop", "speed", 0.0)];
        let c = |name: &str, params: Value| command(PROPS, &aliases, name, &params);
        assert_eq!(c("stop", json!({})).unwrap().1, Setting::Number(0.0));
        assert_eq!(
            c("lights", json!({"value": "on"})).unwrap().1,
            Setting::Word("on")
        );
        assert!(
            c("lights", json!({"on": true}))
                .unwrap_err()
                .contains("value")
        );
        assert!(
            c("reboot", json!({}))
                .unwrap_err()
                .contains("known: lights, speed, stop")
        );
        let (ok, refused) = check_desired(
            PROPS,
            json!({"lights": "off", "speed": 200, "x": 1})
                .as_object()
                .unwrap(),
        );
        assert_eq!(ok.len(), 1);
        assert_eq!(refused.len(), 2);
    }
}
