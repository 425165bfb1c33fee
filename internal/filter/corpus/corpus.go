// Package corpus reads the filter's bypass corpus: raw metadata requests, grouped, each with the
// original destination it is sent to, the node's cloud and what the filter must decide. The
// format is described at the top of each file of internal/filter/testdata/corpus. Package
// filter's tests check every entry against the policy and a resolver model; the agent's sandbox
// tests send every entry through the real redirect and proxy.
package corpus

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Entry is one request variant.
type Entry struct {
	Group, Name string
	Dst         netip.AddrPort
	// Cloud is the node's cloud; empty: from the headers.
	Cloud string
	// Expect is "", "allow:CLASS", "deny" or "deny:STATUS".
	Expect string
	Raw    []byte
}

// Load reads every *.txt corpus file of dir; the file's name is the group.
func Load(dir string) ([]Entry, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.txt"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no corpus files in %s", dir)
	}
	var all []Entry
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		entries, err := Parse(strings.TrimSuffix(filepath.Base(f), ".txt"), string(data))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		all = append(all, entries...)
	}
	return all, nil
}

// Parse parses one corpus file of the group.
func Parse(group, text string) ([]Entry, error) {
	var entries []Entry
	var cur *Entry
	var body []string
	flush := func(raw bool) error {
		if cur == nil {
			return nil
		}
		for len(body) > 0 && body[len(body)-1] == "" {
			body = body[:len(body)-1]
		}
		var b strings.Builder
		for i, line := range body {
			s, err := unescape(line)
			if err != nil {
				return fmt.Errorf("%s: %w", cur.Name, err)
			}
			if i > 0 && !raw {
				b.WriteString("\r\n")
			}
			b.WriteString(s)
		}
		if !raw {
			b.WriteString("\r\n\r\n")
		}
		cur.Raw = []byte(b.String())
		entries = append(entries, *cur)
		return nil
	}
	raw := false
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, "=== "); ok {
			if err := flush(raw); err != nil {
				return nil, err
			}
			fields := strings.Fields(rest)
			cur = &Entry{Group: group, Name: fields[0], Dst: netip.MustParseAddrPort("169.254.169.254:80")}
			body, raw = nil, false
			for _, opt := range fields[1:] {
				k, v, _ := strings.Cut(opt, "=")
				switch k {
				case "dst":
					d, err := netip.ParseAddrPort(v)
					if err != nil {
						return nil, fmt.Errorf("%s: dst: %w", cur.Name, err)
					}
					cur.Dst = d
				case "cloud":
					cur.Cloud = v
				case "expect":
					cur.Expect = v
				case "raw":
					raw = true
				default:
					return nil, fmt.Errorf("%s: unknown option %q", cur.Name, opt)
				}
			}
			continue
		}
		if cur == nil {
			continue // the file's comments
		}
		body = append(body, line)
	}
	return entries, flush(raw)
}

// unescape turns \r, \n, \t, \\ and \xHH into their bytes.
func unescape(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 == len(s) {
			return "", errors.New("trailing backslash")
		}
		i++
		switch s[i] {
		case 'r':
			b.WriteByte('\r')
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case '\\':
			b.WriteByte('\\')
		case 'x':
			if i+2 >= len(s) {
				return "", errors.New("short \\x escape")
			}
			n, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return "", fmt.Errorf("bad \\x escape: %w", err)
			}
			b.WriteByte(byte(n))
			i += 2
		default:
			return "", fmt.Errorf("unknown escape \\%c", s[i])
		}
	}
	return b.String(), nil
}
