//! Inline SVG charts for the HTML reports: a plot area with linear or log axes, lines, bars,
//! markers, shaded time windows and a legend. Pure string building; no scripts, no external
//! assets, valid XML (so a test can parse the whole report).
//!
//! Owns layout and drawing only: what to plot is decided by the writers ([`super::html`] and
//! the comparison report).

use std::fmt::Write as _;

use super::markup::xml;

/// Colours for series, chosen to stay apart for common colour-vision deficiencies.
pub const PALETTE: [&str; 8] = [
    "#2f6db5", "#e07b00", "#2a9d55", "#c03a2b", "#8d5fc4", "#8c6d31", "#d45fa0", "#5f7f8c",
];

/// Colour of the p50 / p99 / max lines.
pub const P50: &str = "#2f6db5";
/// Colour of the p99 line.
pub const P99: &str = "#e07b00";
/// Colour of the max line.
pub const MAX: &str = "#c03a2b";
/// Success.
pub const OK: &str = "#2a9d55";
/// Failure.
pub const BAD: &str = "#c03a2b";
/// Indeterminate.
pub const INFO: &str = "#8a8f98";
/// Warning (failed attempts that are not violations).
pub const WARN: &str = "#e0a100";

mod axis;

pub use axis::{Axis, Format, fmt_latency, fmt_num, fmt_pct, fmt_secs, nice_ceiling};

/// A chart under construction.
pub struct Plot {
    width: f64,
    height: f64,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    x: Axis,
    y: Axis,
    x_fmt: Format,
    y_fmt: Format,
    x_label: String,
    y_label: String,
    /// Custom x tick positions and labels (replaces the axis' own ticks).
    x_ticks: Option<Vec<(f64, String)>>,
    bands: String,
    body: String,
    legend: Vec<(String, String, bool)>,
    id: String,
}

impl Plot {
    /// A `width` × `height` chart (in CSS pixels at full size; it scales down with the page).
    /// `id` names the chart in the document (tests and anchors use it).
    pub fn new(id: &str, width: f64, height: f64, x: Axis, y: Axis) -> Plot {
        Plot {
            width,
            height,
            left: 64.0,
            right: 36.0,
            top: 28.0,
            bottom: 34.0,
            x,
            y,
            x_fmt: fmt_num,
            y_fmt: fmt_num,
            x_label: String::new(),
            y_label: String::new(),
            x_ticks: None,
            bands: String::new(),
            body: String::new(),
            legend: Vec::new(),
            id: id.to_owned(),
        }
    }

    /// Tick label formats.
    pub fn formats(mut self, x: Format, y: Format) -> Plot {
        self.x_fmt = x;
        self.y_fmt = y;
        self
    }

    /// Axis titles.
    pub fn labels(mut self, x: &str, y: &str) -> Plot {
        self.x_label = x.to_owned();
        self.y_label = y.to_owned();
        self
    }

    /// Replaces the x ticks with these positions and labels.
    pub fn x_ticks(mut self, ticks: Vec<(f64, String)>) -> Plot {
        self.x_ticks = Some(ticks);
        self
    }

    /// Wider left margin (long category labels).
    pub fn left_margin(mut self, px: f64) -> Plot {
        self.left = px;
        self
    }

    /// The pixel column of data `x`, rounded (for callers that draw one mark per column).
    pub fn column(&self, x: f64) -> i64 {
        self.px(x).round() as i64
    }

    fn px(&self, x: f64) -> f64 {
        self.x.map(x, self.left, self.width - self.right)
    }

    fn py(&self, y: f64) -> f64 {
        self.y.map(y, self.height - self.bottom, self.top)
    }

    /// The y pixel of row `i` of `n` equal lanes (for timelines), and the lane height.
    pub fn lane(&self, i: usize, n: usize) -> (f64, f64) {
        let h = (self.height - self.top - self.bottom) / n.max(1) as f64;
        (self.top + h * i as f64 + h / 2.0, h)
    }

