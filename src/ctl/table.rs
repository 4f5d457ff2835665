//! Lists of API objects as aligned text columns.

use serde_json::Value;

/// A column's value in `object`: `path` is dotted (`queue.name`); lists are
/// joined with commas, absent values are empty.
fn cell(object: &Value, path: &str) -> String {
    text(path.split('.').fold(object, |v, key| &v[key]))
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// A header row and one row per object, columns padded to their widest cell.
pub fn render(columns: &[&str], list: &Value) -> String {
    let objects = list.as_array().map(Vec::as_slice).unwrap_or_default();
    let mut rows: Vec<Vec<String>> = vec![columns.iter().map(|c| c.to_string()).collect()];
    rows.extend(
        objects
            .iter()
            .map(|object| columns.iter().map(|c| cell(object, c)).collect()),
    );
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| {
            rows.iter()
                .map(|row| row[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|row| {
            let padded: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(text, width)| format!("{text:<width$}"))
                .collect();
            padded.join("  ").trim_end().to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columns_align_and_nested_values_are_reached() {
        let list = json!([
            {"name": "a", "queue": {"name": "jobs"}, "tags": ["x", "y"]},
            {"name": "longer", "queue": {"name": "q"}, "tags": []},
        ]);
        assert_eq!(
            render(&["name", "queue.name", "tags"], &list),
            "name    queue.name  tags\na       jobs        x,y\nlonger  q"
        );
    }
}
