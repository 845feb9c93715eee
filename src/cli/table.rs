//! Aligned text tables for the terminal (`run`'s summary, `compare`'s deltas), so both
//! commands lay out columns the same way.

/// A column: its header and how its cells are padded.
#[derive(Debug, Clone, Copy)]
pub(super) enum Column {
    /// Left-aligned, as wide as its widest cell (or its header): ids and labels.
    Fit(&'static str),
    /// Right-aligned in a fixed width: numbers line up, and an overlong cell shifts only
    /// its own row instead of widening every row.
    Right(&'static str, usize),
    /// Not padded: a free-text last column (no trailing spaces).
    Last(&'static str),
}

impl Column {
    fn header(self) -> &'static str {
        match self {
            Self::Fit(h) | Self::Right(h, _) | Self::Last(h) => h,
        }
    }
}

/// The header line and one line per row, columns two spaces apart, each line ending in
/// a newline. A row has one cell per column.
pub(super) fn render(columns: &[Column], rows: &[Vec<String>]) -> String {
    // Byte lengths, as these tables have always measured (padding counts chars).
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| match c {
            Column::Fit(h) => rows
                .iter()
                .map(|r| r[i].len())
                .max()
                .unwrap_or(0)
                .max(h.len()),
            Column::Right(_, w) => *w,
            Column::Last(_) => 0,
        })
        .collect();
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let padded: Vec<String> = columns
            .iter()
            .zip(&widths)
            .zip(cells)
            .map(|((c, &w), cell)| match c {
                Column::Fit(_) | Column::Last(_) => format!("{cell:<w$}"),
                Column::Right(..) => format!("{cell:>w$}"),
            })
            .collect();
        padded.join("  ") + "\n"
    };
    let mut out = line(&mut columns.iter().map(|c| c.header()));
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_columns_grow_right_columns_stay_fixed_last_is_unpadded() {
        let rows = vec![
            vec!["a".to_string(), "1".to_string(), "ok".to_string()],
            vec!["long-id".to_string(), "123456".to_string(), "x".to_string()],
        ];
        let columns = [
            Column::Fit("id"),
            Column::Right("n", 4),
            Column::Last("verdict"),
        ];
        assert_eq!(
            render(&columns, &rows),
            "id          n  verdict\na           1  ok\nlong-id  123456  x\n"
        );
    }
}
