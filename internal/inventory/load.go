package inventory

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"sigs.k8s.io/yaml"
)

// DefaultMaxFileBytes bounds the size of one input file (or of standard input).
const DefaultMaxFileBytes = 2 << 30

// maxExpansion bounds how many times larger than its YAML a document may grow through aliases.
const maxExpansion = 16

// maxDepth bounds the nesting of a document; deeper documents are refused before decoding.
const maxDepth = 200

// Options tunes Load.
type Options struct {
	// MaxFileBytes bounds the size of one file; DefaultMaxFileBytes when zero.
	MaxFileBytes int64
	// Stdin is read for the path "-".
	Stdin io.Reader
}

// manifestExtensions are the file names a directory walk picks up. Files named explicitly are
// read whatever their name.
var manifestExtensions = []string{".yaml", ".yml", ".json"}

// Empty returns an inventory that holds nothing: the cluster side of an audit given
// infrastructure code alone.
func Empty() *Inventory {
	b := newBuilder()
	b.finish()
	return b.inv
}

// Load reads manifests from files, directories (recursively, *.yaml, *.yml, *.json) and "-"
// (standard input). A path that does not exist is an error: nothing is loaded. Everything else
// that goes wrong is recorded as a Problem and the rest is loaded.
func Load(paths []string, opts Options) (*Inventory, error) {
	if opts.MaxFileBytes <= 0 {
		opts.MaxFileBytes = DefaultMaxFileBytes
	}
	files, err := expand(paths)
	if err != nil {
		return nil, err
	}
	if n := slices.Index(files, "-"); n >= 0 {
		if slices.Contains(files[n+1:], "-") {
			return nil, errors.New(`"-" (standard input) given more than once`)
		}
		if opts.Stdin == nil {
			return nil, errors.New(`"-" given but no standard input is available`)
		}
	}
	b := newBuilder()
	b.stream = newStream() // from here on, every path ends in drain, which stops its workers
	for _, f := range files {
		b.inv.Files++
		var data []byte
		var err error
		name := f
		if f == "-" {
			name = "<stdin>"
			data, err = readLimited(opts.Stdin, opts.MaxFileBytes)
		} else {
			data, err = readFile(f, opts.MaxFileBytes)
		}
		if err != nil {
			b.stream.emitProblem(Problem{Source: Source{File: name}, Message: err.Error()})
			continue
		}
		b.addFile(name, data)
	}
	b.stream.drain(b.add)
	b.finish()
	return b.inv, nil
}

// expand turns the arguments into a list of manifest files (Expand).
func expand(paths []string) ([]string, error) {
	if len(paths) == 0 {
		return nil, errors.New("no input: give manifest files or directories, or - for standard input")
	}
	return Expand(paths, manifestExtensions)
}

