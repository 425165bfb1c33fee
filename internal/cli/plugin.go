package cli

import (
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// PluginBinary is the name the binary has when installed as a kubectl plugin: kubectl runs
// "kubectl-imdsguard audit ..." for "kubectl imdsguard audit ..." (kubectl finds plugins as
// executables named kubectl-NAME on the PATH:
// https://kubernetes.io/docs/tasks/extend-kubectl/kubectl-plugins/).
const PluginBinary = "kubectl-imdsguard"

// Invocation says how the binary was started.
type Invocation struct {
	// Plugin is set when the binary runs as kubectl's plugin (PluginBinary).
	Plugin bool
}

// InvocationOf tells from the program name (os.Args[0]) how the binary was started. A
// Windows build's ".exe" is ignored.
func InvocationOf(argv0 string) Invocation {
	name := strings.TrimSuffix(filepath.Base(argv0), ".exe")
	return Invocation{Plugin: name == PluginBinary}
}

// DisplayName is the command users type: "kubectl imdsguard" for the plugin.
func (i Invocation) DisplayName() string {
	if i.Plugin {
		return "kubectl imdsguard"
	}
	return "imdsguard"
}

// applyTo makes the help and usage of root and its subcommands name the command as the user
// typed it. Cobra prints the root's display name annotation in place of its Use
// (cobra.CommandDisplayNameAnnotation, the way cobra documents for kubectl plugins), and the
// examples are rewritten to match.
func (i Invocation) applyTo(root *cobra.Command) {
	if !i.Plugin {
		return
	}
	if root.Annotations == nil {
		root.Annotations = map[string]string{}
	}
	root.Annotations[cobra.CommandDisplayNameAnnotation] = i.DisplayName()
	var rename func(c *cobra.Command)
	rename = func(c *cobra.Command) {
		c.Example = strings.ReplaceAll(c.Example, "  imdsguard ", "  "+i.DisplayName()+" ")
		for _, sub := range c.Commands() {
			rename(sub)
		}
	}
	rename(root)
}
