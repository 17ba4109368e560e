//! A port of the tab writer the docker CLI uses for tables (Go's `text/tabwriter`, as
//! vendored in docker/cli with `go-runewidth` cell widths), for flags = 0.
//!
//! Cells are tab-terminated; the text after a line's last tab is not part of any column
//! and is never padded (so table lines carry no trailing spaces). A column's width is
//! `max(minwidth, widest cell + padding)` over each contiguous block of lines that have a
//! cell in that column.

#[derive(Clone, Copy, Debug, Default)]
struct Cell {
    size: usize,
    width: usize,
    htab: bool,
}

/// Tab writer settings (`tabwriter.NewWriter(out, minwidth, tabwidth, padding, padchar, 0)`).
#[derive(Clone, Copy, Debug)]
pub struct TabWriter {
    pub minwidth: usize,
    pub tabwidth: usize,
    pub padding: usize,
    pub padchar: u8,
}

impl TabWriter {
    /// The settings of docker's table formatter: `NewWriter(out, 10, 1, 3, ' ', 0)`.
    pub const DOCKER: TabWriter = TabWriter {
        minwidth: 10,
        tabwidth: 1,
        padding: 3,
        padchar: b' ',
    };

    /// Formats the whole of `text` (as `Write(text)` followed by `Flush()`).
    pub fn format(&self, text: &str) -> String {
        let mut st = State {
            cfg: *self,
            buf: String::new(),
            pos: 0,
            cell: Cell::default(),
            lines: vec![Vec::new()],
            widths: Vec::new(),
            out: String::new(),
        };
        st.write(text);
        st.flush();
        st.out
    }
}

/// Formats `text` with docker's table settings.
pub fn format_table(text: &str) -> String {
    TabWriter::DOCKER.format(text)
}

struct State {
    cfg: TabWriter,
    buf: String,
    pos: usize,
    cell: Cell,
    lines: Vec<Vec<Cell>>,
    widths: Vec<usize>,
    out: String,
}

impl State {
    fn reset(&mut self) {
        self.buf.clear();
        self.pos = 0;
        self.cell = Cell::default();
        self.lines.clear();
        self.lines.push(Vec::new());
        self.widths.clear();
    }

    fn append(&mut self, text: &str) {
        self.buf.push_str(text);
        self.cell.size += text.len();
    }

    fn update_width(&mut self) {
        self.cell.width += display_width(&self.buf[self.pos..]);
        self.pos = self.buf.len();
    }

    fn terminate_cell(&mut self, htab: bool) -> usize {
        self.cell.htab = htab;
        let line = self.lines.last_mut().expect("at least one line");
        line.push(self.cell);
        self.cell = Cell::default();
        line.len()
    }

    fn write(&mut self, text: &str) {
        let mut n = 0;
        for (i, ch) in text.char_indices() {
            if matches!(ch, '\t' | '\u{b}' | '\n' | '\u{c}') {
                self.append(&text[n..i]);
                self.update_width();
                n = i + 1;
                let ncells = self.terminate_cell(ch == '\t');
                if ch == '\n' || ch == '\u{c}' {
                    self.lines.push(Vec::new());
                    if ch == '\u{c}' || ncells == 1 {
                        self.flush();
                    }
                }
            }
        }
        self.append(&text[n..]);
    }

    fn flush(&mut self) {
        if self.cell.size > 0 {
            self.update_width();
            self.terminate_cell(false);
        }
        let n = self.lines.len();
        self.format(0, 0, n);
        self.reset();
    }

    fn write_padding(&mut self, textw: usize, cellw: usize) {
        if self.cfg.padchar == b'\t' {
            if self.cfg.tabwidth == 0 {
                return;
            }
            let tw = self.cfg.tabwidth;
            let cellw = cellw.div_ceil(tw) * tw;
            let n = cellw.saturating_sub(textw);
            for _ in 0..n.div_ceil(tw) {
                self.out.push('\t');
            }
            return;
        }
        for _ in 0..cellw.saturating_sub(textw) {
            self.out.push(self.cfg.padchar as char);
        }
    }

    fn write_lines(&mut self, pos0: usize, line0: usize, line1: usize) -> usize {
        let mut pos = pos0;
        for i in line0..line1 {
            let line = self.lines[i].clone();
            for (j, c) in line.iter().enumerate() {
                if c.size > 0 {
                    let text = self.buf[pos..pos + c.size].to_string();
                    self.out.push_str(&text);
                    pos += c.size;
                }
                if j < self.widths.len() {
                    let w = self.widths[j];
                    self.write_padding(c.width, w);
                }
            }
            if i + 1 == self.lines.len() {
                let text = self.buf[pos..pos + self.cell.size].to_string();
                self.out.push_str(&text);
                pos += self.cell.size;
            } else {
                self.out.push('\n');
            }
        }
        pos
    }

