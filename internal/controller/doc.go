// Package controller keeps the cluster-level defence against the cloud instance metadata
// endpoints in place, continuously: a NetworkPolicy in every namespace where one cannot widen
// anyone's egress, or one cluster-wide deny (AdminNetworkPolicy, Calico, Cilium).
//
// Every decision is a pure function (gather → evaluate → write): the reconcilers gather the
// objects a decision needs from the informer cache, hand them to DecideNamespace or
// DecideCluster, which build the desired objects with internal/generate (the same objects, the
// same safety rule and the same verification as `imdsguard generate`), and Plan compares the
// desired object with the one in the cluster. Only the write is a side effect: server-side
// apply with the field manager FieldManager, on objects carrying the ownership label only.
package controller
