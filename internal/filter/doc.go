// Package filter is the pure core of the filtering metadata proxy (`imdsguard agent --mode
// filter`): it reads one HTTP/1.x request head strictly, refusing anything that is not plainly
// canonical, and decides, from a deny-by-default policy per cloud kept in embedded data files,
// whether the request may be forwarded to the instance metadata service and exactly what to
// send.
//
// Nothing here is cleaned or normalised: a target with percent-encoding, dot segments, doubled
// slashes or another case than the policy's is refused, never rewritten. What is forwarded is
// rebuilt from the validated parts and an allow-list of headers, so what reaches the metadata
// service is exactly what the policy names.
//
// The package does no I/O beyond the bufio.Reader handed to ReadRequest, keeps no state but the
// embedded policy data, and is safe for concurrent use: a Policy is immutable once built.
package filter
