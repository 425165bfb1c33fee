// Package ec2apitest serves the part of the EC2 Query API that package ec2api calls,
// DescribeInstances, in its documented wire format, from a local HTTP server: tests run the real
// aws-sdk-go-v2 client against it, with no AWS reachable.
//
// The wire format, from the EC2 API reference
// (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeInstances.html,
// https://docs.aws.amazon.com/AWSEC2/latest/APIReference/Query-Requests.html,
// https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html#api-error-response):
// a POST of the form "Action=DescribeInstances&Version=2016-11-15&InstanceId.1=...", signed with
// Signature Version 4; a DescribeInstancesResponse XML document with
// reservationSet/item/instancesSet/item/metadataOptions and nextToken; errors as
// <Response><Errors><Error><Code>..</Code><Message>..</Message></Error></Errors><RequestID>..</RequestID></Response>
// with a 4xx status.
package ec2apitest

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// MetadataOptions are an instance's metadata options as the API returns them (the XML element
// metadataOptions of InstanceMetadataOptionsResponse). An empty field is left out of the XML.
type MetadataOptions struct {
	State                   string `xml:"state,omitempty"`
	HTTPTokens              string `xml:"httpTokens,omitempty"`
	HTTPPutResponseHopLimit int    `xml:"httpPutResponseHopLimit,omitempty"`
	HTTPEndpoint            string `xml:"httpEndpoint,omitempty"`
	HTTPProtocolIPv6        string `xml:"httpProtocolIpv6,omitempty"`
	InstanceMetadataTags    string `xml:"instanceMetadataTags,omitempty"`
}

// Applied returns options in state "applied".
func Applied(tokens string, hopLimit int, endpoint, ipv6 string) MetadataOptions {
	return MetadataOptions{State: "applied", HTTPTokens: tokens, HTTPPutResponseHopLimit: hopLimit,
		HTTPEndpoint: endpoint, HTTPProtocolIPv6: ipv6, InstanceMetadataTags: "disabled"}
}

// Request is one DescribeInstances call as the server received it.
type Request struct {
	// Region is the region of the Signature Version 4 credential scope.
	Region string
	// AccessKeyID is the access key of the credential scope.
	AccessKeyID string
	// Authorization is the Authorization header.
	Authorization string
	Form          map[string][]string
	InstanceIDs   []string
	NextToken     string
}

// Server is a local EC2 Query API endpoint.
type Server struct {
	URL string

	// PageSize is how many instances one response holds before it sets nextToken (0: all).
	PageSize int
	// ErrorCode, when set, answers every call with that error (and ErrorStatus, default 403),
	// e.g. "UnauthorizedOperation" or "AccessDenied".
	ErrorCode   string
	ErrorStatus int

	mu        sync.Mutex
	instances map[string]map[string]MetadataOptions // region → instance ID → options
	requests  []Request
}

// NewServer starts a server, stopped when the test ends.
func NewServer(t testing.TB) *Server {
	s := &Server{instances: map[string]map[string]MetadataOptions{}}
	ts := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(ts.Close)
	s.URL = ts.URL
	return s
}

// Add makes an instance exist in a region.
func (s *Server) Add(region, id string, o MetadataOptions) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.instances[region] == nil {
		s.instances[region] = map[string]MetadataOptions{}
	}
	s.instances[region][id] = o
}

// Requests returns the calls received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// credentialScope reads "Credential=AKID/DATE/REGION/SERVICE/aws4_request" from a Signature
// Version 4 Authorization header
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html).
var credentialScope = regexp.MustCompile(`Credential=([^/]+)/\d{8}/([^/]+)/ec2/aws4_request`)

type instanceXML struct {
	InstanceID      string          `xml:"instanceId"`
	MetadataOptions MetadataOptions `xml:"metadataOptions"`
}

type reservationXML struct {
	ReservationID string        `xml:"reservationId"`
	OwnerID       string        `xml:"ownerId"`
	Instances     []instanceXML `xml:"instancesSet>item"`
}

type describeInstancesResponse struct {
	XMLName      xml.Name         `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DescribeInstancesResponse"`
	RequestID    string           `xml:"requestId"`
	Reservations []reservationXML `xml:"reservationSet>item"`
	NextToken    string           `xml:"nextToken,omitempty"`
}