// Expand turns paths into a list of files, in argument order: a file named explicitly, and "-"
// (standard input), as it is; a directory walked in lexical order for files whose extension is
// one of exts, dot-directories (.git, .terraform) and dot-files (.golangci.yml) left out as tool
// state and settings. A path that does not exist, and a directory with no such file, are errors.
func Expand(paths []string, exts []string) ([]string, error) {
	var files []string
	for _, p := range paths {
		if p == "-" {
			files = append(files, p)
			continue
		}
		info, err := os.Stat(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("%s: no such file or directory", p)
			}
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if !info.IsDir() {
			files = append(files, p)
			continue
		}
		var found []string
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return fmt.Errorf("walk %s: %w", path, err)
			}
			if d.IsDir() {
				if path != p && strings.HasPrefix(d.Name(), ".") {
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasPrefix(d.Name(), ".") && slices.Contains(exts, strings.ToLower(filepath.Ext(path))) {
				found = append(found, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("%s: directory holds no %s files", p, patterns(exts))
		}
		files = append(files, found...)
	}
	return files, nil
}

// patterns renders extensions as "*.yaml, *.yml or *.json".
func patterns(exts []string) string {
	out := make([]string, len(exts))
	for i, e := range exts {
		out[i] = "*" + e
	}
	if len(out) < 2 {
		return strings.Join(out, "")
	}
	return strings.Join(out[:len(out)-1], ", ") + " or " + out[len(out)-1]
}

func readFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil || !info.Mode().IsRegular() {
		return readLimited(f, limit) // a pipe or device: size unknown
	}
	if info.Size() > limit {
		return nil, fmt.Errorf("file is %d bytes, larger than the limit of %d bytes (raise it with --max-file-size)", info.Size(), limit)
	}
	// One buffer of the file's size: growing one while reading a large file costs more than
	// decoding it. A file that grows while it is read is caught by the limit check below.
	data := make([]byte, info.Size(), info.Size()+1)
	if err := readAtParallel(f, data); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	if _, err := f.Seek(int64(len(data)), io.SeekStart); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	rest, err := readLimited(f, limit-int64(len(data)))
	if err != nil {
		return nil, err
	}
	return append(data, rest...), nil
}

// readAtParallel fills data from the start of f, a large file in parts on every core: most of
// the cost of reading a file that is in the page cache is faulting in the pages of the buffer,
// and cores fault in pages side by side.
func readAtParallel(f *os.File, data []byte) error {
	const minPart = 16 << 20
	parts := min(runtime.GOMAXPROCS(0), max(1, len(data)/minPart))
	errs := make([]error, parts)
	var wg sync.WaitGroup
	for p := range parts {
		lo, hi := p*len(data)/parts, (p+1)*len(data)/parts
		wg.Go(func() {
			_, err := f.ReadAt(data[lo:hi], int64(lo))
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF // the file shrank while it was read
			}
			errs[p] = err
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func readLimited(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("input is larger than the limit of %d bytes (raise it with --max-file-size)", limit)
	}
	return data, nil
}

// rawDoc is one JSON object to decode: a document, or one item of a List document; or a
// problem found while splitting, passed on in document order.
type rawDoc struct {
	data    []byte
	source  Source
	problem *Problem
	// discard is set when the document was emitted as an item of an object that turned out
	// not to be a List.
	discard *discardFlag
	// list is the List the document is an item of; a typed list (PodList) gives the kind of
	// items that omit it.
	list *listInfo
	// listAPIVersion and listKind come from a typed list (PodList) whose items may omit their
	// own apiVersion and kind.
	listAPIVersion string
	listKind       string
}

// addFile splits a file into documents and queues them for decoding.
func (b *builder) addFile(name string, data []byte) {
	if i := bytes.IndexByte(data, 0); i >= 0 {
		b.stream.emitProblem(Problem{Source: Source{File: name}, Message: fmt.Sprintf("binary data (NUL byte at offset %d): not a YAML or JSON manifest", i)})
		return
	}
	if isJSON(data) {
		b.splitJSON(name, data)
	} else {
		b.splitYAML(name, data)
	}
}

func isJSON(data []byte) bool {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	return len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[')
}

// splitYAML splits a YAML stream on "---" separator lines and converts each document to JSON.
func (b *builder) splitYAML(name string, data []byte) {
	n := 0
	for doc, line := range yamlDocuments(data) {
		if isEmptyYAML(doc) {
			continue
		}
		n++
		b.inv.Documents++
		src := Source{File: name, Document: n, Line: line}
		if depth := nestingDepth(doc); depth > maxDepth {
			b.stream.emitProblem(Problem{Source: src, Message: fmt.Sprintf("document nests deeper than %d levels", maxDepth)})
			continue
		}
		js, err := yamlToJSON(doc)
		if err != nil {
			b.stream.emitProblem(Problem{Source: src, Message: "invalid YAML: " + yamlError(err, line)})
			continue
		}
		// The YAML library bounds alias expansion only loosely (hundreds of thousands of nodes
		// per document); without aliases JSON is at most a few times larger than its YAML.
		if limit := maxExpansion*len(doc) + 64<<10; len(js) > limit {
			b.stream.emitProblem(Problem{Source: src, Message: fmt.Sprintf("document expands to %d bytes through YAML aliases (from %d bytes): refused as a possible alias bomb", len(js), len(doc))})
			continue
		}
		b.expandDoc(src, js)
	}
}

// yamlDocuments yields the documents of a YAML stream with the line each starts on. A line
// beginning with "---" at column 0 separates documents.
func yamlDocuments(data []byte) func(yield func([]byte, int) bool) {
	return func(yield func([]byte, int) bool) {
		start, startLine, line := 0, 1, 1
		for off := 0; off <= len(data); {
			end := bytes.IndexByte(data[off:], '\n')
			if end < 0 {
				end = len(data)
			} else {
				end += off
			}
			text := data[off:end]
			switch {
			case isMarker(text, "---"):
				if !yield(data[start:off], startLine) {
					return
				}
				// Content after the marker on the same line ("--- !tag" or "--- {}") belongs to
				// the next document.
				start, startLine = off+3, line
			case isMarker(text, "..."):
				// "..." ends a document; what follows is the next one even without "---" (the
				// YAML parser would silently ignore it).
				if !yield(data[start:off], startLine) {
					return
				}
				start, startLine = min(end+1, len(data)), line+1
			}
			off, line = end+1, line+1
		}
		if start < len(data) {
			yield(data[start:], startLine)
		}
	}
}

// isMarker reports whether a line is the document marker "---" or "..." at column 0, alone or
// followed by white space.
func isMarker(line []byte, marker string) bool {
	return bytes.HasPrefix(line, []byte(marker)) && (len(line) == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\r')
}

// yamlLine matches the line numbers in the YAML library's messages, which count from the start
// of the document it was given.
var yamlLine = regexp.MustCompile(`(yaml: |\n\s*)line (\d+): (.*)`)

// yamlParserProblems are the problems the YAML library's parser (as opposed to its scanner)
// reports; it reports them with the 0-based line of the problem.
var yamlParserProblems = []string{
	"did not find expected ',' or ']'", "did not find expected ',' or '}'", "did not find expected '-' indicator",
	"did not find expected <document start>", "did not find expected <stream-start>", "did not find expected key",
	"did not find expected node content", "found duplicate %TAG directive", "found duplicate %YAML directive",
	"found incompatible YAML document", "found undefined tag handle",
}

// yamlError renders a YAML library error on one line, with line numbers counted from the start
// of the file (the document starts on line first).
func yamlError(err error, first int) string {
	msg := yamlLine.ReplaceAllStringFunc(err.Error(), func(m string) string {
		sub := yamlLine.FindStringSubmatch(m)
		n, _ := strconv.Atoi(sub[2])
		for _, p := range yamlParserProblems {
			if strings.HasPrefix(sub[3], p) {
				n++
				break
			}
		}
		return strings.TrimLeft(sub[1], "\n\t ") + fmt.Sprintf("line %d: ", n+first-1) + sub[3]
	})
	return strings.Join(strings.Fields(msg), " ")
}

// yamlToJSON converts one YAML document, turning a panic inside the YAML library into an error.
func yamlToJSON(doc []byte) (js []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("YAML parser failed: %v", r)
		}
	}()
	return yaml.YAMLToJSON(doc)
}

// isEmptyYAML reports whether a YAML document holds only comments, blank lines and directives
// ("%YAML 1.2" before the "---" of the document they belong to).
func isEmptyYAML(doc []byte) bool {
	for line := range bytes.SplitSeq(doc, []byte("\n")) {
		t := bytes.TrimSpace(line)
		if len(t) > 0 && t[0] != '#' && t[0] != '%' && !bytes.Equal(t, []byte("---")) && !bytes.Equal(t, []byte("...")) {
			return false
		}
	}
	return true
}

// nestingDepth estimates how deeply a YAML or JSON document nests, from flow brackets and
// indentation, so pathological input is refused before a recursive parser sees it.
func nestingDepth(doc []byte) int {
	flow, maxFlow, maxIndent := 0, 0, 0
	lineStart, indent, counting := true, 0, true
	for _, c := range doc {
		switch {
		case c == '\n':
			lineStart, indent, counting = true, 0, true
			continue
		case lineStart && counting && (c == ' ' || c == '-'):
			indent++
			continue
		case c == '[' || c == '{':
			flow++
			maxFlow = max(maxFlow, flow)
		case c == ']' || c == '}':
			flow = max(flow-1, 0) // unbalanced closers (in a comment) must not hide depth
		}
		if counting {
			maxIndent = max(maxIndent, indent)
			counting = false
		}
		lineStart = false
	}
	// Two spaces of indentation per level is the norm; one per level bounds it from above.
	return maxFlow + maxIndent/2
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
