package inventory

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"sync"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	cnpv1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"
)

// JSON is read with the streaming decoder of the JSON v2 implementation: documents and List
// items are found in one pass and handed on as slices of the file (no copy), each object's kind
// is sniffed from its first members, and typed decoding is a single validating pass. Field names
// match exactly, as the API server matches them (encoding/json would also accept
// "policytypes" for "policyTypes").

// decodeOptions make v2 accept what the API server accepts: a later duplicate member wins and
// invalid UTF-8 is kept rather than refused. Unknown members are ignored, as they are by
// default. Values of the types in unread are skipped.
var decodeOptions = jsonv2.JoinOptions(
	jsontext.AllowDuplicateNames(true),
	jsontext.AllowInvalidUTF8(true),
	jsonv2.WithUnmarshalers(unread),
)

// unread are the parts of pods and workloads the audit never reads: status, resources, probes,
// volumes, security contexts, pod (anti-)affinity, preferred node affinity, topology spread,
// managedFields, timestamps. The decoder checks their
// JSON syntax and skips them without allocating, which keeps a 100,000-pod cluster fast and
// small; the objects handed on are the official types with these fields empty. The audit
// reads metadata, host networking, service account, DNS policy, node name, node selector, node
// affinity and tolerations (where a pod may be scheduled) and each container's image,
// command, arguments and environment.
var unread = jsonv2.JoinUnmarshalers(
	skip[corev1.PodStatus](), skip[corev1.ResourceRequirements](), skip[corev1.Probe](),
	skip[corev1.Lifecycle](), skip[corev1.SecurityContext](), skip[corev1.PodSecurityContext](),
	skip[corev1.PodAffinity](), skip[corev1.PodAntiAffinity](), skip[[]corev1.PreferredSchedulingTerm](),
	skip[[]corev1.Volume](), skip[[]corev1.VolumeMount](),
	skip[[]corev1.VolumeDevice](), skip[[]corev1.ContainerPort](),
	skip[[]corev1.TopologySpreadConstraint](), skip[[]corev1.EnvFromSource](),
	skip[[]corev1.PersistentVolumeClaim](), skip[[]metav1.ManagedFieldsEntry](), skip[metav1.Time](),
	skip[appsv1.DeploymentStatus](), skip[appsv1.StatefulSetStatus](), skip[appsv1.DaemonSetStatus](),
	skip[appsv1.ReplicaSetStatus](), skip[batchv1.JobStatus](), skip[batchv1.CronJobStatus](),
	skip[corev1.ReplicationControllerStatus](), skip[cnpv1beta1.ClusterNetworkPolicyStatus](),
)

// skip makes the decoder skip values of type T.
func skip[T any]() *jsonv2.Unmarshalers {
	return jsonv2.UnmarshalFromFunc(func(dec *jsontext.Decoder, _ *T) error { return dec.SkipValue() })
}

// unmarshal decodes one JSON object into an API type.
func unmarshal(data []byte, v any) error {
	return jsonv2.Unmarshal(data, v, decodeOptions)
}

// newDecoder reads JSON from data in place.
func newDecoder(data []byte) *jsontext.Decoder {
	return jsontext.NewDecoder(bytes.NewBuffer(data), decodeOptions)
}

// splitJSON reads a stream of JSON values; each is a document, each element of a top-level
// array is a document too, and the items of a List document are expanded.
func (b *builder) splitJSON(name string, data []byte) {
	dec := newDecoder(data)
	for n := 1; ; n++ {
		if dec.PeekKind() == 0 {
			if _, err := dec.ReadToken(); errors.Is(err, io.EOF) {
				return
			}
		}
		start := skipSpace(data, int(dec.InputOffset()))
		src := Source{File: name, Document: n, Line: lineAt(data, int64(start))}
		b.inv.Documents++
		more, err := b.readValue(dec, data, src)
		if err != nil {
			b.stream.emitProblem(Problem{Source: src, Message: "invalid JSON: " + syntaxError(data, err)})
			return // the stream cannot be resynchronised after a syntax error
		}
		if !more {
			return
		}
	}
}

// expandDoc turns one JSON document (converted from YAML) into the objects to decode.
func (b *builder) expandDoc(src Source, data []byte) {
	dec := newDecoder(data)
	if _, err := b.readValue(dec, data, src); err != nil {
		b.stream.emitProblem(Problem{Source: src, Message: "invalid JSON: " + syntaxError(data, err)})
	}
}

