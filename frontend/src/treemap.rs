//! The squarified treemap layout (Bruls, Huizing and van Wijk, 2000), as a pure function.
//!
//! No web or crate dependencies, so the tests run on the host without the wasm toolchain:
//! `rustc --edition 2024 --test frontend/src/treemap.rs -o /tmp/treemap-tests && /tmp/treemap-tests`.

/// An axis-aligned rectangle: top-left corner, width and height.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

impl Rect {
    pub const fn new(x: f64, y: f64, w: f64, h: f64) -> Self {
        Rect { x, y, w, h }
    }

    pub fn area(&self) -> f64 {
        self.w * self.h
    }

    /// The rectangle shrunk by `pad` on every side (never below zero size).
    pub fn inset(&self, pad: f64) -> Rect {
        let w = (self.w - 2.0 * pad).max(0.0);
        let h = (self.h - 2.0 * pad).max(0.0);
        Rect { x: self.x + (self.w - w) / 2.0, y: self.y + (self.h - h) / 2.0, w, h }
    }

    /// The rectangle without a band of `top` at its top (for a nested level's heading).
    pub fn below(&self, top: f64) -> Rect {
        let top = top.min(self.h).max(0.0);
        Rect { x: self.x, y: self.y + top, w: self.w, h: self.h - top }
    }

    /// Width over height, or height over width: 1 is a square, higher is thinner.
    #[cfg(test)]
    pub fn aspect(&self) -> f64 {
        if self.w <= 0.0 || self.h <= 0.0 {
            return f64::INFINITY;
        }
        (self.w / self.h).max(self.h / self.w)
    }
}

/// Lays `sizes` out in `area`: one rectangle per size, in the same order, each with an area
/// proportional to its size, together tiling `area`, and as close to squares as the squarify
/// heuristic gets. Sizes that are zero, negative or not finite get an empty rectangle.
pub fn squarify(sizes: &[f64], area: Rect) -> Vec<Rect> {
    let mut out = vec![Rect::new(area.x, area.y, 0.0, 0.0); sizes.len()];
    let clean = |s: f64| if s.is_finite() && s > 0.0 { s } else { 0.0 };
    let total: f64 = sizes.iter().map(|&s| clean(s)).sum();
    if total <= 0.0 || area.w <= 0.0 || area.h <= 0.0 {
        return out;
    }
    // Largest first (the algorithm's premise); ties keep their input order.
    let mut order: Vec<usize> = (0..sizes.len()).filter(|&i| clean(sizes[i]) > 0.0).collect();
    order.sort_unstable_by(|&a, &b| sizes[b].total_cmp(&sizes[a]).then(a.cmp(&b)));
    let scale = area.area() / total;
    let areas: Vec<f64> = order.iter().map(|&i| sizes[i] * scale).collect();

    let mut free = area;
    let mut start = 0;
    while start < areas.len() {
        let side = free.w.min(free.h);
        // Grow the row while that does not make its worst aspect ratio worse.
        let mut end = start + 1;
        let mut best = worst(&areas[start..end], side);
        while end < areas.len() {
            let next = worst(&areas[start..=end], side);
            if next > best {
                break;
            }
            best = next;
            end += 1;
        }
        // The last row takes whatever is left, so rounding never leaves a gap.
        let last = end == areas.len();
        free = place_row(&areas[start..end], &order[start..end], free, last, &mut out);
        start = end;
    }
    out
}

/// The worst aspect ratio of a row of `areas` laid along a side of length `side`.
fn worst(areas: &[f64], side: f64) -> f64 {
    let sum: f64 = areas.iter().sum();
    if sum <= 0.0 || side <= 0.0 {
        return f64::INFINITY;
    }
    let (min, max) = areas.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &a| (lo.min(a), hi.max(a)));
    let side2 = side * side;
    let sum2 = sum * sum;
    (side2 * max / sum2).max(sum2 / (side2 * min))
}

/// Places one row along the shorter side of `free` and returns what is left of `free`.
fn place_row(areas: &[f64], indices: &[usize], free: Rect, last: bool, out: &mut [Rect]) -> Rect {
    let sum: f64 = areas.iter().sum();
    if free.w >= free.h {
        // A column on the left, as wide as the row's area needs.
        let width = if last { free.w } else { (sum / free.h).min(free.w) };
        let mut y = free.y;
        for (k, (&a, &i)) in areas.iter().zip(indices).enumerate() {
            let h = if k + 1 == areas.len() { free.y + free.h - y } else { a / width };
            out[i] = Rect::new(free.x, y, width, h.max(0.0));
            y += h;
        }
        Rect::new(free.x + width, free.y, (free.w - width).max(0.0), free.h)
    } else {
        // A row along the top.
        let height = if last { free.h } else { (sum / free.w).min(free.h) };
        let mut x = free.x;
        for (k, (&a, &i)) in areas.iter().zip(indices).enumerate() {
            let w = if k + 1 == areas.len() { free.x + free.w - x } else { a / height };
            out[i] = Rect::new(x, free.y, w.max(0.0), height);
            x += w;
        }
        Rect::new(free.x, free.y + height, free.w, (free.h - height).max(0.0))
    }
}

