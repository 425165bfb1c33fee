// Package ec2apitest serves the part of the EC2 Query API that package ec2api calls,
// DescribeInstances and DescribeLaunchTemplateVersions, in its documented wire format, from a
// local HTTP server: tests run the real aws-sdk-go-v2 client against it, with no AWS reachable.
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
//
// DescribeLaunchTemplateVersions
// (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeLaunchTemplateVersions.html):
// "Action=DescribeLaunchTemplateVersions&LaunchTemplateId=lt-...&LaunchTemplateVersion.1=$Latest&LaunchTemplateVersion.2=$Default";
// a DescribeLaunchTemplateVersionsResponse XML document with launchTemplateVersionSet/item
// (launchTemplateId, launchTemplateName, versionNumber, defaultVersion,
// launchTemplateData/metadataOptions; the LaunchTemplateVersion, ResponseLaunchTemplateData and
// LaunchTemplateInstanceMetadataOptions data types:
// https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_LaunchTemplateVersion.html,
// https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_ResponseLaunchTemplateData.html,
// https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_LaunchTemplateInstanceMetadataOptions.html)
// and nextToken.
package ec2apitest

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
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

// TemplateOptions are the metadata options a launch template version states (the XML element
// launchTemplateData/metadataOptions, LaunchTemplateInstanceMetadataOptions). An empty field is
// left out of the XML; a version without options (AddTemplate's zero TemplateOptions) has no
// metadataOptions element at all.
type TemplateOptions struct {
	HTTPTokens              string `xml:"httpTokens,omitempty"`
	HTTPPutResponseHopLimit int    `xml:"httpPutResponseHopLimit,omitempty"`
	HTTPEndpoint            string `xml:"httpEndpoint,omitempty"`
	HTTPProtocolIPv6        string `xml:"httpProtocolIpv6,omitempty"`
	InstanceMetadataTags    string `xml:"instanceMetadataTags,omitempty"`
}

// template is a launch template as the server holds it.
type template struct {
	name           string
	defaultVersion int64
	versions       []TemplateOptions // version N is versions[N-1]
}

// Request is one call as the server received it.
type Request struct {
	// Action is the form's Action: DescribeInstances, DescribeLaunchTemplateVersions.
	Action string
	// Region is the region of the Signature Version 4 credential scope.
	Region string
	// AccessKeyID is the access key of the credential scope.
	AccessKeyID string
	// Authorization is the Authorization header.
	Authorization string
	Form          map[string][]string
	InstanceIDs   []string
	NextToken     string
	// LaunchTemplateID and Versions are DescribeLaunchTemplateVersions' LaunchTemplateId and
	// LaunchTemplateVersion.N.
	LaunchTemplateID string
	Versions         []string
}

// Server is a local EC2 Query API endpoint.
type Server struct {
	URL string

	// PageSize is how many instances, or launch template versions, one response holds before it
	// sets nextToken (0: all).
	PageSize int
	// RepeatVersions lists a launch template version once for each time the call names it
	// ($Latest and $Default of the same version: twice); otherwise once.
	RepeatVersions bool
	// ErrorCode, when set, answers every call with that error (and ErrorStatus, default 403),
	// e.g. "UnauthorizedOperation" or "AccessDenied".
	ErrorCode   string
	ErrorStatus int

	mu        sync.Mutex
	instances map[string]map[string]MetadataOptions // region → instance ID → options
	templates map[string]map[string]template        // region → launch template ID → template
	requests  []Request
}

