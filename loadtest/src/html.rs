//! A self-contained HTML report with hand-written SVG plots.
use crate::report::{Report, Slice, text};
use crate::sample::QueueSample;

const W: f64 = 720.0;
const H: f64 = 260.0;
const PAD_L: f64 = 64.0;
const PAD_B: f64 = 36.0;
const PAD_T: f64 = 28.0;
const PAD_R: f64 = 16.0;

/// One plotted line.
struct Series<'a> {
    name: &'a str,
    color: &'a str,
    points: Vec<(f64, f64)>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A line chart; `log_y` plots log10 of y (values clamped to ≥ 0.001).
fn chart(title: &str, x_label: &str, y_label: &str, series: &[Series<'_>], log_y: bool) -> String {
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="11"><text x="{}" y="16" font-size="13" font-weight="bold">{}</text>"#,
        PAD_L,
        esc(title)
    );
    let Some(axes) = Axes::fit(series, log_y) else {
        svg += r#"<text x="300" y="130">no data</text></svg>"#;
        return svg;
    };
    svg += &axes.frame(x_label, y_label);
    for (n, line) in series.iter().enumerate() {
        svg += &axes.line(n, line);
    }
    svg + "</svg>"
}

/// The plotted ranges (y already log10 with `log_y`) and the plot box.
struct Axes {
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
    log_y: bool,
}

/// The plot box: left, right, top, bottom.
const BOX_L: f64 = PAD_L;
const BOX_R: f64 = W - PAD_R;
const BOX_T: f64 = PAD_T;
const BOX_B: f64 = H - PAD_B;

