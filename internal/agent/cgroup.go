package agent

import (
	"os"
	"path/filepath"
	"strings"
)

// podsCgroups are the kubelet's pods cgroups, systemd driver first.
var podsCgroups = []string{"kubepods.slice", "kubepods"}

// DetectPodsCgroup returns the kubelet's pods cgroup below root ("kubepods.slice" with the
// systemd cgroup driver, "kubepods" with cgroupfs), or "" when neither exists yet.
func DetectPodsCgroup(root string) string {
	for _, c := range podsCgroups {
		if cgroupExists(root, c) {
			return c
		}
	}
	return ""
}

func cgroupExists(root, rel string) bool {
	fi, err := os.Stat(filepath.Join(root, filepath.FromSlash(strings.Trim(rel, "/"))))
	return err == nil && fi.IsDir()
}

// FindPodCgroup returns the cgroup of the pod with uid below podsCgroup, as the kubelet names
// it: "pod<uid>" with cgroupfs, "kubepods[-<qos>]-pod<uid with _>.slice" with systemd, directly
// below the pods cgroup (Guaranteed) or below its QoS cgroup (Burstable, BestEffort).
func FindPodCgroup(root, podsCgroup, uid string) (string, bool) {
	if uid == "" || strings.ContainsAny(uid, "/.") {
		return "", false
	}
	base := strings.Trim(podsCgroup, "/")
	underscored := strings.ReplaceAll(uid, "-", "_")
	names := func(qos string) []string {
		prefix := "kubepods-"
		if qos != "" {
			prefix += qos + "-"
		}
		return []string{"pod" + uid, prefix + "pod" + underscored + ".slice"}
	}
	for _, qos := range []string{"", "burstable", "besteffort"} {
		dir := base
		if qos != "" {
			dir = base + "/" + qos
			if strings.HasSuffix(base, ".slice") {
				dir = base + "/kubepods-" + qos + ".slice"
			}
		}
		for _, n := range names(qos) {
			rel := dir + "/" + n
			if cgroupExists(root, rel) {
				return rel, true
			}
		}
	}
	return "", false
}
