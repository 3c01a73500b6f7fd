//! Charts of a run, as SVG (plotters' SVG backend only: text is left to the browser, so no
//! font or bitmap code is built). Latency against users, on a logarithmic user axis because the
//! user counts span 1 to 200, in field seconds like the tables.

use super::analysis::StepReport;
use plotters::prelude::*;
use std::path::Path;

/// One line: a label, a colour and the (users, seconds) points.
struct Line {
    label: String,
    colour: RGBColor,
    points: Vec<(f64, f64)>,
    dashed: bool,
}

const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(127, 127, 127),
];

fn points(
    steps: &[&StepReport],
    pick: impl Fn(&StepReport) -> Option<f64>,
    scale: f64,
) -> Vec<(f64, f64)> {
    steps
        .iter()
        .filter_map(|s| pick(s).map(|ms| (s.users as f64, ms / 1000.0 / scale)))
        .collect()
}

/// Latency vs users of the load steps: first token and full answer, mean and p95.
///
/// # Errors
/// When the file cannot be written.
pub fn latency_vs_users(path: &Path, steps: &[StepReport], scale: f64) -> Result<(), String> {
    let s: Vec<&StepReport> = steps.iter().collect();
    let lines = vec![
        line(
            "first token, mean",
            0,
            false,
            points(&s, |r| r.all.ttft.mean, scale),
        ),
        line(
            "first token, p95",
            0,
            true,
            points(&s, |r| r.all.ttft.p95, scale),
        ),
        line(
            "full answer, mean",
            1,
            false,
            points(&s, |r| r.all.full.mean, scale),
        ),
        line(
            "full answer, p95",
            1,
            true,
            points(&s, |r| r.all.full.p95, scale),
        ),
        line(
            "generated answers: first token, p95",
            2,
            true,
            points(&s, |r| r.misses.ttft.p95, scale),
        ),
    ];
    draw(
        path,
        "LibriAssist: wait vs simultaneous users (field seconds)",
        &lines,
    )
}

/// First-token p95 vs users for each system of a comparison.
///
/// # Errors
/// When the file cannot be written.
pub fn compare_vs_users(path: &Path, steps: &[StepReport], scale: f64) -> Result<(), String> {
    let mut systems: Vec<&str> = Vec::new();
    for s in steps {
        if !systems.contains(&s.system.as_str()) {
            systems.push(&s.system);
        }
    }
    let mut lines = Vec::new();
    for (i, name) in systems.iter().enumerate() {
        let of: Vec<&StepReport> = steps.iter().filter(|s| s.system == *name).collect();
        lines.push(line(
            &format!("{name}: first token, p95"),
            i,
            false,
            points(&of, |r| r.all.ttft.p95, scale),
        ));
        lines.push(line(
            &format!("{name}: full answer, p95"),
            i,
            true,
            points(&of, |r| r.all.full.p95, scale),
        ));
    }
    draw(
        path,
        "Same backends, three balancers: p95 wait vs users (field seconds)",
        &lines,
    )
}

fn line(label: &str, colour: usize, dashed: bool, points: Vec<(f64, f64)>) -> Line {
    Line {
        label: label.to_owned(),
        colour: COLOURS[colour % COLOURS.len()],
        points,
        dashed,
    }
}

fn draw(path: &Path, title: &str, lines: &[Line]) -> Result<(), String> {
    let all: Vec<(f64, f64)> = lines
        .iter()
        .flat_map(|l| l.points.iter().copied())
        .collect();
    if all.is_empty() {
        return Err(format!("nothing to draw in {}", path.display()));
    }
    let x_max = all.iter().map(|p| p.0).fold(1.0, f64::max) * 1.3;
    let x_min = all
        .iter()
        .map(|p| p.0)
        .fold(f64::INFINITY, f64::min)
        .max(1.0)
        / 1.25;
    let y_max = all.iter().map(|p| p.1).fold(0.0, f64::max).max(0.1) * 1.1;
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    let e =
        |e: DrawingAreaErrorKind<std::io::Error>| format!("cannot draw {}: {e}", path.display());
    root.fill(&WHITE).map_err(e)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d((x_min..x_max).log_scale(), 0f64..y_max)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("simultaneous users")
        .y_desc("seconds (field)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()
        .map_err(e)?;
    for l in lines.iter().filter(|l| !l.points.is_empty()) {
        let style = ShapeStyle {
            color: l.colour.to_rgba(),
            filled: false,
            stroke_width: 2,
        };
        let series = if l.dashed {
            chart
                .draw_series(DashedLineSeries::new(l.points.clone(), 6, 4, style))
                .map_err(e)?
        } else {
            chart
                .draw_series(LineSeries::new(l.points.clone(), style))
                .map_err(e)?
        };
        let c = l.colour;
        series
            .label(l.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart
            .draw_series(
                l.points
                    .iter()
                    .map(|&p| Circle::new(p, 3, l.colour.filled())),
            )
            .map_err(e)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(e)?;
    root.present().map_err(e)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::analysis::Latency;
    use crate::bench::stats::Summary;

    #[test]
    fn draws_an_svg_with_every_series() {
        let steps: Vec<StepReport> = [1, 10, 100, 200]
            .iter()
            .map(|&u| StepReport {
                system: "LibriAssist".into(),
                users: u,
                all: Latency {
                    count: 2,
                    ttft: Summary::of([100.0 * u as f64, 150.0]),
                    full: Summary::of([500.0, 900.0]),
                },
                ..StepReport::default()
            })
            .collect();
        let path =
            std::env::temp_dir().join(format!("libriassist-chart-{}.svg", std::process::id()));
        latency_vs_users(&path, &steps, 0.1).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("first token, p95") && svg.contains("simultaneous users"));
        std::fs::remove_file(&path).unwrap();
        assert!(latency_vs_users(&path, &[], 0.1).is_err());
    }
}
