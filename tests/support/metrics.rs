//! Values out of a Prometheus text scrape of jobq. (`promtool` checks the format itself; this
//! reads well-formed samples, whose label values hold no space, comma or quote.)

/// Sum of the samples of metric `name` that carry all of `labels`; `None` if there are none.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    let samples = text.lines().filter(|line| !line.starts_with('#'));
    samples
        .filter_map(|line| {
            // `name{k="v",...} value [timestamp]` or `name value [timestamp]`
            let (series, value) = line.split_once(' ')?;
            let value = value.split(' ').next()?.parse::<f64>().ok()?;
            let (metric, labels) = match series.strip_suffix('}') {
                Some(s) => s.split_once('{')?,
                None => (series, ""),
            };
            let has = |w: &String| labels.split(',').any(|l| l == w);
            (metric == name && wanted.iter().all(has)).then_some(value)
        })
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