    fn format(&mut self, pos0: usize, mut line0: usize, line1: usize) -> usize {
        let mut pos = pos0;
        let column = self.widths.len();
        let mut this = line0;
        while this < line1 {
            if column + 1 >= self.lines[this].len() {
                this += 1;
                continue;
            }
            pos = self.write_lines(pos, line0, this);
            line0 = this;
            let mut width = self.cfg.minwidth;
            while this < line1 {
                let line = &self.lines[this];
                if column + 1 >= line.len() {
                    break;
                }
                let w = line[column].width + self.cfg.padding;
                if w > width {
                    width = w;
                }
                this += 1;
            }
            self.widths.push(width);
            pos = self.format(pos, line0, this);
            self.widths.pop();
            line0 = this;
        }
        self.write_lines(pos, line0, line1)
    }
}

/// Terminal cell width of `s` (go-runewidth, non-East-Asian mode): control and combining
/// characters are 0 wide, East Asian wide/fullwidth characters and emoji 2, others 1.
pub fn display_width(s: &str) -> usize {
    s.chars().map(char_width).sum()
}

fn char_width(c: char) -> usize {
    let u = c as u32;
    if u < 0x20 || (0x7f..0xa0).contains(&u) {
        return 0;
    }
    if u < 0x300 {
        return 1;
    }
    const ZERO: &[(u32, u32)] = &[
        (0x0300, 0x036f),
        (0x0483, 0x0489),
        (0x0591, 0x05bd),
        (0x0610, 0x061a),
        (0x064b, 0x065f),
        (0x200b, 0x200f),
        (0x20d0, 0x20ff),
        (0xfe00, 0xfe0f),
        (0xfe20, 0xfe2f),
        (0xe0100, 0xe01ef),
    ];
    const WIDE: &[(u32, u32)] = &[
        (0x1100, 0x115f),
        (0x231a, 0x231b),
        (0x2329, 0x232a),
        (0x23e9, 0x23ec),
        (0x25fd, 0x25fe),
        (0x2614, 0x2615),
        (0x2648, 0x2653),
        (0x26aa, 0x26ab),
        (0x26bd, 0x26be),
        (0x26c4, 0x26c5),
        (0x26f2, 0x26f5),
        (0x2705, 0x2705),
        (0x270a, 0x270b),
        (0x274c, 0x274c),
        (0x2753, 0x2755),
        (0x2795, 0x2797),
        (0x2b1b, 0x2b1c),
        (0x2e80, 0x303e),
        (0x3041, 0x33ff),
        (0x3400, 0x4dbf),
        (0x4e00, 0x9fff),
        (0xa000, 0xa4cf),
        (0xa960, 0xa97f),
        (0xac00, 0xd7a3),
        (0xf900, 0xfaff),
        (0xfe10, 0xfe19),
        (0xfe30, 0xfe6f),
        (0xff00, 0xff60),
        (0xffe0, 0xffe6),
        (0x16fe0, 0x18cff),
        (0x1b000, 0x1b2ff),
        (0x1f004, 0x1f004),
        (0x1f0cf, 0x1f0cf),
        (0x1f18e, 0x1f18e),
        (0x1f191, 0x1f19a),
        (0x1f200, 0x1f251),
        (0x1f300, 0x1f64f),
        (0x1f680, 0x1f6ff),
        (0x1f7e0, 0x1f7eb),
        (0x1f90c, 0x1f9ff),
        (0x1fa70, 0x1faff),
        (0x20000, 0x2fffd),
        (0x30000, 0x3fffd),
    ];
    let within = |t: &[(u32, u32)]| t.iter().any(|&(a, b)| (a..=b).contains(&u));
    if within(ZERO) {
        0
    } else if within(WIDE) {
        2
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_default_table() {
        let text = "NETWORK ID\tNAME\tDRIVER\tSCOPE\n\
                    158bd6e7dde4\tbridge\tbridge\tlocal\n\
                    9f3d0a3c0f1c\thost\thost\tlocal\n\
                    6a4f5c2e1d0b\tnone\tnull\tlocal\n";
        assert_eq!(
            format_table(text),
            "NETWORK ID     NAME      DRIVER    SCOPE\n\
             158bd6e7dde4   bridge    bridge    local\n\
             9f3d0a3c0f1c   host      host      local\n\
             6a4f5c2e1d0b   none      null      local\n"
        );
    }

    #[test]
    fn empty_table_and_ragged_lines() {
        assert_eq!(
            format_table("NETWORK ID\tNAME\tDRIVER\tSCOPE\n"),
            "NETWORK ID   NAME      DRIVER    SCOPE\n"
        );
        // Go: the b and c columns are distinct blocks; single-cell lines break blocks.
        let got = TabWriter {
            minwidth: 0,
            tabwidth: 8,
            padding: 1,
            padchar: b'.',
        }
        .format("aaaa\tbbb\td\naa\tb\tdd\na\t\naa\tcccc\teee\n");
        assert_eq!(got, "aaaa.bbb.d\naa...b...dd\na....\naa...cccc.eee\n");
        assert_eq!(format_table("x\n\ny\tz"), "x\n\ny         z");
    }

    #[test]
    fn widths() {
        assert_eq!(display_width("abc"), 3);
        assert_eq!(display_width("日本"), 4);
        assert_eq!(display_width("e\u{301}"), 1);
    }
}