type errorResponse struct {
	XMLName xml.Name `xml:"Response"`
	Errors  []struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	} `xml:"Errors>Error"`
	RequestID string `xml:"RequestID"`
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		s.fail(w, http.StatusBadRequest, "InvalidAction", "want POST")
		return
	}
	if err := r.ParseForm(); err != nil {
		s.fail(w, http.StatusBadRequest, "MalformedQueryString", err.Error())
		return
	}
	req := Request{Authorization: r.Header.Get("Authorization"), Form: r.PostForm, NextToken: r.PostForm.Get("NextToken")}
	if m := credentialScope.FindStringSubmatch(req.Authorization); m != nil {
		req.AccessKeyID, req.Region = m[1], m[2]
	}
	for i := 1; ; i++ {
		id := r.PostForm.Get("InstanceId." + strconv.Itoa(i))
		if id == "" {
			break
		}
		req.InstanceIDs = append(req.InstanceIDs, id)
	}
	s.mu.Lock()
	s.requests = append(s.requests, req)
	errCode, errStatus, pageSize := s.ErrorCode, s.ErrorStatus, s.PageSize
	known := s.instances[req.Region]
	s.mu.Unlock()

	switch {
	case req.Region == "":
		s.fail(w, http.StatusBadRequest, "MissingAuthenticationToken", "Request is missing Authentication Token")
		return
	case r.PostForm.Get("Action") != "DescribeInstances" || r.PostForm.Get("Version") != "2016-11-15":
		s.fail(w, http.StatusBadRequest, "InvalidAction", fmt.Sprintf("The action %s is not valid for this web service.", r.PostForm.Get("Action")))
		return
	case errCode != "":
		if errStatus == 0 {
			errStatus = http.StatusForbidden
		}
		s.fail(w, errStatus, errCode, "You are not authorized to perform this operation. User: arn:aws:iam::111122223333:user/audit is not authorized to perform: ec2:DescribeInstances because no identity-based policy allows the ec2:DescribeInstances action")
		return
	}
	var missing []string
	for _, id := range req.InstanceIDs {
		if _, ok := known[id]; !ok {
			missing = append(missing, id)
		}
	}
	// One unknown ID fails the whole call, naming every unknown one.
	switch len(missing) {
	case 0:
	case 1:
		s.fail(w, http.StatusBadRequest, "InvalidInstanceID.NotFound", fmt.Sprintf("The instance ID '%s' does not exist", missing[0]))
		return
	default:
		s.fail(w, http.StatusBadRequest, "InvalidInstanceID.NotFound", fmt.Sprintf("The instance IDs '%s' do not exist", strings.Join(missing, ", ")))
		return
	}
	ids := req.InstanceIDs
	if len(ids) == 0 {
		for id := range known {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	start := 0
	if req.NextToken != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(req.NextToken, "page-"))
		if err != nil || n <= 0 || n > len(ids) {
			s.fail(w, http.StatusBadRequest, "InvalidPaginationToken", "The pagination token is invalid.")
			return
		}
		start = n
	}
	end := len(ids)
	resp := describeInstancesResponse{RequestID: "req-" + strconv.Itoa(len(s.Requests()))}
	if pageSize > 0 && start+pageSize < end {
		end = start + pageSize
		resp.NextToken = "page-" + strconv.Itoa(end)
	}
	// One reservation per instance, as with instances launched one at a time.
	for i, id := range ids[start:end] {
		resp.Reservations = append(resp.Reservations, reservationXML{
			ReservationID: fmt.Sprintf("r-%017x", start+i), OwnerID: "111122223333",
			Instances: []instanceXML{{InstanceID: id, MetadataOptions: known[id]}},
		})
	}
	write(w, http.StatusOK, resp)
}

func (s *Server) fail(w http.ResponseWriter, status int, code, message string) {
	var resp errorResponse
	resp.Errors = append(resp.Errors, struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}{code, message})
	resp.RequestID = "req-error"
	write(w, status, resp)
}

// write sends an XML document whole, with its length, as the EC2 endpoints do.
func write(w http.ResponseWriter, status int, doc any) {
	body, err := xml.Marshal(doc)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	body = append([]byte(xml.Header), body...)
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