impl Axes {
    /// Ranges covering every point; `None` without any.
    fn fit(series: &[Series<'_>], log_y: bool) -> Option<Axes> {
        let mut axes = Axes {
            x0: f64::MAX,
            x1: f64::MIN,
            y0: f64::MAX,
            y1: f64::MIN,
            log_y,
        };
        for &(x, y) in series.iter().flat_map(|s| s.points.iter()) {
            axes.x0 = axes.x0.min(x);
            axes.x1 = axes.x1.max(x);
            axes.y0 = axes.y0.min(axes.ty(y));
            axes.y1 = axes.y1.max(axes.ty(y));
        }
        if axes.x0 > axes.x1 {
            return None;
        }
        if !log_y {
            axes.y0 = axes.y0.min(0.0);
        }
        if (axes.x1 - axes.x0).abs() < 1e-9 {
            axes.x1 = axes.x0 + 1.0;
        }
        if (axes.y1 - axes.y0).abs() < 1e-9 {
            axes.y1 = axes.y0 + 1.0;
        }
        Some(axes)
    }

    /// y as plotted.
    fn ty(&self, y: f64) -> f64 {
        if self.log_y { y.max(0.001).log10() } else { y }
    }

    fn px(&self, x: f64) -> f64 {
        PAD_L + (x - self.x0) / (self.x1 - self.x0) * (W - PAD_L - PAD_R)
    }

    fn py(&self, y: f64) -> f64 {
        H - PAD_B - (self.ty(y) - self.y0) / (self.y1 - self.y0) * (H - PAD_B - PAD_T)
    }

    /// The box, five grid lines with their labels on both axes, and the
    /// axis titles.
    fn frame(&self, x_label: &str, y_label: &str) -> String {
        let (bl, br, bt, bb) = (BOX_L, BOX_R, BOX_T, BOX_B);
        let mut svg = format!(
            r##"<rect x="{bl}" y="{bt}" width="{}" height="{}" fill="none" stroke="#999"/>"##,
            br - bl,
            bb - bt
        );
        for tick in 0..=4 {
            let share = tick as f64 / 4.0;
            let yv = self.y0 + share * (self.y1 - self.y0);
            let label = if self.log_y { 10f64.powf(yv) } else { yv };
            let y = bb - share * (bb - bt);
            svg += &format!(
                r##"<line x1="{bl}" x2="{br}" y1="{y:.1}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                bl - 4.0,
                y + 4.0,
                fmt(label)
            );
            let xv = self.x0 + share * (self.x1 - self.x0);
            svg += &format!(
                r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                self.px(xv),
                bb + 14.0,
                fmt(xv)
            );
        }
        svg += &format!(
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            (bl + br) / 2.0,
            H - 4.0,
            esc(x_label)
        );
        svg += &format!(
            r#"<text x="12" y="{:.1}" transform="rotate(-90 12 {:.1})" text-anchor="middle">{}</text>"#,
            (bt + bb) / 2.0,
            (bt + bb) / 2.0,
            esc(y_label)
        );
        svg
    }

    /// The `n`th series: its line and its legend entry.
    fn line(&self, n: usize, series: &Series<'_>) -> String {
        let path: Vec<String> = series
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", self.px(x), self.py(y)))
            .collect();
        let lx = BOX_R - 150.0;
        let ly = BOX_T + 14.0 + n as f64 * 14.0;
        format!(
            r#"<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/><line x1="{lx}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="{}" stroke-width="2"/><text x="{}" y="{:.1}">{}</text>"#,
            series.color,
            path.join(" "),
            lx + 18.0,
            ly - 4.0,
            ly - 4.0,
            series.color,
            lx + 22.0,
            ly,
            esc(series.name)
        )
    }
}

fn fmt(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// The whole page.
pub fn render(report: &Report) -> String {
    let charts = [
        latency_over_time(report),
        latency_distribution(report),
        throughput(report),
        queue_depth(report),
    ]
    .concat();
    let verdict_color = if report.verdict == "pass" {
        "#2a7"
    } else {
        "#c22"
    };
    format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>switchyard load test: {name}</title>
<style>body{{font-family:sans-serif;max-width:760px;margin:2em auto;color:#222}}pre{{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:12px}}svg{{display:block;margin:1em 0}}</style></head>
<body><h1>switchyard load test: {name}</h1><p>{desc}</p>
<p style="font-size:20px;color:{verdict_color}"><b>invariants: {verdict}</b></p>
{charts}
<h2>Summary</h2><pre>{summary}</pre>
<p>Full numbers: the JSON report written with this page.</p></body></html>"#,
        name = esc(&report.scenario),
        desc = esc(&report.description),
        verdict = report.verdict,
        summary = esc(&text(report)),
    )
}

/// One value of every timeline slice, against the slice's start.
fn over_timeline<'a>(
    report: &Report,
    name: &'a str,
    color: &'a str,
    value: impl Fn(&Slice) -> f64,
) -> Series<'a> {
    Series {
        name,
        color,
        points: report.timeline.iter().map(|b| (b.t_s, value(b))).collect(),
    }
}

fn latency_over_time(report: &Report) -> String {
    chart(
        "Ack latency over time (from intended send time)",
        "seconds into the run",
        "ms (log)",
        &[
            over_timeline(report, "p50", "#2a7", |b| b.p50_ms),
            over_timeline(report, "p99", "#e80", |b| b.p99_ms),
            over_timeline(report, "max", "#c22", |b| b.max_ms),
        ],
        true,
    )
}

fn latency_distribution(report: &Report) -> String {
    chart(
        "Ack latency distribution",
        "percentile (nines: 1 = p90, 2 = p99, 3 = p99.9)",
        "ms (log)",
        &[Series {
            name: "latency",
            color: "#36c",
            points: report
                .latency_distribution
                .iter()
                .filter(|(q, _)| *q < 100.0)
                .map(|(q, ms)| (-(1.0 - q / 100.0).log10(), *ms))
                .collect(),
        }],
        true,
    )
}

fn throughput(report: &Report) -> String {
    let slice = report
        .timeline
        .get(1)
        .map(|b| b.t_s - report.timeline[0].t_s)
        .filter(|d| *d > 0.0)
        .unwrap_or(1.0);
    chart(
        "Throughput",
        "seconds into the run",
        "requests/s",
        &[
            over_timeline(report, "sent", "#36c", |b| b.sent as f64 / slice),
            over_timeline(report, "2xx", "#2a7", |b| b.ok as f64 / slice),
            over_timeline(report, "errors", "#c22", |b| b.errors as f64 / slice),
        ],
        false,
    )
}

fn queue_depth(report: &Report) -> String {
    let series = |name, color, value: fn(&QueueSample) -> u64| Series {
        name,
        color,
        points: report
            .queue_depth
            .iter()
            .map(|q| (q.t_s, value(q) as f64))
            .collect(),
    };
    chart(
        "Queue depth",
        "seconds into the run",
        "messages",
        &[
            series("visible", "#36c", |q| q.visible),
            series("in flight", "#e80", |q| q.in_flight),
        ],
        false,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_draws_every_series_and_escapes_titles() {
        let s = chart(
            "a <b>",
            "x",
            "y",
            &[
                Series {
                    name: "one",
                    color: "#000",
                    points: vec![(0.0, 1.0), (1.0, 2.0)],
                },
                Series {
                    name: "two",
                    color: "#111",
                    points: vec![(0.0, 3.0)],
                },
            ],
            true,
        );
        assert_eq!(s.matches("<polyline").count(), 2);
        assert!(s.contains("a &lt;b&gt;"));
        assert!(chart("empty", "x", "y", &[], false).contains("no data"));
    }
}
