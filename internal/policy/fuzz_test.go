package policy_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// fuzzEvaluateSeeds are clusters whose policies exercise every tier. More seeds, and inputs
// the fuzzer once found interesting, are in testdata/fuzz/FuzzEvaluate.
var fuzzEvaluateSeeds = []string{
	// ClusterNetworkPolicy at both versions and both tiers, and the AWS VPC CNI's kind.
	`apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: storefront}}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {containers: [{name: c, image: nginx}]}
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: pass-pods}
spec:
  tier: Admin
  priority: 1
  subject: {pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: web}}}}
  egress:
  - {name: pass, action: Pass, to: [{networks: [169.254.169.254/32]}], protocols: [{tcp: {destinationPort: {range: {start: 1, end: 1024}}}}]}
---
apiVersion: policy.networking.k8s.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: baseline}
spec:
  tier: Baseline
  priority: 10
  subject: {namespaces: {matchLabels: {team: storefront}}}
  egress:
  - {name: fqdn, action: Accept, to: [{domainNames: ['*.google.internal']}]}
  - {name: deny, action: Deny, to: [{networks: [0.0.0.0/0, '::/0']}, {nodes: {}}]}
---
apiVersion: networking.k8s.aws/v1alpha1
kind: ClusterNetworkPolicy
metadata: {name: aws-admin}
spec:
  tier: Admin
  priority: 5
  subject: {namespaces: {}}
  egress:
  - {action: Deny, to: [{networks: ['fd00:ec2::254/128']}], ports: [{portNumber: {port: 80}}, {portRange: {protocol: UDP, start: 1, end: 2}}]}
`,
	// NetworkPolicy: ipBlock with except, ports with endPort, a named port, a selector peer.
	`apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: storefront}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-all-except-imds, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Egress]
  egress:
  - to:
    - ipBlock: {cidr: 0.0.0.0/0, except: [169.254.169.254/32, 168.63.129.16/32]}
    - ipBlock: {cidr: "::/0", except: ["fd00:ec2::254/128"]}
    ports:
    - {protocol: TCP, port: 1, endPort: 65535}
    - {protocol: UDP, port: 53}
    - {protocol: TCP, port: http}
  - to: [{namespaceSelector: {matchLabels: {team: storefront}}, podSelector: {}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: shop}
spec: {podSelector: {}, policyTypes: [Egress, Ingress]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: shop, labels: {app: web}}
spec: {containers: [{name: web, image: nginx}]}
---
apiVersion: v1
kind: Pod
metadata: {name: cart-1, namespace: shop, labels: {app: cart}}
spec: {containers: [{name: cart, image: cart}]}
---
apiVersion: v1
kind: Pod
metadata: {name: node-agent, namespace: shop, labels: {app: web}}
spec: {hostNetwork: true, containers: [{name: agent, image: agent}]}
`,
	// AdminNetworkPolicy Deny, Allow and Pass, a BaselineAdminNetworkPolicy, pods in two
	// namespaces.
	`apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: deny-imds}
spec:
  priority: 10
  subject: {namespaces: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: NotIn, values: [kube-system]}]}}
  egress:
  - name: pass-pod-identity
    action: Pass
    to: [{networks: [169.254.170.23/32]}]
  - name: allow-gcp-metadata-for-agents
    action: Allow
    to: [{domainNames: ["*.google.internal", metadata.google.internal]}]
  - name: deny-imds
    action: Deny
    to: [{networks: [169.254.169.254/32, "fd00:ec2::254/128", 100.100.100.200/32]}]
    ports: [{portNumber: {protocol: TCP, port: 80}}, {portRange: {protocol: TCP, start: 32000, end: 33000}}]
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: same-priority}
spec:
  priority: 10
  subject: {pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: agent}}}}
  egress:
  - {name: allow-all, action: Allow, to: [{networks: [0.0.0.0/0, "::/0"]}]}
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject: {namespaces: {}}
  egress:
  - {name: deny-wireserver, action: Deny, to: [{networks: [168.63.129.16/32]}], ports: [{portNumber: {port: 80}}, {portNumber: {protocol: TCP, port: 32526}}]}
  - {name: allow-rest, action: Allow, to: [{networks: [0.0.0.0/0]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: agent, namespace: kube-system, labels: {app: agent}}
spec: {containers: [{name: a, image: a}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {containers: [{name: w, image: w}]}
`,
	// Policies the API server would reject, next to valid ones.
	`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: bad, namespace: shop}
spec:
  podSelector: {matchExpressions: [{key: app, operator: In}]}
  egress:
  - to: [{ipBlock: {cidr: 10.0.0.0/8, except: [192.168.0.0/16]}}, {ipBlock: {cidr: "::ffff:1.2.3.4/128"}}, {}]
    ports: [{port: 0}, {port: 80, endPort: 79}, {protocol: ICMP}]
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: bad-anp}
spec:
  priority: 1001
  subject: {}
  egress: [{action: Deny, to: [{networks: [169.254.169.254]}], ports: []}]
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop}
spec: {containers: [{name: w, image: w}]}
`,
	// Calico: the seeds' GlobalNetworkPolicy, a tier with Pass, a namespaced policy with every
	// rule field, a host endpoint policy, and an invalid one.
	`apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: security}
spec: {order: 100, defaultAction: Pass}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: allow-all-egress-except-metadata-api}
spec:
  selector: all()
  egress:
  - action: Deny
    protocol: TCP
    destination:
      nets:
      - 169.254.169.254/32
  - action: Allow
    destination:
      nets:
      - 0.0.0.0/0
---
apiVersion: crd.projectcalico.org/v1
kind: NetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  tier: security
  order: 10
  selector: app == 'web' && pcns.team in {'storefront'}
  serviceAccountSelector: "!has(role)"
  types: [Egress]
  egress:
  - {action: Log}
  - {action: Pass, protocol: UDP, destination: {ports: [53, "1000:2000"]}}
  - {action: Allow, ipVersion: 6, notProtocol: 17, destination: {notNets: ["fd00:ec2::254/128"], notSelector: "app == 'db'"}, source: {selector: has(app)}}
  - {action: Deny, destination: {nets: [169.254.0.0/16], notPorts: [443]}, protocol: tcp}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {name: link-local, labels: {role: imds}}
spec: {nets: [169.254.0.0/16, "fd00:ec2::254"]}
---
apiVersion: crd.projectcalico.org/v1
kind: NetworkSet
metadata: {name: metadata, namespace: shop, labels: {role: imds}}
spec: {nets: [169.254.169.254], allowedEgressDomains: [metadata.google.internal]}
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: sets, namespace: shop}
spec:
  egress:
  - {action: Deny, destination: {selector: "role == 'imds'", namespaceSelector: "global()"}}
  - {action: Allow, destination: {notSelector: "role == 'imds'", serviceAccounts: {selector: "role != 'ci'"}}}
  - {action: Deny, destination: {namespaceSelector: all()}}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: untracked}
spec: {doNotTrack: true, applyOnForward: true, selector: all(), egress: [{action: Deny}]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: bad}
spec: {selector: "app = 'x'", egress: [{action: Drop, destination: {nets: [300.0.0.1]}}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {serviceAccountName: builder, containers: [{name: w, image: w}]}
`,
	// Workload templates, a JSON list, an empty egress rule.
	`{"apiVersion": "v1", "kind": "List", "items": [
  {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": "ops"},
   "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": {"metadata": {"labels": {"app": "agent"}},
   "spec": {"hostNetwork": true, "containers": [{"name": "a", "image": "a"}]}}}},
  {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "allow-all", "namespace": "ops"},
   "spec": {"podSelector": {}, "egress": [{}]}},
  {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ops", "labels": {"app": "x"}}, "spec": {"containers": []}}
]}`,
}

