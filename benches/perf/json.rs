//! A flat JSON object written by hand, so the summary needs no serializer.

use std::fmt::Write;

/// A flat JSON object under construction: numbers, plain strings (keys and
/// values here never need escaping), and nulls for what was not measured.
#[derive(Default)]
pub struct Json(String);

impl Json {
    /// Starts a member.
    fn key(mut self, key: &str) -> Self {
        self.0.push(if self.0.is_empty() { '{' } else { ',' });
        let _ = write!(self.0, "\"{key}\":");
        self
    }

    /// Adds a string member.
    pub fn str(self, key: &str, value: &str) -> Self {
        let mut j = self.key(key);
        let _ = write!(j.0, "\"{value}\"");
        j
    }

    /// Adds an integer member, or null.
    pub fn int(self, key: &str, value: Option<u64>) -> Self {
        let mut j = self.key(key);
        match value {
            Some(v) => {
                let _ = write!(j.0, "{v}");
            }
            None => j.0.push_str("null"),
        }
        j
    }

    /// Adds a number member with three decimals, or null (also for NaN and infinities).
    pub fn num(self, key: &str, value: Option<f64>) -> Self {
        let mut j = self.key(key);
        match value.filter(|v| v.is_finite()) {
            Some(v) => {
                let _ = write!(j.0, "{v:.3}");
            }
            None => j.0.push_str("null"),
        }
        j
    }

    /// Lets a helper append a group of fields mid-chain.
    pub fn with(self, f: impl FnOnce(Json) -> Json) -> Json {
        f(self)
    }

    /// Closes the object.
    pub fn finish(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_flat_and_nulls_missing_values() {
        let j = Json::default()
            .str("mode", "load")
            .int("n", Some(3))
            .num("r", Some(1.5))
            .num("x", None)
            .finish();
        assert_eq!(j, r#"{"mode":"load","n":3,"r":1.500,"x":null}"#);
    }
}
