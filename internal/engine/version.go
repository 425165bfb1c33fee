package engine

import (
	"fmt"
	"strconv"
	"strings"
)

// Version is an engine release, major.minor.patch.
type Version struct {
	Major, Minor, Patch int
}

func (v Version) String() string { return fmt.Sprintf("v%d.%d.%d", v.Major, v.Minor, v.Patch) }

// Less reports whether v is an earlier release than o.
func (v Version) Less(o Version) bool {
	if v.Major != o.Major {
		return v.Major < o.Major
	}
	if v.Minor != o.Minor {
		return v.Minor < o.Minor
	}
	return v.Patch < o.Patch
}

// ParseVersion reads "3.31.2", "v3.31.2", "v1.18" or "v1.19.0-eksbuild.1": one to three
// numbers, an optional leading "v", and a suffix after "-" or "+", which it returns (a build or
// an image variant: "eksbuild.1", "npa-v1alpha2"). A missing minor or patch is 0.
func ParseVersion(s string) (v Version, suffix string, err error) {
	text := strings.TrimPrefix(s, "v")
	if i := strings.IndexAny(text, "-+"); i >= 0 {
		text, suffix = text[:i], text[i+1:]
	}
	parts := strings.Split(text, ".")
	if text == "" || len(parts) > 3 {
		return Version{}, "", fmt.Errorf("%q is not a version such as 3.32.1", s)
	}
	nums := make([]int, 3)
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return Version{}, "", fmt.Errorf("%q is not a version such as 3.32.1", s)
		}
		nums[i] = n
	}
	return Version{Major: nums[0], Minor: nums[1], Patch: nums[2]}, suffix, nil
}

// imageTag returns the tag of a container image reference ("quay.io/calico/node:v3.31.2" →
// "v3.31.2"), ignoring a digest; "" when the image has no tag.
func imageTag(image string) string {
	if i := strings.IndexByte(image, '@'); i >= 0 {
		image = image[:i]
	}
	slash := strings.LastIndexByte(image, '/')
	colon := strings.LastIndexByte(image, ':')
	if colon <= slash { // a registry port ("host:5000/x"), or no tag
		return ""
	}
	return image[colon+1:]
}

// imageVersion parses an image's tag as a version, with its suffix (see ParseVersion).
func imageVersion(image string) (Version, string, bool) {
	tag := imageTag(image)
	if tag == "" {
		return Version{}, "", false
	}
	v, suffix, err := ParseVersion(tag)
	if err != nil {
		return Version{}, "", false
	}
	return v, suffix, true
}
