//! A self-contained HTML report with hand-written SVG plots.
use crate::report::{Report, text};

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
    let ty = |y: f64| if log_y { y.max(0.001).log10() } else { y };
    let pts = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(ty(y));
        y1 = y1.max(ty(y));
    }
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="11"><text x="{}" y="16" font-size="13" font-weight="bold">{}</text>"#,
        PAD_L,
        esc(title)
    );
    if x0 > x1 {
        svg += r#"<text x="300" y="130">no data</text></svg>"#;
        return svg;
    }
    if !log_y {
        y0 = y0.min(0.0);
    }
    if (x1 - x0).abs() < 1e-9 {
        x1 = x0 + 1.0;
    }
    if (y1 - y0).abs() < 1e-9 {
        y1 = y0 + 1.0;
    }
    let px = |x: f64| PAD_L + (x - x0) / (x1 - x0) * (W - PAD_L - PAD_R);
    let py = |y: f64| H - PAD_B - (ty(y) - y0) / (y1 - y0) * (H - PAD_B - PAD_T);
    let (bl, br, bt, bb) = (PAD_L, W - PAD_R, PAD_T, H - PAD_B);
    svg += &format!(
        r##"<rect x="{bl}" y="{bt}" width="{}" height="{}" fill="none" stroke="#999"/>"##,
        br - bl,
        bb - bt
    );
    for k in 0..=4 {
        let f = k as f64 / 4.0;
        let yv = y0 + f * (y1 - y0);
        let label = if log_y { 10f64.powf(yv) } else { yv };
        let y = bb - f * (bb - bt);
        svg += &format!(
            r##"<line x1="{bl}" x2="{br}" y1="{y:.1}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            bl - 4.0,
            y + 4.0,
            fmt(label)
        );
        let xv = x0 + f * (x1 - x0);
        svg += &format!(
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            px(xv),
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
    for (n, s) in series.iter().enumerate() {
        let path: Vec<String> = s
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        svg += &format!(
            r#"<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/>"#,
            s.color,
            path.join(" ")
        );
        let lx = br - 150.0;
        let ly = bt + 14.0 + n as f64 * 14.0;
        svg += &format!(
            r#"<line x1="{lx}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="{}" stroke-width="2"/><text x="{}" y="{:.1}">{}</text>"#,
            lx + 18.0,
            ly - 4.0,
            ly - 4.0,
            s.color,
            lx + 22.0,
            ly,
            esc(s.name)
        );
    }
    svg + "</svg>"
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
pub fn render(r: &Report) -> String {
    let slice = r
        .timeline
        .get(1)
        .map(|b| b.t_s - r.timeline[0].t_s)
        .filter(|d| *d > 0.0)
        .unwrap_or(1.0);
    let over_time = chart(
        "Ack latency over time (from intended send time)",
        "seconds into the run",
        "ms (log)",
        &[
            Series {
                name: "p50",
                color: "#2a7",
                points: r.timeline.iter().map(|b| (b.t_s, b.p50_ms)).collect(),
            },
            Series {
                name: "p99",
                color: "#e80",
                points: r.timeline.iter().map(|b| (b.t_s, b.p99_ms)).collect(),
            },
            Series {
                name: "max",
                color: "#c22",
                points: r.timeline.iter().map(|b| (b.t_s, b.max_ms)).collect(),
            },
        ],
        true,
    );
    let dist = chart(
        "Ack latency distribution",
        "percentile (nines: 1 = p90, 2 = p99, 3 = p99.9)",
        "ms (log)",
        &[Series {
            name: "latency",
            color: "#36c",
            points: r
                .latency_distribution
                .iter()
                .filter(|(q, _)| *q < 100.0)
                .map(|(q, ms)| (-(1.0 - q / 100.0).log10(), *ms))
                .collect(),
        }],
        true,
    );
    let tput = chart(
        "Throughput",
        "seconds into the run",
        "requests/s",
        &[
            Series {
                name: "sent",
                color: "#36c",
                points: r
                    .timeline
                    .iter()
                    .map(|b| (b.t_s, b.sent as f64 / slice))
                    .collect(),
            },
            Series {
                name: "2xx",
                color: "#2a7",
                points: r
                    .timeline
                    .iter()
                    .map(|b| (b.t_s, b.ok as f64 / slice))
                    .collect(),
            },
            Series {
                name: "errors",
                color: "#c22",
                points: r
                    .timeline
                    .iter()
                    .map(|b| (b.t_s, b.errors as f64 / slice))
                    .collect(),
            },
        ],
        false,
    );
    let queue = chart(
        "Queue depth",
        "seconds into the run",
        "messages",
        &[
            Series {
                name: "visible",
                color: "#36c",
                points: r
                    .queue_depth
                    .iter()
                    .map(|q| (q.t_s, q.visible as f64))
                    .collect(),
            },
            Series {
                name: "in flight",
                color: "#e80",
                points: r
                    .queue_depth
                    .iter()
                    .map(|q| (q.t_s, q.in_flight as f64))
                    .collect(),
            },
        ],
        false,
    );
    let verdict_color = if r.verdict == "pass" { "#2a7" } else { "#c22" };
    format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>switchyard load test: {name}</title>
<style>body{{font-family:sans-serif;max-width:760px;margin:2em auto;color:#222}}pre{{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:12px}}svg{{display:block;margin:1em 0}}</style></head>
<body><h1>switchyard load test: {name}</h1><p>{desc}</p>
<p style="font-size:20px;color:{verdict_color}"><b>invariants: {verdict}</b></p>
{over_time}{dist}{tput}{queue}
<h2>Summary</h2><pre>{summary}</pre>
<p>Full numbers: the JSON report written with this page.</p></body></html>"#,
        name = esc(&r.scenario),
        desc = esc(&r.description),
        verdict = r.verdict,
        summary = esc(&text(r)),
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
