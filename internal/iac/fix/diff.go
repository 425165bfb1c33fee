package fix

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
)

// edit replaces the bytes [start, end) of a file with text; start == end inserts.
type edit struct {
	start, end int
	text       string
}

// file is a file being patched: its content as read and the edits made to it.
type file struct {
	path  string // as the reader gave it (iac.Position.File)
	data  []byte
	edits []edit
}

// newline returns the file's line ending: "\r\n" when its first line ends so, else "\n".
func (f *file) newline() string {
	if i := bytes.IndexByte(f.data, '\n'); i > 0 && f.data[i-1] == '\r' {
		return "\r\n"
	}
	return "\n"
}

// lineStart returns the offset of the start of 1-based line n; past the last line it is the
// length of the file.
func (f *file) lineStart(n int) int {
	off := 0
	for line := 1; line < n; line++ {
		i := bytes.IndexByte(f.data[off:], '\n')
		if i < 0 {
			return len(f.data)
		}
		off += i + 1
	}
	return off
}

// lineAt returns the line (without its terminator) that contains offset off, and its start.
func (f *file) lineAt(off int) (string, int) {
	if off > len(f.data) {
		off = len(f.data)
	}
	start := bytes.LastIndexByte(f.data[:off], '\n') + 1
	end := bytes.IndexByte(f.data[start:], '\n')
	if end < 0 {
		end = len(f.data) - start
	}
	return strings.TrimRight(string(f.data[start:start+end]), "\r"), start
}

// indentAt returns the leading whitespace of the line that contains offset off.
func (f *file) indentAt(off int) string {
	line, _ := f.lineAt(off)
	return line[:len(line)-len(strings.TrimLeft(line, " \t"))]
}

// afterLine returns the offset of the start of the line after the one containing off.
func (f *file) afterLine(off int) int {
	i := bytes.IndexByte(f.data[off:], '\n')
	if i < 0 {
		return len(f.data)
	}
	return off + i + 1
}

func (f *file) add(e edit) { f.edits = append(f.edits, e) }

// patched applies the edits. Overlapping edits are an error: two groups asked for
// different changes of the same text.
func (f *file) patched() ([]byte, error) {
	edits := append([]edit(nil), f.edits...)
	sort.SliceStable(edits, func(i, j int) bool { return edits[i].start < edits[j].start })
	var out bytes.Buffer
	pos := 0
	for _, e := range edits {
		if e.start < pos || e.end < e.start || e.end > len(f.data) {
			return nil, fmt.Errorf("%s: overlapping or out of range edits at byte %d", f.path, e.start)
		}
		out.Write(f.data[pos:e.start])
		out.WriteString(e.text)
		pos = e.end
	}
	out.Write(f.data[pos:])
	return out.Bytes(), nil
}

// splitLines splits data into lines that keep their terminators.
func splitLines(data []byte) []string {
	var lines []string
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			lines = append(lines, string(data))
			break
		}
		lines = append(lines, string(data[:i+1]))
		data = data[i+1:]
	}
	return lines
}

// context is the number of unchanged lines around each change, as diff -u writes.
const context = 3

// unifiedDiff writes the unified diff of f's edits for path, with "a/" and "b/" prefixes;
// nothing when the edits change nothing. Changes closer than twice the context share a hunk.
func unifiedDiff(w *bytes.Buffer, path string, f *file) error {
	changes, b, err := f.changes()
	if err != nil {
		return err
	}
	if len(changes) == 0 {
		return nil
	}
	a := splitLines(f.data)
	fmt.Fprintf(w, "--- a/%s\n+++ b/%s\n", path, path)
	for i := 0; i < len(changes); {
		// A hunk covers changes i..j-1, merged while their contexts touch.
		j := i + 1
		for j < len(changes) && changes[j].a0-changes[j-1].a1 <= 2*context {
			j++
		}
		first, last := changes[i], changes[j-1]
		a0 := max(first.a0-context, 0)
		a1 := min(last.a1+context, len(a))
		b0 := first.b0 - (first.a0 - a0)
		b1 := last.b1 + (a1 - last.a1)
		fmt.Fprintf(w, "@@ -%s +%s @@\n", hunkRange(a0, a1), hunkRange(b0, b1))
		ai := a0
		for k := i; k < j; k++ {
			c := changes[k]
			for ; ai < c.a0; ai++ {
				writeLine(w, ' ', a[ai])
			}
			for _, l := range a[c.a0:c.a1] {
				writeLine(w, '-', l)
			}
			for _, l := range b[c.b0:c.b1] {
				writeLine(w, '+', l)
			}
			ai = c.a1
		}
		for ; ai < a1; ai++ {
			writeLine(w, ' ', a[ai])
		}
		i = j
	}
	return nil
}