/// Whether a label of `chars` characters fits in `rect` at `char_width` by `line_height` (with a
/// little padding).
pub fn label_fits(rect: &Rect, chars: usize, char_width: f64, line_height: f64) -> bool {
    rect.w >= chars as f64 * char_width + 6.0 && rect.h >= line_height + 4.0
}

/// The hue (degrees) of the `index`th top-level entry: the golden angle spreads any number of
/// them around the colour wheel.
pub fn hue(index: usize) -> u32 {
    ((index as f64 * 137.507_764) % 360.0).round() as u32
}

/// `12.3 KiB`-style sizes. (Integer arithmetic only: float formatting is large in wasm.)
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut unit = 0;
    let mut div: u64 = 1;
    while unit + 1 < UNITS.len() && bytes / div >= 1024 {
        div *= 1024;
        unit += 1;
    }
    if unit == 0 {
        return format!("{bytes} B");
    }
    let tenths = (bytes as u128 * 10 + div as u128 / 2) / div as u128;
    format!("{}.{} {}", tenths / 10, tenths % 10, UNITS[unit])
}

/// `part` as a percentage of `whole`, e.g. `12 %` or `1.5 %` (and `0 %` of nothing).
pub fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "0 %".into();
    }
    let tenths = (part as u128 * 1000 + whole as u128 / 2) / whole as u128;
    if tenths >= 100 {
        format!("{} %", (tenths + 5) / 10)
    } else {
        format!("{}.{} %", tenths / 10, tenths % 10)
    }
}

