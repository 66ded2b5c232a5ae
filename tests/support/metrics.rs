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
