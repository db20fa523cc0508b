//! Plain-text tables for terminals: columns padded to their widest cell. Pure: cells in, lines
//! out, so what a command prints can be tested as text.

/// How a column lines up: text to the left, numbers to the right so their digits align.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// The rows (the header first, if any) as lines, each column as wide as its widest cell and
/// two spaces apart; trailing spaces are trimmed. A row shorter than `aligns` is padded with
/// empty cells; cells past `aligns` are dropped. Widths count chars, not bytes.
pub fn lines(aligns: &[Align], rows: &[Vec<String>]) -> Vec<String> {
    let mut widths = vec![0; aligns.len()];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    rows.iter()
        .map(|row| {
            let mut line = String::new();
            for (column, (align, width)) in aligns.iter().zip(&widths).enumerate() {
                let cell = row.get(column).map_or("", String::as_str);
                if column > 0 {
                    line.push_str("  ");
                }
                let pad = " ".repeat(width - cell.chars().count());
                match align {
                    Align::Left => {
                        line.push_str(cell);
                        line.push_str(&pad);
                    }
                    Align::Right => {
                        line.push_str(&pad);
                        line.push_str(cell);
                    }
                }
            }
            line.trim_end().to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|c| c.to_string()).collect()
    }

    /// Columns take their widest cell; text aligns left, numbers right, with no trailing space.
    #[test]
    fn columns_pad_to_the_widest_cell() {
        let rows = [row(&["NAME", "READY"]), row(&["default", "3"]), row(&["é", "1200"])];
        let out = lines(&[Align::Left, Align::Right], &rows);
        assert_eq!(out, ["NAME     READY", "default      3", "é         1200"]);
    }

    /// A short row gets empty cells and an empty last cell leaves no trailing space.
    #[test]
    fn short_rows_and_empty_cells() {
        let rows = [row(&["a", "b", "c"]), row(&["long"])];
        assert_eq!(lines(&[Align::Left; 3], &rows), ["a     b  c", "long"]);
    }
}