// readValue reads the next top-level value at the decoder and emits the documents it holds.
// It reports whether the stream may hold more values.
func (b *builder) readValue(dec *jsontext.Decoder, data []byte, src Source) (bool, error) {
	switch dec.PeekKind() {
	case 0:
		_, err := dec.ReadToken()
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		return false, err
	case 'n': // an empty YAML document
		_, err := dec.ReadToken()
		return true, err
	case '[':
		if _, err := dec.ReadToken(); err != nil {
			return false, err
		}
		for i := 1; dec.PeekKind() != ']'; i++ {
			item, err := value(dec, data)
			if err != nil {
				return false, err
			}
			s := src
			s.Item = i
			b.stream.emit(rawDoc{data: item, source: s})
		}
		_, err := dec.ReadToken()
		return true, err
	case '{':
		return true, b.readObject(dec, data, src)
	default:
		v, err := value(dec, data)
		if err != nil {
			return false, err
		}
		b.stream.emit(rawDoc{data: v, source: src}) // decoding names the problem
		return true, nil
	}
}

// readObject reads a top-level object: a List whose items become documents, or an object.
func (b *builder) readObject(dec *jsontext.Decoder, data []byte, src Source) error {
	start := skipSpace(data, int(dec.InputOffset()))
	if _, err := dec.ReadToken(); err != nil {
		return err
	}
	var apiVersion, kind string
	// Items are emitted as they are found, before the object's kind is known (it usually comes
	// after them). They share the object's list information and discard flag, both settled when
	// the object ends, before any decoded item is added (see stream.drain).
	list := &listInfo{}
	var discard *discardFlag
	for dec.PeekKind() != '}' {
		name, err := dec.ReadToken()
		if err != nil {
			return err
		}
		switch key := name.String(); {
		case (key == "apiVersion" || key == "kind") && dec.PeekKind() == '"':
			v, err := dec.ReadToken()
			if err != nil {
				return err
			}
			if key == "kind" {
				kind = v.String()
			} else {
				apiVersion = v.String()
			}
		case key == "items" && dec.PeekKind() == '[':
			if discard != nil {
				discard.Store(true) // a repeated "items": the last one wins
			}
			discard = new(discardFlag)
			if _, err := dec.ReadToken(); err != nil {
				return err
			}
			for i := 1; dec.PeekKind() != ']'; i++ {
				item, err := value(dec, data)
				if err != nil {
					return err
				}
				s := src
				s.Item = i
				b.stream.emit(rawDoc{data: item, source: s, list: list, discard: discard})
			}
			if _, err := dec.ReadToken(); err != nil {
				return err
			}
		default:
			if err := dec.SkipValue(); err != nil {
				return err
			}
		}
	}
	if _, err := dec.ReadToken(); err != nil {
		return err
	}
	if strings.HasSuffix(kind, "List") && discard != nil {
		if kind != "List" {
			list.apiVersion, list.kind = apiVersion, strings.TrimSuffix(kind, "List")
		}
		return nil
	}
	if discard != nil {
		discard.Store(true) // not a List after all: the object is the document
	}
	b.stream.emit(rawDoc{data: data[start:dec.InputOffset()], source: src})
	return nil
}

// value skips the next value and returns it as a slice of data.
func value(dec *jsontext.Decoder, data []byte) ([]byte, error) {
	// The offset before a value may sit before the separating comma and white space.
	start := skipSpace(data, int(dec.InputOffset()))
	if err := dec.SkipValue(); err != nil {
		return nil, err
	}
	return data[start:dec.InputOffset()], nil
}

// sniffers are reusable decoders for sniff, which runs once per object.
var sniffers = sync.Pool{New: func() any { return jsontext.NewDecoder(bytes.NewBuffer(nil)) }}