// hunkRange renders the 0-based line range [from, to) as a hunk header range: "start,count",
// where an empty range names the line before it.
func hunkRange(from, to int) string {
	if to == from {
		return fmt.Sprintf("%d,0", from)
	}
	return fmt.Sprintf("%d,%d", from+1, to-from)
}

func writeLine(w *bytes.Buffer, prefix byte, line string) {
	w.WriteByte(prefix)
	w.WriteString(line)
	if !strings.HasSuffix(line, "\n") {
		w.WriteString("\n\\ No newline at end of file\n")
	}
}

// change replaces lines a[a0:a1] of the old file with b[b0:b1] of the new one (0-based).
type change struct{ a0, a1, b0, b1 int }

// changes turns the edits into runs of changed lines, in order, and returns the new lines.
// Each edit covers the whole lines it touches (none for an insertion at the start of a
// line); edits whose lines overlap or touch are one change.
func (f *file) changes() ([]change, []string, error) {
	patched, err := f.patched()
	if err != nil {
		return nil, nil, err
	}
	edits := append([]edit(nil), f.edits...)
	sort.SliceStable(edits, func(i, j int) bool { return edits[i].start < edits[j].start })
	lineOf := func(off int) int { return bytes.Count(f.data[:off], []byte("\n")) }
	type region struct{ l0, l1 int }
	var regions []region
	for _, e := range edits {
		r := region{l0: lineOf(e.start)}
		switch {
		case e.end > e.start:
			r.l1 = lineOf(e.end-1) + 1
		case e.start == 0 || f.data[e.start-1] == '\n':
			r.l1 = r.l0 // an insertion before a line
		default:
			r.l1 = r.l0 + 1
		}
		if n := len(regions); n > 0 && r.l0 <= regions[n-1].l1 {
			regions[n-1].l1 = max(regions[n-1].l1, r.l1)
			continue
		}
		regions = append(regions, r)
	}
	a, b := splitLines(f.data), splitLines(patched)
	var out []change
	delta := 0 // new lines minus old lines before the region
	ei := 0
	for _, r := range regions {
		start, end := f.lineStart(r.l0+1), f.lineStart(r.l1+1)
		var text bytes.Buffer
		pos := start
		// The region's edits start before its end, or insert at it.
		for ; ei < len(edits) && (edits[ei].start < end || edits[ei].start == end && edits[ei].end == end); ei++ {
			e := edits[ei]
			text.Write(f.data[pos:e.start])
			text.WriteString(e.text)
			pos = e.end
		}
		if pos < end {
			text.Write(f.data[pos:end])
		}
		c := change{a0: r.l0, a1: r.l1, b0: r.l0 + delta}
		c.b1 = c.b0 + len(splitLines(text.Bytes()))
		delta += (c.b1 - c.b0) - (c.a1 - c.a0)
		// Drop lines the edits left as they were.
		for c.a0 < c.a1 && c.b0 < c.b1 && a[c.a0] == b[c.b0] {
			c.a0++
			c.b0++
		}
		for c.a1 > c.a0 && c.b1 > c.b0 && a[c.a1-1] == b[c.b1-1] {
			c.a1--
			c.b1--
		}
		if c.a0 < c.a1 || c.b0 < c.b1 {
			out = append(out, c)
		}
	}
	return out, b, nil
}
