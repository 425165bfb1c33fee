package audit

import (
	"strings"

	"github.com/imdsguard/imdsguard/internal/inventory"
)

// cloudsLine renders the clouds audited for the table's header: "aws (from DaemonSet
// kube-system/aws-node), gcp (--cloud)".
func cloudsLine(clouds []inventory.CloudEvidence) string {
	parts := make([]string, len(clouds))
	for i, c := range clouds {
		parts[i] = c.String()
	}
	return strings.Join(parts, ", ")
}
