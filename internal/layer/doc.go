// Package layer decides the layers of a verdict besides cluster policy: whether the instance's
// own metadata settings let a subject through, as a pure function of those settings and of
// where the subject sits (on the node's network or the pod network), with the source of every
// fact. A layer answers allow, deny or unknown; unknown never counts as protection.
//
// The cluster-policy layer is package policy's; joining the layers into an overall verdict
// (reachable unless some layer denies) is Combine.
package layer