// fuzzEndpoints is every catalogue endpoint and a few custom ones (another protocol, IPv6).
func fuzzEndpoints(f *testing.F) []endpoint.Endpoint {
	var custom []endpoint.Endpoint
	for _, s := range []string{"10.0.0.5:8080/TCP", "10.0.0.53:53/UDP", "[fd00::5]:80", "192.0.2.1:9/SCTP"} {
		ep, err := endpoint.ParseCustom(s)
		if err != nil {
			f.Fatalf("endpoint %s: %v", s, err)
		}
		custom = append(custom, ep)
	}
	return endpoint.Merge(endpoint.Select([]endpoint.Cloud{endpoint.All, endpoint.ECS}), custom)
}

func FuzzEvaluate(f *testing.F) {
	for _, s := range fuzzEvaluateSeeds {
		f.Add([]byte(s))
	}
	eps := fuzzEndpoints(f)
	// One file per fuzzing process, rewritten for each input.
	path := filepath.Join(f.TempDir(), "cluster.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		inv, err := inventory.Load([]string{path}, inventory.Options{MaxFileBytes: 1 << 20})
		if err != nil {
			t.Fatalf("Load of an existing file failed: %v", err)
		}
		m := policy.Compile(inv)
		for _, r := range m.Rejected {
			if r.Message == "" || r.Object == nil || r.Source.File != path || r.Field == "" {
				t.Errorf("incomplete rejection: %+v", r)
			}
		}

		var subjects []policy.Subject
		for _, p := range inv.Pods {
			subjects = append(subjects, policy.Subject{Namespace: p.Pod.Namespace, Labels: p.Pod.Labels, HostNetwork: p.Pod.Spec.HostNetwork, ServiceAccount: p.Pod.Spec.ServiceAccountName})
		}
		for _, w := range inv.Workloads {
			subjects = append(subjects, policy.Subject{Namespace: w.Namespace, Labels: w.Template.Labels, HostNetwork: w.Template.Spec.HostNetwork, ServiceAccount: w.Template.Spec.ServiceAccountName})
		}
		// With Calico, a Pass can skip the default tier and its Kubernetes NetworkPolicies.
		calico := len(inv.CalicoGlobalNetworkPolicies)+len(inv.CalicoNetworkPolicies)+len(inv.CalicoTiers) > 0
		all := m.EvaluateAll(subjects, eps)
		for i, s := range subjects {
			got := make([]policy.Verdict, len(eps))
			m.Evaluate(s, eps, got)
			explained, traces := m.Explain(s, eps)
			isolated := m.Isolated(s)
			control := m.EgressControl(s.Namespace)
			for j, v := range got {
				at := s.Namespace + " " + labelString(s.Labels) + " → " + eps[j].String()
				if explained[j] != v {
					t.Errorf("%s: Explain says %v, Evaluate says %v", at, explained[j], v)
				}
				if all[i][j] != v {
					t.Errorf("%s: EvaluateAll says %v, Evaluate says %v", at, all[i][j], v)
				}
				if len(traces[j]) == 0 {
					t.Errorf("%s: Explain gave no trace", at)
				}
				checkVerdict(t, at, s, v, isolated, calico, control)
			}
		}
	})
}

