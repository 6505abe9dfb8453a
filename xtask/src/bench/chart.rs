//! The requests/s of every scenario as a horizontal bar chart (SVG).

use std::path::Path;

use plotters::prelude::*;

use super::run::Results;

/// Draw `results` to `path`.
pub fn draw(path: &Path, results: &Results, quick: bool) -> crate::Result {
    let rows = &results.scenarios;
    let height = 90 + 34 * rows.len() as u32;
    let root = SVGBackend::new(path, (960, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let max = rows.iter().map(|(_, s)| s.rps).fold(1.0_f64, f64::max) * 1.18;
    let title = if quick {
        "GET /me and friends: requests/s (cargo xtask bench --quick)"
    } else {
        "GET /me and friends: requests/s (cargo xtask bench)"
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(190)
        .build_cartesian_2d(0.0..max, 0.0..rows.len() as f64)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_desc("requests/s (32 keep-alive connections; login: 1)")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .draw()?;
    for (i, (name, stats)) in rows.iter().enumerate() {
        let top = (rows.len() - i) as f64 - 0.15;
        let bottom = top - 0.7;
        // Grey: ceilings; orange: what users write instead; blue: sentri.
        let color = if matches!(
            name.as_str(),
            "bare" | "poem_bare" | "argon2id_verify" | "login_bare"
        ) {
            RGBColor(0x55, 0x55, 0x55)
        } else if name.starts_with("peer") {
            RGBColor(0xd9, 0x8c, 0x2b)
        } else {
            RGBColor(0x2b, 0x6c, 0xb0)
        };
        chart.draw_series(std::iter::once(Rectangle::new(
            [(0.0, bottom), (stats.rps, top)],
            color.filled(),
        )))?;
        chart.draw_series(std::iter::once(Text::new(
            format!("{:.0}", stats.rps),
            (stats.rps + max * 0.01, top - 0.2),
            ("sans-serif", 13),
        )))?;
        root.draw(&Text::new(
            name.clone(),
            (
                14,
                12 + 30 + (i as i32) * ((height as i32 - 90) / rows.len() as i32) + 6,
            ),
            ("sans-serif", 14),
        ))?;
    }
    root.present()?;
    Ok(())
}
