package cli

import (
	"strings"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/spf13/cobra"
)

// cloudList renders the catalogue's cloud names for help texts: "aws, gcp, ..., ecs or all".
func cloudList() string {
	names := endpoint.CloudNames()
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// addCloudFlag registers --cloud on cmd: its help names what the command does with the
// endpoints (purpose, e.g. "audit") and the default when the flag is not given (after), and its
// completions offer exactly the clouds the endpoint catalogue accepts.
func addCloudFlag(cmd *cobra.Command, target *[]string, purpose, after string) {
	usage := "clouds whose endpoints to " + purpose + ": " + cloudList() + " (comma-separated or repeated)"
	if after != "" {
		usage += "; default: " + after
	}
	cmd.Flags().StringSliceVar(target, "cloud", []string{string(endpoint.All)}, usage)
	_ = cmd.RegisterFlagCompletionFunc("cloud", cobra.FixedCompletions(endpoint.CloudNames(), cobra.ShellCompDirectiveNoFileComp))
}