/// A coordinate with one decimal, e.g. `12.5`.
pub fn fixed1(x: f64) -> String {
    let t = (x * 10.0).round() as i64;
    let sign = if t < 0 { "-" } else { "" };
    format!("{sign}{}.{}", t.abs() / 10, t.abs() % 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPS: f64 = 1e-6;

    fn overlap(a: &Rect, b: &Rect) -> f64 {
        let w = (a.x + a.w).min(b.x + b.w) - a.x.max(b.x);
        let h = (a.y + a.h).min(b.y + b.h) - a.y.max(b.y);
        if w > 0.0 && h > 0.0 { w * h } else { 0.0 }
    }

    fn check_tiling(sizes: &[f64], area: Rect) -> Vec<Rect> {
        let rects = squarify(sizes, area);
        assert_eq!(rects.len(), sizes.len());
        let total: f64 = sizes.iter().filter(|s| s.is_finite() && **s > 0.0).sum();
        for (r, &s) in rects.iter().zip(sizes) {
            // Inside the area.
            assert!(r.x >= area.x - EPS && r.y >= area.y - EPS, "{r:?} starts outside {area:?}");
            assert!(r.x + r.w <= area.x + area.w + EPS, "{r:?} ends right of {area:?}");
            assert!(r.y + r.h <= area.y + area.h + EPS, "{r:?} ends below {area:?}");
            // In proportion.
            let expected = if s.is_finite() && s > 0.0 { s / total * area.area() } else { 0.0 };
            assert!((r.area() - expected).abs() < 1e-6 * area.area().max(1.0), "{r:?} for {s}");
        }
        for i in 0..rects.len() {
            for j in i + 1..rects.len() {
                assert!(overlap(&rects[i], &rects[j]) < EPS, "{:?} overlaps {:?}", rects[i], rects[j]);
            }
        }
        let covered: f64 = rects.iter().map(Rect::area).sum();
        if total > 0.0 {
            assert!((covered - area.area()).abs() < 1e-6 * area.area());
        }
        rects
    }

    #[test]
    fn the_papers_example() {
        // Bruls et al.: 6, 6, 4, 3, 2, 2, 1 in a 6 x 4 rectangle.
        let rects = check_tiling(&[6.0, 6.0, 4.0, 3.0, 2.0, 2.0, 1.0], Rect::new(0.0, 0.0, 6.0, 4.0));
        // The two sixes form the first column: 3 wide, 2 high each.
        assert!((rects[0].w - 3.0).abs() < EPS && (rects[0].h - 2.0).abs() < EPS);
        assert!((rects[1].w - 3.0).abs() < EPS && (rects[1].y - 2.0).abs() < EPS);
        // Then the four and the three share a row on top of the rest.
        assert!((rects[2].x - 3.0).abs() < EPS && (rects[3].y - rects[2].y).abs() < EPS);
        let worst = rects.iter().map(Rect::aspect).fold(0.0, f64::max);
        assert!(worst < 3.0, "worst aspect {worst}");
    }

    #[test]
    fn keeps_the_input_order() {
        let sizes = [1.0, 10.0, 3.0, 7.0];
        let rects = check_tiling(&sizes, Rect::new(10.0, 20.0, 300.0, 200.0));
        assert!(rects[1].area() > rects[3].area());
        assert!(rects[3].area() > rects[2].area());
        assert!(rects[2].area() > rects[0].area());
        // The largest goes first, at the corner.
        assert!((rects[1].x - 10.0).abs() < EPS && (rects[1].y - 20.0).abs() < EPS);
    }

    #[test]
    fn equal_sizes_give_squarish_cells() {
        let sizes = vec![1.0; 64];
        let rects = check_tiling(&sizes, Rect::new(0.0, 0.0, 800.0, 800.0));
        for r in &rects {
            assert!(r.aspect() < 2.0, "{r:?}");
        }
    }

    #[test]
    fn skewed_sizes_tile_tall_and_wide_areas() {
        let sizes: Vec<f64> = (1..=40).map(|i| (i * i * 37 % 1000 + 1) as f64).collect();
        check_tiling(&sizes, Rect::new(0.0, 0.0, 1000.0, 120.0));
        check_tiling(&sizes, Rect::new(5.0, 5.0, 90.0, 900.0));
        let mut tiny = vec![1_000_000.0];
        tiny.extend(std::iter::repeat_n(1.0, 50));
        check_tiling(&tiny, Rect::new(0.0, 0.0, 640.0, 480.0));
    }

    #[test]
    fn edge_cases() {
        assert!(squarify(&[], Rect::new(0.0, 0.0, 10.0, 10.0)).is_empty());
        let one = squarify(&[5.0], Rect::new(1.0, 2.0, 30.0, 40.0));
        assert_eq!(one, vec![Rect::new(1.0, 2.0, 30.0, 40.0)]);
        // Zero, negative and NaN sizes take no room.
        let rects = check_tiling(&[0.0, 4.0, -3.0, f64::NAN, 4.0], Rect::new(0.0, 0.0, 8.0, 4.0));
        assert_eq!(rects[0].area(), 0.0);
        assert_eq!(rects[2].area(), 0.0);
        assert_eq!(rects[3].area(), 0.0);
        // Nothing to lay out, or nowhere to put it.
        assert!(squarify(&[0.0, 0.0], Rect::new(0.0, 0.0, 8.0, 4.0)).iter().all(|r| r.area() == 0.0));
        assert!(squarify(&[1.0, 2.0], Rect::new(0.0, 0.0, 0.0, 4.0)).iter().all(|r| r.area() == 0.0));
    }

    #[test]
    fn helpers() {
        let r = Rect::new(0.0, 0.0, 100.0, 20.0);
        assert!(label_fits(&r, 10, 7.0, 12.0));
        assert!(!label_fits(&r, 20, 7.0, 12.0));
        assert!(!label_fits(&Rect::new(0.0, 0.0, 100.0, 10.0), 2, 7.0, 12.0));
        assert_eq!(r.inset(2.0), Rect::new(2.0, 2.0, 96.0, 16.0));
        assert_eq!(r.inset(50.0).area(), 0.0);
        assert_eq!(r.below(5.0), Rect::new(0.0, 5.0, 100.0, 15.0));
        assert_eq!(hue(0), 0);
        assert_ne!(hue(1), hue(2));
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(3 * 1024 * 1024), "3.0 MiB");
        assert_eq!(percent(1, 3), "33 %");
        assert_eq!(percent(1, 300), "0.3 %");
        assert_eq!(percent(1, 0), "0 %");
        assert_eq!(percent(199, 1000), "20 %");
        assert_eq!(percent(5, 1000), "0.5 %");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024 * 1024 - 1), "1024.0 KiB");
        assert_eq!(fixed1(12.34), "12.3");
        assert_eq!(fixed1(0.06), "0.1");
        assert_eq!(fixed1(-2.26), "-2.3");
        assert_eq!(fixed1(7.0), "7.0");
    }
}