    /// A shaded vertical band from `x0` to `x1` (a fault window), with a tooltip.
    pub fn band(&mut self, x0: f64, x1: f64, fill: &str, title: &str) {
        let (a, b) = (self.px(x0), self.px(x1));
        let _ = write!(
            self.bands,
            r#"<rect class="band" x="{a:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{fill}" fill-opacity="0.16"><title>{}</title></rect>"#,
            self.top,
            (b - a).max(1.0),
            self.height - self.top - self.bottom,
            xml(title)
        );
    }

    /// A line through `points` (x, y); `None` y values (and values a log axis cannot show) break
    /// the line.
    pub fn line(&mut self, points: &[(f64, Option<f64>)], color: &str, width: f64, label: &str) {
        self.styled_line(points, color, width, label, "");
    }

    /// [`Plot::line`] with an SVG `stroke-dasharray` (e.g. `"5 3"`; empty for solid).
    pub fn styled_line(
        &mut self,
        points: &[(f64, Option<f64>)],
        color: &str,
        width: f64,
        label: &str,
        dash: &str,
    ) {
        let dash_attr = if dash.is_empty() {
            String::new()
        } else {
            format!(r#" stroke-dasharray="{dash}""#)
        };
        let mut seg: Vec<(f64, f64)> = Vec::new();
        let mut segs: Vec<Vec<(f64, f64)>> = Vec::new();
        for &(x, y) in points {
            match y.filter(|v| v.is_finite() && (!self.y.log || *v > 0.0)) {
                Some(v) => seg.push((self.px(x), self.py(v))),
                None => {
                    if !seg.is_empty() {
                        segs.push(std::mem::take(&mut seg));
                    }
                }
            }
        }
        if !seg.is_empty() {
            segs.push(seg);
        }
        for s in segs {
            let s = thin(s);
            if s.len() == 1 {
                let _ = write!(
                    self.body,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="{:.1}" fill="{color}"/>"#,
                    s[0].0,
                    s[0].1,
                    width.max(1.5)
                );
                continue;
            }
            let pts: Vec<String> = s.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            let _ = write!(
                self.body,
                r#"<polyline fill="none" stroke="{color}" stroke-width="{width}"{dash_attr} stroke-linejoin="round" points="{}"><title>{}</title></polyline>"#,
                pts.join(" "),
                xml(label)
            );
        }
        if !label.is_empty() {
            self.legend
                .push((label.to_owned(), color.to_owned(), false));
        }
    }

    /// A vertical bar from the axis to `y`, spanning data `x0` to `x1`.
    pub fn bar(&mut self, x0: f64, x1: f64, y: f64, color: &str, title: &str) {
        let (a, b) = (self.px(x0), self.px(x1));
        let base = if self.y.log {
            self.y.min
        } else {
            0f64.max(self.y.min)
        };
        let (top, bottom) = (self.py(y), self.py(base));
        let _ = write!(
            self.body,
            r#"<rect x="{a:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="{color}"><title>{}</title></rect>"#,
            (b - a - 0.5).max(0.8),
            (bottom - top).max(0.0),
            xml(title)
        );
    }

    /// A horizontal bar segment in lane `i` of `n`, from `x0` to `x1`.
    pub fn hbar(&mut self, lane: (usize, usize), x0: f64, x1: f64, color: &str, title: &str) {
        let (cy, h) = self.lane(lane.0, lane.1);
        let bh = (h * 0.6).clamp(3.0, 22.0);
        let (a, b) = (self.px(x0), self.px(x1));
        let _ = write!(
            self.body,
            r#"<rect x="{a:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" fill="{color}"><title>{}</title></rect>"#,
            cy - bh / 2.0,
            (b - a).max(1.5),
            xml(title)
        );
    }

    /// A marker at data `x` in lane `i` of `n` (or at data `y` when `lane` is `None`).
    pub fn marker(&mut self, x: f64, at: Marker, shape: Shape, color: &str, title: &str) {
        let cx = self.px(x);
        let cy = match at {
            Marker::Lane(i, n) => self.lane(i, n).0,
            Marker::Y(y) => self.py(y),
        };
        let t = xml(title);
        let _ = match shape {
            Shape::Dot => write!(
                self.body,
                r#"<circle cx="{cx:.1}" cy="{cy:.1}" r="4" fill="{color}"><title>{t}</title></circle>"#
            ),
            Shape::Cross => write!(
                self.body,
                r#"<path d="M{:.1},{:.1}l10,10m0,-10l-10,10" stroke="{color}" stroke-width="2.5"><title>{t}</title></path>"#,
                cx - 5.0,
                cy - 5.0
            ),
            Shape::Tick => write!(
                self.body,
                r#"<rect x="{:.1}" y="{:.1}" width="2" height="12" fill="{color}"><title>{t}</title></rect>"#,
                cx - 1.0,
                cy - 6.0
            ),
            Shape::Rule => write!(
                self.body,
                r#"<line x1="{cx:.1}" x2="{cx:.1}" y1="{:.1}" y2="{:.1}" stroke="{color}" stroke-width="2" stroke-dasharray="4 3"><title>{t}</title></line>"#,
                self.top,
                self.height - self.bottom
            ),
        };
    }

    /// Adds a legend entry without drawing anything (for markers).
    pub fn legend(&mut self, label: &str, color: &str) {
        if !self.legend.iter().any(|(l, _, _)| l == label) {
            self.legend.push((label.to_owned(), color.to_owned(), true));
        }
    }

    /// A text label in lane `i` of `n`, left of the plot area.
    pub fn lane_label(&mut self, lane: (usize, usize), text: &str) {
        let (cy, _) = self.lane(lane.0, lane.1);
        let _ = write!(
            self.body,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end" class="tick">{}</text>"#,
            self.left - 6.0,
            cy + 4.0,
            xml(text)
        );
    }

    /// The finished `<svg>` element.
    pub fn finish(self, lanes: bool) -> String {
        let mut s = String::new();
        let x1 = self.width - self.right;
        let _ = write!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" id="{}" class="chart" viewBox="0 0 {} {}" width="{}" height="{}" role="img">"#,
            xml(&self.id),
            self.width,
            self.height,
            self.width,
            self.height
        );
        s.push_str(&self.bands);
        self.grid_and_axes(&mut s, lanes);
        s.push_str(&self.body);
        if !self.x_label.is_empty() {
            let _ = write!(
                s,
                r#"<text class="label" x="{x1:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                self.height - 2.0,
                xml(&self.x_label)
            );
        }
        if !self.y_label.is_empty() {
            let _ = write!(
                s,
                r#"<text class="label" x="{:.1}" y="14" text-anchor="start">{}</text>"#,
                4.0,
                xml(&self.y_label)
            );
        }
        self.legend_row(&mut s);
        s.push_str("</svg>");
        s
    }