// NewServer starts a server, stopped when the test ends.
func NewServer(t testing.TB) *Server {
	s := &Server{instances: map[string]map[string]MetadataOptions{}, templates: map[string]map[string]template{}}
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

// AddTemplate makes a launch template exist in a region, with versions 1, 2, ... stating the
// given options, and defaultVersion its default. The highest version is $Latest. A
// defaultVersion of 0 marks no version the default, an answer the API is not documented to give,
// for testing how the client copes with it.
func (s *Server) AddTemplate(region, id, name string, defaultVersion int64, versions ...TemplateOptions) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.templates[region] == nil {
		s.templates[region] = map[string]template{}
	}
	s.templates[region][id] = template{name: name, defaultVersion: defaultVersion, versions: append([]TemplateOptions(nil), versions...)}
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

type launchTemplateDataXML struct {
	MetadataOptions *TemplateOptions `xml:"metadataOptions,omitempty"`
}

type launchTemplateVersionXML struct {
	LaunchTemplateID   string                `xml:"launchTemplateId"`
	LaunchTemplateName string                `xml:"launchTemplateName"`
	VersionNumber      int64                 `xml:"versionNumber"`
	DefaultVersion     bool                  `xml:"defaultVersion"`
	LaunchTemplateData launchTemplateDataXML `xml:"launchTemplateData"`
}

type describeLaunchTemplateVersionsResponse struct {
	XMLName   xml.Name                   `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DescribeLaunchTemplateVersionsResponse"`
	RequestID string                     `xml:"requestId"`
	Versions  []launchTemplateVersionXML `xml:"launchTemplateVersionSet>item"`
	NextToken string                     `xml:"nextToken,omitempty"`
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
	req := Request{Action: r.PostForm.Get("Action"), Authorization: r.Header.Get("Authorization"), Form: r.PostForm,
		NextToken: r.PostForm.Get("NextToken"), LaunchTemplateID: r.PostForm.Get("LaunchTemplateId")}
	if m := credentialScope.FindStringSubmatch(req.Authorization); m != nil {
		req.AccessKeyID, req.Region = m[1], m[2]
	}
	req.InstanceIDs = list(r.PostForm, "InstanceId")
	req.Versions = list(r.PostForm, "LaunchTemplateVersion")
	s.mu.Lock()
	s.requests = append(s.requests, req)
	errCode, errStatus := s.ErrorCode, s.ErrorStatus
	s.mu.Unlock()

	served := req.Action == "DescribeInstances" || req.Action == "DescribeLaunchTemplateVersions"
	switch {
	case req.Region == "":
		s.fail(w, http.StatusBadRequest, "MissingAuthenticationToken", "Request is missing Authentication Token")
		return
	case !served || r.PostForm.Get("Version") != "2016-11-15":
		s.fail(w, http.StatusBadRequest, "InvalidAction", fmt.Sprintf("The action %s is not valid for this web service.", req.Action))
		return
	case errCode != "":
		if errStatus == 0 {
			errStatus = http.StatusForbidden
		}
		s.fail(w, errStatus, errCode, fmt.Sprintf("You are not authorized to perform this operation. User: arn:aws:iam::111122223333:user/audit is not authorized to perform: ec2:%s because no identity-based policy allows the ec2:%s action", req.Action, req.Action))
		return
	}
	if req.Action == "DescribeLaunchTemplateVersions" {
		s.describeLaunchTemplateVersions(w, req)
		return
	}
	s.describeInstances(w, req)
}

// list reads the values of a Query API list parameter: NAME.1, NAME.2, ...
func list(form map[string][]string, name string) []string {
	var out []string
	for i := 1; ; i++ {
		v := form[name+"."+strconv.Itoa(i)]
		if len(v) == 0 || v[0] == "" {
			return out
		}
		out = append(out, v[0])
	}
}

// page reads a NextToken of this server ("page-N") against n items: the index to start from.
func page(token string, n int) (int, bool) {
	if token == "" {
		return 0, true
	}
	start, err := strconv.Atoi(strings.TrimPrefix(token, "page-"))
	if err != nil || start <= 0 || start > n {
		return 0, false
	}
	return start, true
}

func (s *Server) describeInstances(w http.ResponseWriter, req Request) {
	s.mu.Lock()
	pageSize := s.PageSize
	known := s.instances[req.Region]
	s.mu.Unlock()
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
	start, ok := page(req.NextToken, len(ids))
	if !ok {
		s.fail(w, http.StatusBadRequest, "InvalidPaginationToken", "The pagination token is invalid.")
		return
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

// launchTemplateID is the form of a launch template ID: "lt-" and 17 hexadecimal characters.
var launchTemplateID = regexp.MustCompile(`^lt-[0-9a-f]{17}$`)

// describeLaunchTemplateVersions answers for one launch template, named by ID, and the versions
// the call names ($Latest, $Default, numbers; none: all of them). A malformed ID is
// InvalidLaunchTemplateId.Malformed, an unknown one InvalidLaunchTemplateId.NotFound, a version
// number the template does not have InvalidLaunchTemplateId.VersionNotFound
// (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html).
func (s *Server) describeLaunchTemplateVersions(w http.ResponseWriter, req Request) {
	s.mu.Lock()
	pageSize, repeat := s.PageSize, s.RepeatVersions
	t, found := s.templates[req.Region][req.LaunchTemplateID]
	s.mu.Unlock()
	switch {
	case req.LaunchTemplateID == "":
		s.fail(w, http.StatusBadRequest, "MissingParameter", "The request must contain the parameter launchTemplateName or launchTemplateId")
		return
	case !launchTemplateID.MatchString(req.LaunchTemplateID):
		s.fail(w, http.StatusBadRequest, "InvalidLaunchTemplateId.Malformed", fmt.Sprintf("The specified ID for the launch template, %s, is malformed.", req.LaunchTemplateID))
		return
	case !found:
		s.fail(w, http.StatusBadRequest, "InvalidLaunchTemplateId.NotFound", fmt.Sprintf("The specified launch template, with template ID %s, does not exist.", req.LaunchTemplateID))
		return
	}
	var numbers []int64
	for _, v := range req.Versions {
		var n int64
		switch v {
		case "$Latest":
			n = int64(len(t.versions))
		case "$Default":
			n = t.defaultVersion
			if n == 0 {
				continue // AddTemplate's "no default": nothing to list
			}
		default:
			var err error
			n, err = strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1 || n > int64(len(t.versions)) {
				s.fail(w, http.StatusBadRequest, "InvalidLaunchTemplateId.VersionNotFound", fmt.Sprintf("Could not find launch template version %s for launch template ID %s.", v, req.LaunchTemplateID))
				return
			}
		}
		if repeat || !slices.Contains(numbers, n) {
			numbers = append(numbers, n)
		}
	}
	if len(req.Versions) == 0 {
		for n := range len(t.versions) {
			numbers = append(numbers, int64(n+1))
		}
	}
	start, ok := page(req.NextToken, len(numbers))
	if !ok {
		s.fail(w, http.StatusBadRequest, "InvalidPaginationToken", "The pagination token is invalid.")
		return
	}
	end := len(numbers)
	resp := describeLaunchTemplateVersionsResponse{RequestID: "req-" + strconv.Itoa(len(s.Requests()))}
	if pageSize > 0 && start+pageSize < end {
		end = start + pageSize
		resp.NextToken = "page-" + strconv.Itoa(end)
	}
	for _, n := range numbers[start:end] {
		item := launchTemplateVersionXML{LaunchTemplateID: req.LaunchTemplateID, LaunchTemplateName: t.name, VersionNumber: n, DefaultVersion: n == t.defaultVersion}
		if o := t.versions[n-1]; o != (TemplateOptions{}) {
			item.LaunchTemplateData.MetadataOptions = &o
		}
		resp.Versions = append(resp.Versions, item)
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