// checkVerdict asserts what must hold of any verdict.
func checkVerdict(t *testing.T, at string, s policy.Subject, v policy.Verdict, isolated, calico bool, control policy.EgressControl) {
	t.Helper()
	r := v.DecidedBy
	switch {
	case r.Tier == "":
		t.Errorf("%s: %v has no tier", at, v)
	case v.Allowed != (r.Action == policy.ActionAllow):
		t.Errorf("%s: allowed=%t but the action is %q", at, v.Allowed, r.Action)
	case !v.Allowed && (r.Tier == policy.TierDefault || r.Tier == policy.TierHostNetwork):
		t.Errorf("%s: denied by tier %s", at, r.Tier)
	case s.HostNetwork && r.Tier != policy.TierHostNetwork:
		t.Errorf("%s: a hostNetwork subject was decided by %s", at, r.Tier)
	case !s.HostNetwork && r.Tier == policy.TierHostNetwork:
		t.Errorf("%s: a pod-network subject was decided by the hostNetwork tier", at)
	case (r.Tier == policy.TierDefault || r.Tier == policy.TierHostNetwork) && (r.Policy != "" || r.Rule != policy.NoRule):
		t.Errorf("%s: %s verdict names policy %q rule %d", at, r.Tier, r.Policy, r.Rule)
	case r.Tier != policy.TierDefault && r.Tier != policy.TierHostNetwork && r.Policy == "":
		t.Errorf("%s: %s verdict names no policy", at, r.Tier)
	case r.Tier == policy.TierNetworkPolicy && !isolated:
		t.Errorf("%s: decided by NetworkPolicy %s, but no NetworkPolicy isolates the subject", at, r.Policy)
	case r.Tier == policy.TierDefault && isolated && !calico:
		t.Errorf("%s: allowed by default, but a NetworkPolicy isolates the subject", at)
	case !s.HostNetwork && !control.Any() && r.Tier != policy.TierDefault:
		t.Errorf("%s: no policy controls egress in the namespace, but %v", at, v)
	}
}

func labelString(l map[string]string) string {
	var parts []string
	for k, v := range l {
		parts = append(parts, k+"="+v)
	}
	slices.Sort(parts)
	return "{" + strings.Join(parts, ",") + "}"
}