    /// Grid lines with their y ticks (not for lane charts), x ticks, and the two axes.
    fn grid_and_axes(&self, s: &mut String, lanes: bool) {
        let (x0, x1) = (self.left, self.width - self.right);
        let (y0, y1) = (self.height - self.bottom, self.top);
        if !lanes {
            for v in self.y.ticks() {
                let y = self.py(v);
                let _ = write!(
                    s,
                    r#"<line class="grid" x1="{x0:.1}" x2="{x1:.1}" y1="{y:.1}" y2="{y:.1}"/><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                    x0 - 6.0,
                    y + 4.0,
                    xml(&(self.y_fmt)(v))
                );
            }
        }
        let xt: Vec<(f64, String)> = match &self.x_ticks {
            Some(t) => t.clone(),
            None => self
                .x
                .ticks()
                .into_iter()
                .map(|v| (v, (self.x_fmt)(v)))
                .collect(),
        };
        for (v, label) in xt {
            let x = self.px(v);
            let _ = write!(
                s,
                r#"<line class="grid" x1="{x:.1}" x2="{x:.1}" y1="{y0:.1}" y2="{:.1}"/><text class="tick" x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                y0 + 4.0,
                y0 + 17.0,
                xml(&label)
            );
        }
        let _ = write!(
            s,
            r#"<line class="axis" x1="{x0:.1}" x2="{x1:.1}" y1="{y0:.1}" y2="{y0:.1}"/><line class="axis" x1="{x0:.1}" x2="{x0:.1}" y1="{y0:.1}" y2="{y1:.1}"/>"#
        );
    }

