//! Prometheus text exposition: the sum of a metric's samples, optionally those with some labels.
//! (`promtool` checks the format itself; this only reads values out of a well-formed scrape.)

/// One sample line: name, labels and value.
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// `key="value",...` (the text between the braces); `None` if malformed.
fn parse_labels(s: &str) -> Option<Vec<(String, String)>> {
    let mut labels = Vec::new();
    let mut rest = s.trim_start_matches([',', ' ']);
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        labels.push((key.trim().to_string(), value));
        rest = after[end + 1..].trim_start_matches([',', ' ']);
    }
    Some(labels)
}

/// Every sample line (comments, blank and unparsable lines skipped).
fn parse_samples(text: &str) -> impl Iterator<Item = Sample> + '_ {
    text.lines().filter_map(|line| {
        let line = line.trim();
        if line.starts_with('#') {
            return None;
        }
        let (name, labels, rest) = match line.split_once('{') {
            Some((name, tail)) => {
                let (labels, rest) = tail.rsplit_once('}')?;
                (name, parse_labels(labels)?, rest)
            }
            None => {
                let (name, rest) = line.split_once(' ')?;
                (name, Vec::new(), rest)
            }
        };
        let value = rest.split_whitespace().next()?.parse().ok()?;
        let name = name.to_string();
        Some(Sample {
            name,
            labels,
            value,
        })
    })
}

/// Sum of the samples of metric `name` that carry all of `labels`; `None` if there are none.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let has =
        |s: &Sample, (k, v): &(&str, &str)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v);
    parse_samples(text)
        .filter(|s| s.name == name && labels.iter().all(|l| has(s, l)))
        .map(|s| s.value)
        .reduce(|a, b| a + b)
}

/// Sum of all samples of metric `name` (over all label values); `None` if there are none.
pub fn metric_sum(text: &str, name: &str) -> Option<f64> {
    metric_value(text, name, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_samples_are_parsed() {
        let text = "# HELP x_total help\n# TYPE x_total counter\nx_total 3\n\
                    y{type=\"a\",state=\"pending\"} 2\ny{type=\"b\",state=\"pending\"} 5\n\
                    y{type=\"b\",state=\"running\"} 7 1700000000\nh_bucket{le=\"+Inf\"} 4\n";
        assert_eq!(metric_sum(text, "x_total"), Some(3.0));
        assert_eq!(metric_value(text, "y", &[("state", "pending")]), Some(7.0));
        assert_eq!(metric_sum(text, "y"), Some(14.0));
        assert_eq!(metric_value(text, "h_bucket", &[("le", "+Inf")]), Some(4.0));
        assert_eq!(metric_sum(text, "missing"), None);
    }
}