// sniff reads an object's apiVersion and kind, stopping as soon as both are known (kubectl
// prints them first). A value that is not an object is an error naming what it is.
func sniff(data []byte) (apiVersion, kind string, err error) {
	dec := sniffers.Get().(*jsontext.Decoder)
	defer sniffers.Put(dec)
	dec.Reset(bytes.NewBuffer(data), decodeOptions)
	if k := dec.PeekKind(); k != '{' {
		return "", "", fmt.Errorf("got %s, want a mapping with apiVersion and kind", kindName(k))
	}
	if _, err := dec.ReadToken(); err != nil {
		return "", "", err
	}
	for dec.PeekKind() == '"' && (apiVersion == "" || kind == "") {
		name, err := dec.ReadToken()
		if err != nil {
			return "", "", err
		}
		key := name.String()
		if key != "apiVersion" && key != "kind" {
			if err := dec.SkipValue(); err != nil {
				return "", "", err
			}
			continue
		}
		if k := dec.PeekKind(); k != '"' {
			return "", "", &fieldError{field: key, message: fmt.Sprintf("got %s, want a string", kindName(k))}
		}
		v, err := dec.ReadToken()
		if err != nil {
			return "", "", err
		}
		if key == "kind" {
			kind = v.String()
		} else {
			apiVersion = v.String()
		}
	}
	return apiVersion, kind, nil
}

// fieldError is a decoding error about one field.
type fieldError struct{ field, message string }

func (e *fieldError) Error() string { return e.field + ": " + e.message }

// decodeError renders an error decoding a well-formed JSON document as a field path and a
// message such as "got a string, want a boolean". Offsets are not used: for YAML input they
// would point into the JSON converted from YAML, not into the file.
func decodeError(err error) (field, message string) {
	var fe *fieldError
	if errors.As(err, &fe) {
		return fe.field, fe.message
	}
	var se *jsonv2.SemanticError
	if errors.As(err, &se) {
		field = fieldPath(se.JSONPointer)
		if se.JSONKind != 0 && se.GoType != nil {
			return field, fmt.Sprintf("got %s, want %s", kindName(se.JSONKind), jsonType(se.GoType))
		}
		if se.Err != nil {
			return field, strings.TrimPrefix(se.Err.Error(), "json: ")
		}
	}
	var syn *jsontext.SyntacticError
	if errors.As(err, &syn) && syn.Err != nil {
		return fieldPath(syn.JSONPointer), syn.Err.Error()
	}
	if errors.As(err, &se) {
		return field, strings.TrimPrefix(err.Error(), "json: ")
	}
	return "", err.Error()
}

// fieldPath turns a JSON pointer ("/spec/egress/0/ports/1/endPort") into a field path
// ("spec.egress[0].ports[1].endPort").
func fieldPath(p jsontext.Pointer) string {
	var b strings.Builder
	for token := range p.Tokens() {
		if _, err := strconv.Atoi(token); err == nil && b.Len() > 0 {
			b.WriteString("[" + token + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(token)
	}
	return b.String()
}

// kindName names a JSON kind for a message.
func kindName(k jsontext.Kind) string {
	switch k {
	case '"':
		return "a string"
	case '0':
		return "a number"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	case '{':
		return "a mapping"
	case '[':
		return "a list"
	}
	return "nothing"
}

// jsonType names the JSON type a Go type decodes from.
func jsonType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Bool:
		return "a boolean"
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return "a base64 string"
		}
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	}
	return "another type"
}

// syntaxError renders a JSON syntax error with the line and column in data.
func syntaxError(data []byte, err error) string {
	var syn *jsontext.SyntacticError
	if !errors.As(err, &syn) {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return "unexpected end of input"
		}
		return err.Error()
	}
	msg := "syntax error"
	if syn.Err != nil {
		msg = syn.Err.Error()
	}
	offset := min(int(syn.ByteOffset), len(data))
	line := bytes.Count(data[:offset], []byte("\n")) + 1
	col := offset - bytes.LastIndexByte(data[:offset], '\n')
	return fmt.Sprintf("line %d, column %d: %s", line, col, msg)
}

// skipSpace returns the offset of the first non-space byte at or after off.
func skipSpace(data []byte, off int) int {
	for off < len(data) && (data[off] == ' ' || data[off] == '\t' || data[off] == '\r' || data[off] == '\n' || data[off] == ',') {
		off++
	}
	return off
}

// lineAt returns the 1-based line of offset in data.
func lineAt(data []byte, offset int64) int {
	off := skipSpace(data, int(offset))
	return bytes.Count(data[:min(off, len(data))], []byte("\n")) + 1
}
