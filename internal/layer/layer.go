package layer

import "strings"

// Name names a layer.
type Name string

// The layers a pod's traffic to a metadata endpoint crosses, outermost last.
const (
	ClusterPolicy Name = "cluster-policy"
	Node          Name = "node"
	Instance      Name = "instance"
)

// Decision is a layer's answer.
type Decision string

// The decisions. Unknown is never a denial.
const (
	Allow   Decision = "allow"
	Deny    Decision = "deny"
	Unknown Decision = "unknown"
)

// Source says how a layer knows what it decided, strongest first.
type Source string

// The sources.
const (
	// Measured: observed on the node (the agent's measurement).
	Measured Source = "measured"
	// Configured: an object says so (an EC2NodeClass's metadataOptions, a launch template).
	Configured Source = "configured"
	// Default: a documented platform default, inferred from labels or from a field left out.
	Default Source = "default"
	// Assumed: nothing says so.
	Assumed Source = "assumed"
)

// Verdict is one layer's decision for one subject and endpoint.
type Verdict struct {
	Layer    Name
	Decision Decision
	Source   Source
	// Reason says what decided it, naming the setting and where it came from.
	Reason string
}

// Combine is the overall verdict of the layers a connection crosses: reachable unless some
// layer denies it. The deciding verdict is the first denial, or, when nothing denies, the first
// allow (or the first unknown when no layer knows anything).
func Combine(layers ...Verdict) (reachable bool, decidedBy Verdict) {
	for _, v := range layers {
		if v.Decision == Deny {
			return false, v
		}
	}
	for _, v := range layers {
		if v.Decision == Allow {
			return true, v
		}
	}
	if len(layers) > 0 {
		return true, layers[0]
	}
	return true, Verdict{Decision: Unknown, Source: Assumed, Reason: "no layer decided"}
}

// String renders the verdict for reports: "instance deny (configured): ...".
func (v Verdict) String() string {
	var b strings.Builder
	b.WriteString(string(v.Layer))
	b.WriteString(" ")
	b.WriteString(string(v.Decision))
	if v.Source != "" {
		b.WriteString(" (" + string(v.Source) + ")")
	}
	if v.Reason != "" {
		b.WriteString(": " + v.Reason)
	}
	return b.String()
}