    /// The legend along the top, right-aligned.
    fn legend_row(&self, s: &mut String) {
        let mut x = self.width - self.right;
        for (label, color, dot) in self.legend.iter().rev() {
            let w = 7.0 * label.chars().count() as f64 + 26.0;
            x -= w;
            let swatch = if *dot {
                format!(
                    r#"<circle cx="{:.1}" cy="10" r="4" fill="{color}"/>"#,
                    x + 6.0
                )
            } else {
                format!(r#"<rect x="{x:.1}" y="8" width="14" height="4" fill="{color}"/>"#)
            };
            let _ = write!(
                s,
                r#"{swatch}<text class="legend" x="{:.1}" y="14">{}</text>"#,
                x + 18.0,
                xml(label)
            );
        }
    }
}

/// A polyline thinned to at most four points per pixel column (first, lowest, highest, last),
/// which draws the same picture: a day of one-second points stays a few thousand.
fn thin(points: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    if points.len() < 2_000 {
        return points;
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < points.len() {
        let col = points[i].0.round();
        let mut j = i;
        while j < points.len() && points[j].0.round() == col {
            j += 1;
        }
        let run = &points[i..j];
        let lo = run
            .iter()
            .copied()
            .fold(run[0], |a, p| if p.1 > a.1 { p } else { a });
        let hi = run
            .iter()
            .copied()
            .fold(run[0], |a, p| if p.1 < a.1 { p } else { a });
        let mut keep = vec![run[0], lo, hi, run[run.len() - 1]];
        keep.dedup();
        out.extend(keep);
        i = j;
    }
    out
}

/// Where a marker sits vertically.
#[derive(Debug, Clone, Copy)]
pub enum Marker {
    /// Centre of lane `.0` of `.1`.
    Lane(usize, usize),
    /// At this y value.
    Y(f64),
}

/// A marker's shape.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// A filled circle.
    Dot,
    /// An ×.
    Cross,
    /// A short vertical tick.
    Tick,
    /// A dashed vertical line across the plot.
    Rule,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_map_and_tick() {
        let a = Axis::linear_to(87.0);
        assert_eq!(a.max, 100.0);
        assert_eq!(a.ticks(), [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        assert_eq!(Axis::counts_to(2.2).ticks(), [0.0, 1.0, 2.0, 3.0]);
        let l = Axis::log(350.0, 48_000.0);
        assert_eq!((l.min, l.max), (100.0, 100_000.0));
        assert_eq!(l.ticks(), [100.0, 1_000.0, 10_000.0, 100_000.0]);
        assert!((l.map(1_000.0, 0.0, 300.0) - 100.0).abs() < 1e-9);
        assert_eq!(fmt_latency(2_000.0), "2 ms");
        assert_eq!(fmt_latency(1_500_000.0), "1.5 s");
        assert_eq!(fmt_latency(500.0), "500 µs");
        assert_eq!(fmt_secs(20.0), "20 s");
        assert_eq!(fmt_secs(240.0), "4 min");
    }

    #[test]
    fn long_lines_are_thinned_per_pixel_column() {
        let pts: Vec<(f64, f64)> = (0..86_400)
            .map(|i| {
                (
                    i as f64 / 100.0,
                    if i == 40_000 { 500.0 } else { (i % 7) as f64 },
                )
            })
            .collect();
        let thinned = thin(pts);
        assert!(thinned.len() <= 4 * 865, "{}", thinned.len());
        // The spike survives (SVG y grows downwards: the lowest y is the highest value).
        assert!(thinned.iter().any(|p| p.1 == 500.0));
    }

    #[test]
    fn lines_break_at_gaps() {
        let mut p = Plot::new(
            "t",
            400.0,
            200.0,
            Axis::linear(0.0, 10.0),
            Axis::log(1.0, 100.0),
        );
        p.line(
            &[
                (0.0, Some(1.0)),
                (1.0, Some(10.0)),
                (2.0, None),
                (3.0, Some(5.0)),
                (4.0, Some(0.0)),
            ],
            P50,
            1.5,
            "p50",
        );
        let svg = p.finish(false);
        assert_eq!(svg.matches("<polyline").count(), 1, "{svg}");
        assert_eq!(svg.matches("<circle").count(), 1, "{svg}");
    }
}
