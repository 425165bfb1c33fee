// Package deploy holds imdsguard's Kubernetes manifests (controller/, agent/, rbac/) and its
// Helm chart (helm/imdsguard). It has no code: its tests apply the manifests and the rendered
// chart to a real kube-apiserver and run the controller with exactly the permissions they grant.
package deploy
