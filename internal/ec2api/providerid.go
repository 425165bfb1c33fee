package ec2api

import (
	"fmt"
	"regexp"
	"strings"
)

// Instance names one EC2 instance: its ID and the region whose EC2 API answers for it.
type Instance struct {
	ID     string
	Region string
}

func (i Instance) String() string { return i.ID + " (" + i.Region + ")" }

// instanceID is an EC2 instance ID: "i-" and 8 or 17 hexadecimal characters, the older and the
// current resource ID length (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/resource-ids.html).
var instanceID = regexp.MustCompile(`^i-([0-9a-f]{8}|[0-9a-f]{17})$`)

// InstanceOf reads the EC2 instance of a node from its spec.providerID, which the AWS cloud
// provider sets to "aws:///ZONE/INSTANCE-ID" ("aws:///eu-west-1a/i-0abc123..."). It fails on
// any other form, for example a Fargate node, whose "instance" is not an EC2 instance ID, or a
// provider ID without a zone, which does not say which region's API to ask.
func InstanceOf(providerID string) (Instance, error) {
	rest, ok := strings.CutPrefix(providerID, "aws://")
	if !ok {
		return Instance{}, fmt.Errorf("provider ID %q: not aws://", providerID)
	}
	// rest is "/ZONE/ID": the empty host of the URL, then the path.
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || parts[0] != "" {
		return Instance{}, fmt.Errorf("provider ID %q: want aws:///ZONE/INSTANCE-ID", providerID)
	}
	zone, id := parts[1], parts[2]
	if !instanceID.MatchString(id) {
		return Instance{}, fmt.Errorf("provider ID %q: %q is not an EC2 instance ID (i- and 8 or 17 hexadecimal digits)", providerID, id)
	}
	region, err := RegionOfZone(zone)
	if err != nil {
		return Instance{}, fmt.Errorf("provider ID %q: %w", providerID, err)
	}
	return Instance{ID: id, Region: region}, nil
}

var (
	regionWord = regexp.MustCompile(`^[a-z]+$`)
	// zoneNumber is the part of a zone name that ends its region's code: the region's number,
	// followed by the zone's letter in an Availability Zone ("1a" in "us-east-1a").
	zoneNumber = regexp.MustCompile(`^([0-9]+)([a-z]?)$`)
)

// RegionOfZone returns the region of an Availability Zone, Local Zone or Wavelength Zone name.
// Every zone name starts with its parent region's code, a series of words and a number
// ("us-east-1", "us-gov-west-1", "ap-southeast-2"):
//   - "The code for an Availability Zone is its Region code followed by a letter identifier":
//     "us-east-2a" (https://docs.aws.amazon.com/global-infrastructure/latest/regions/aws-availability-zones.html);
//   - a Local Zone adds a location identifier: "us-west-2-lax-1a" is in Los Angeles, "where
//     us-west-2 is the parent Region code and lax-1a is the location identifier"
//     (https://docs.aws.amazon.com/local-zones/latest/ug/available-local-zones.html);
//   - a Wavelength Zone too, and ends in a digit, not a letter: "us-east-1-wl1-bos-wlz-1"
//     (https://docs.aws.amazon.com/wavelength/latest/developerguide/available-wavelength-zones.html).
//
// So the region is the name up to its first all-numeric part, not the name minus its last
// character, which would turn "us-east-1-wl1-bos-wlz-1" into a region that does not exist.
func RegionOfZone(zone string) (string, error) {
	parts := strings.Split(zone, "-")
	for i, p := range parts {
		m := zoneNumber.FindStringSubmatch(p)
		if m == nil {
			if !regionWord.MatchString(p) {
				break
			}
			continue
		}
		// A region code has at least two words before its number ("us-east-1").
		if i < 2 {
			break
		}
		letter, more := m[2] != "", i < len(parts)-1
		// "us-east-1a" is an Availability Zone, "us-west-2-lax-1a" a Local or Wavelength Zone;
		// "us-east-1" is a region, not a zone, and "us-east-1a-x" is neither.
		if letter == more {
			break
		}
		return strings.Join(parts[:i], "-") + "-" + m[1], nil
	}
	return "", fmt.Errorf("zone %q: not an AWS Availability Zone, Local Zone or Wavelength Zone name (e.g. us-east-1a, us-west-2-lax-1a, us-east-1-wl1-bos-wlz-1)", zone)
}
