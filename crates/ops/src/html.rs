//! Self-contained HTML reports: a heading, a summary, line charts as inline SVG, and the JSON.

/// One line chart of `values` over time.
pub fn svg_chart(title: &str, values: &[f64], unit: &str) -> String {
    let max = values.iter().copied().fold(1.0_f64, f64::max);
    let (width, height) = (640.0, 160.0);
    let step = width / (values.len().max(2) - 1) as f64;
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{:.1},{:.1}", i as f64 * step, height - v / max * height))
        .collect();
    format!(
        "<h2>{}</h2><svg width=\"{width}\" height=\"{}\" style=\"border:1px solid #ccc\">\
         <polyline fill=\"none\" stroke=\"#2a6\" stroke-width=\"2\" points=\"{}\"/>\
         <text x=\"4\" y=\"14\" font-size=\"12\">max {max:.2} {}</text></svg>",
        escape(title),
        height + 2.0,
        points.join(" "),
        escape(unit)
    )
}

pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The whole page: `summary` is plain text, `charts` are from [`svg_chart`].
pub fn page(title: &str, summary: &str, charts: &[String], json: &str) -> String {
    format!(
        "<!doctype html><meta charset=\"utf-8\"><title>{title}</title>\
         <body style=\"font-family:sans-serif;max-width:720px;margin:2em auto\">\
         <h1>{title}</h1><p>{}</p>{}<h2>Report</h2><pre>{}</pre></body>",
        escape(summary),
        charts.concat(),
        escape(json),
        title = escape(title),
    )
}
