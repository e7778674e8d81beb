//! Reading a Prometheus text scrape in tests (the output of
//! `service::metrics_router` or `PrometheusHandle::render`).

use std::collections::HashMap;

/// The sample lines of a scrape (`name{labels} value`, comments and blank
/// lines left out), by their series (`name{labels}` exactly as rendered).
/// Lines whose value is not a number are left out.
pub fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// The value of `series` in `samples`.
///
/// # Panics
/// When the scrape has no such series (a test's failure, naming it).
pub fn sample(samples: &HashMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no sample {series} in {samples:#?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_and_values_are_read_and_comments_skipped() {
        let s = samples(
            "# HELP x_total X.\n# TYPE x_total counter\nx_total{a=\"b c\"} 3\n\ny 0.5\nz NaNx\n",
        );
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!(sample(&s, "x_total{a=\"b c\"}"), 3.0);
        assert_eq!(sample(&s, "y"), 0.5);
    }
}
