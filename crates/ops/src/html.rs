//! Self-contained HTML reports: a heading, a summary table (pass/fail marked where a rule
//! judges a figure), and charts drawn with `plotters`' SVG backend — axes with units, time on
//! x, a zero baseline, thresholds as dashed lines, points that break a threshold marked. The
//! report's JSON is its own file, named on the page.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Which side of a threshold passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// Values at or above it pass.
    AtLeast,
    /// Values at or below it pass.
    AtMost,
    /// A line for reference (an offered rate, say): nothing passes or fails by it.
    Reference,
}

/// A rule's line across a chart.
#[derive(Clone, Debug)]
pub struct Threshold {
    pub label: String,
    pub value: f64,
    pub bound: Bound,
}

impl Threshold {
    pub fn passes(&self, value: f64) -> bool {
        match self.bound {
            Bound::AtLeast => value >= self.value,
            Bound::AtMost => value <= self.value,
            Bound::Reference => true,
        }
    }
}

/// One line: (x, y) points in x order; `None` y leaves a gap.
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, Option<f64>)>,
}

#[derive(Clone, Debug)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    pub thresholds: Vec<Threshold>,
    /// Vertical lines at an x: (label, x) — an event such as a validator killed.
    pub markers: Vec<(String, f64)>,
    /// The top of the y axis (`None`: from the data and thresholds).
    pub y_max: Option<f64>,
}

const COLORS: [RGBColor; 3] = [RGBColor(31, 95, 191), RGBColor(217, 119, 6), RGBColor(124, 58, 237)];
const FAIL: RGBColor = RGBColor(179, 38, 30);

/// `chart` as an SVG element (or a note saying why it could not be drawn).
pub fn svg_chart(chart: &Chart) -> String {
    let mut svg = String::new();
    match draw(chart, &mut svg) {
        Ok(()) => svg,
        Err(e) => format!("<p>chart “{}” unavailable: {}</p>", escape(&chart.title), escape(&e)),
    }
}

fn draw(chart: &Chart, svg: &mut String) -> Result<(), String> {
    let xs = chart.series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let (x0, x1) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| (lo.min(x), hi.max(x)));
    let (x0, x1) = if x0.is_finite() {
        (x0.min(0.0), x1.max(x0 + 1.0))
    } else {
        (0.0, 1.0)
    };
    // An event after the last point still shows, with room for its label.
    let x1 = chart.markers.iter().fold(x1, |hi, (_, x)| hi.max(*x * 1.05));
    let values = chart.series.iter().flat_map(|s| s.points.iter().filter_map(|p| p.1));
    let data_max = values
        .chain(chart.thresholds.iter().map(|t| t.value))
        .fold(0.0_f64, f64::max);
    let y_max = chart
        .y_max
        .unwrap_or(if data_max > 0.0 { data_max * 1.15 } else { 1.0 });
    let error = |e: DrawingAreaErrorKind<std::io::Error>| e.to_string();
    {
        let root = SVGBackend::with_string(svg, (760, 280)).into_drawing_area();
        root.fill(&WHITE).map_err(error)?;
        let mut plot = ChartBuilder::on(&root)
            .caption(&chart.title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(x0..x1, 0.0..y_max)
            .map_err(error)?;
        plot.configure_mesh()
            .x_desc(&chart.x_label)
            .y_desc(&chart.y_label)
            .light_line_style(RGBColor(236, 238, 241))
            .bold_line_style(RGBColor(216, 221, 227))
            .x_labels(8)
            .y_labels(6)
            .draw()
            .map_err(error)?;
        for (index, series) in chart.series.iter().enumerate() {
            let color = COLORS[index % COLORS.len()];
            // Runs of consecutive values, so a gap stays a gap.
            let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
            for (x, y) in &series.points {
                match y {
                    Some(y) => runs.last_mut().map_or((), |run| run.push((*x, *y))),
                    None => runs.push(Vec::new()),
                }
            }
            let mut first = true;
            for run in runs.into_iter().filter(|run| !run.is_empty()) {
                let drawn = plot
                    .draw_series(LineSeries::new(run.clone(), color.stroke_width(2)).point_size(2))
                    .map_err(error)?;
                if first {
                    drawn
                        .label(series.name.clone())
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
                    first = false;
                }
            }
        }
        for threshold in &chart.thresholds {
            plot.draw_series(DashedLineSeries::new(
                vec![(x0, threshold.value), (x1, threshold.value)],
                6,
                4,
                FAIL.stroke_width(1),
            ))
            .map_err(error)?
            .label(threshold.label.clone())
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], FAIL.stroke_width(1)));
            let broken = chart
                .series
                .iter()
                .flat_map(|s| s.points.iter())
                .filter_map(|(x, y)| y.filter(|y| !threshold.passes(*y)).map(|y| (*x, y)));
            plot.draw_series(broken.map(|point| Cross::new(point, 5, FAIL.stroke_width(2))))
                .map_err(error)?;
        }
        for (label, x) in &chart.markers {
            plot.draw_series(LineSeries::new(vec![(*x, 0.0), (*x, y_max)], BLACK.stroke_width(1)))
                .map_err(error)?;
            // Labelled on the side with room.
            let side = if *x > (x0 + x1) / 2.0 { HPos::Right } else { HPos::Left };
            let style = TextStyle::from(("sans-serif", 12).into_font()).pos(Pos::new(side, VPos::Top));
            plot.draw_series(std::iter::once(Text::new(
                format!(" {label} "),
                (*x, y_max * 0.97),
                style,
            )))
            .map_err(error)?;
        }
        plot.configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(216, 221, 227))
            .draw()
            .map_err(error)?;
        root.present().map_err(error)?;
    }
    Ok(())
}

pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One row of the summary: what, its value, and the rule's verdict if a rule judges it.
pub struct Row {
    pub figure: String,
    pub value: String,
    pub verdict: Option<bool>,
}

impl Row {
    pub fn new(figure: impl Into<String>, value: impl Into<String>) -> Row {
        Row {
            figure: figure.into(),
            value: value.into(),
            verdict: None,
        }
    }

    pub fn judged(figure: impl Into<String>, value: impl Into<String>, passed: bool) -> Row {
        Row {
            figure: figure.into(),
            value: value.into(),
            verdict: Some(passed),
        }
    }
}

/// The whole page: a summary table, the charts from [`svg_chart`], and the name of the JSON
/// file that holds every number.
pub fn page(title: &str, note: &str, rows: &[Row], charts: &[String], json_file: &str) -> String {
    let judged = rows.iter().any(|row| row.verdict.is_some());
    let table: String = rows
        .iter()
        .map(|row| {
            let verdict = match row.verdict {
                Some(true) => "<td class=\"pass\">PASS</td>",
                Some(false) => "<td class=\"fail\">FAIL</td>",
                None if judged => "<td></td>",
                None => "",
            };
            format!(
                "<tr><th>{}</th><td>{}</td>{verdict}</tr>",
                escape(&row.figure),
                escape(&row.value)
            )
        })
        .collect();
    let overall = if judged {
        let passed = rows.iter().all(|row| row.verdict != Some(false));
        format!(
            "<p class=\"{}\">{}</p>",
            if passed { "pass" } else { "fail" },
            if passed {
                "PASSED: every rule holds."
            } else {
                "FAILED: a rule does not hold (marked FAIL)."
            }
        )
    } else {
        String::new()
    };
    format!(
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>{title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:800px;margin:2em auto;color:#1b1f24}}\
         table{{border-collapse:collapse;margin:1em 0}}th,td{{text-align:left;padding:.3em .8em;border-bottom:1px solid #d8dde3}}\
         th{{font-weight:500;color:#5c6670}}.pass{{color:#1d7a3a;font-weight:600}}.fail{{color:#b3261e;font-weight:600}}\
         svg{{display:block;margin:1.5em 0;max-width:100%;height:auto}}</style>\
         <body><h1>{title}</h1><p>{}</p>{overall}<table>{table}</table>{}\
         <p>Every number of this report is in <code>{}</code>.</p></body></html>",
        escape(note),
        charts.concat(),
        escape(json_file),
        title = escape(title),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart() -> Chart {
        Chart {
            title: "Success".into(),
            x_label: "seconds since start".into(),
            y_label: "ratio".into(),
            series: vec![Series {
                name: "success ratio".into(),
                points: vec![(0.0, Some(1.0)), (10.0, Some(0.5)), (20.0, None), (30.0, Some(0.97))],
            }],
            thresholds: vec![Threshold {
                label: "min 0.95".into(),
                value: 0.95,
                bound: Bound::AtLeast,
            }],
            markers: vec![("validator killed".into(), 15.0)],
            y_max: Some(1.0),
        }
    }

    #[test]
    fn a_chart_has_axes_labels_a_threshold_and_marks_what_breaks_it() {
        let svg = svg_chart(&chart());
        assert!(svg.starts_with("<svg"), "{svg}");
        for text in [
            "seconds since start",
            "ratio",
            "min 0.95",
            "validator killed",
            "success ratio",
        ] {
            assert!(svg.contains(text), "the chart shows “{text}”");
        }
        assert!(
            svg.contains("stroke=\"#B3261E\""),
            "the threshold and the breaking point in red"
        );
        // Axis labels from zero: the baseline is drawn.
        assert!(svg.contains("\n0.0\n</text>"), "{svg}");
    }

    #[test]
    fn the_page_has_a_summary_table_with_verdicts_and_names_its_json() {
        let html = page(
            "ezchain canary",
            "a <note>",
            &[Row::new("probes", "10"), Row::judged("success", "0.5", false)],
            &[svg_chart(&chart())],
            "canary_report.json",
        );
        assert!(html.contains("<td class=\"fail\">FAIL</td>") && html.contains("FAILED"));
        assert!(html.contains("canary_report.json"));
        assert!(html.contains("a &lt;note&gt;"), "text is escaped");
        assert!(!html.contains("\"probes_total\""), "no JSON dump");
    }
}
