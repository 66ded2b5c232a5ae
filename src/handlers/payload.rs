//! Decoding a job's payload into a built-in type's serde struct. Each struct denies unknown
//! fields and keeps every field optional, so that "required" and the rules that span fields
//! are checked afterwards with their own messages. serde's messages are reworded to name the
//! field and say what to send; a field type with rules of its own (a `try_from` newtype) words
//! its message itself, naming its field.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// `payload` as a `T`; `not_an_object` is the error when it is not a JSON object (serde would
/// read an array as a struct's fields in order, which no payload means).
pub fn decode<T: DeserializeOwned>(payload: &Value, not_an_object: &str) -> Result<T, String> {
    let Some(obj) = payload.as_object() else {
        return Err(not_an_object.to_string());
    };
    T::deserialize(payload).map_err(|whole| {
        // serde does not say which field failed. Every field is optional, so each one can be
        // tried alone: the first that fails is the one to name.
        obj.iter()
            .find_map(|(k, v)| {
                let one = Value::Object(Map::from_iter([(k.clone(), v.clone())]));
                T::deserialize(&one)
                    .err()
                    .map(|e| reword(k, &e.to_string()))
            })
            .unwrap_or_else(|| whole.to_string())
    })
}

/// serde's message about `field`, in the words of jobq's other payload errors.
fn reword(field: &str, msg: &str) -> String {
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let expected = rest
            .split_once(", expected ")
            .map_or("no fields", |(_, e)| e)
            .trim_start_matches("one of ")
            .replace('`', "")
            .replace(" or ", ", ");
        return format!("unknown field {field:?}: expected {expected}");
    }
    if let Some((got, want)) = msg
        .strip_prefix("invalid type: ")
        .and_then(|r| r.split_once(", expected "))
    {
        return format!(
            "\"{field}\" must be {}, got {}",
            json_words(want),
            json_words(got)
        );
    }
    // A unit enum's unknown name: `"fit": "square" must be "contain", "cover" or "fill"`.
    if let Some((got, want)) = msg
        .strip_prefix("unknown variant `")
        .and_then(|r| r.split_once("`, expected "))
    {
        let names: Vec<String> = want
            .trim_start_matches("one of ")
            .split(", ")
            .flat_map(|n| n.split(" or "))
            .map(|n| format!("\"{}\"", n.trim_matches('`')))
            .collect();
        let (last, rest) = names
            .split_last()
            .expect("serde names at least one variant");
        let want = if rest.is_empty() {
            last.clone()
        } else {
            format!("{} or {last}", rest.join(", "))
        };
        return format!("\"{field}\": {} must be {want}", Value::String(got.into()));
    }
    if msg.starts_with(&format!("\"{field}\"")) {
        msg.to_string()
    } else {
        format!("\"{field}\": {msg}")
    }
}

/// serde's names of kinds of data in JSON's words: a sequence is a list, a map an object.
fn json_words(serde: &str) -> String {
    match serde {
        "sequence" | "a sequence" => "a list".into(),
        "map" | "a map" => "an object".into(),
        "a JSON number" => "a number".into(),
        other => other.replace('`', ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct P {
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        count: Option<u32>,
    }

    #[test]
    fn messages_name_the_field() {
        let d = |v: Value| decode::<P>(&v, "an object please");
        let p = d(json!({"name": "x", "count": 2})).unwrap();
        assert_eq!((p.name.as_deref(), p.count), (Some("x"), Some(2)));
        assert!(d(json!({"name": null})).is_ok());
        assert_eq!(d(json!([1])).unwrap_err(), "an object please");
        assert_eq!(
            d(json!({"name": "x", "nmae": 1})).unwrap_err(),
            "unknown field \"nmae\": expected name, count"
        );
        assert_eq!(
            d(json!({"name": 5})).unwrap_err(),
            "\"name\" must be a string, got integer 5"
        );
        assert!(d(json!({"count": -1}))
            .unwrap_err()
            .starts_with("\"count\": "));
    }
}
