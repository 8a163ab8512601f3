package dynamodb

import (
	"bytes"
	"compress/flate"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tranchehq/tranche/internal/bulk"
)

// Compartment index items carry a copy of the body (issue 12 item 2), so
// that a Group or `patient` export reads a member's compartment with
// Query pages, at a scan's cost, instead of the pages of pointers plus one
// strongly consistent BatchGetItem read per resource: each of those is a
// whole read unit however small the item
// (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html),
// about three times what the same bytes cost in a Query page.
//
// The copy is the body deflated (RFC 1951; FHIR JSON of one resource
// shrinks to about 45 %), with the resource's Patients and Members, under
// attribute "bz". Writing it costs one write unit per KB of item per
// compartment, so only a resource in at most maxInlineCompartments
// compartments whose copy stays within maxInlineBytes gets one: a typical
// resource's item stays under 1 KB (one write unit, as the pointer alone),
// while a large Group (thousands of compartments) or a large body keeps a
// pointer, read with BatchGetItem as before (for a large item BatchGetItem
// costs what a Query page does). Spilled resources keep a pointer too.
// Items written before, and those a Put that lost a race restores
// (abandon), are pointers: reads take both.
const (
	attrInline            = "bz" // B: deflated body of a compartment item
	maxInlineCompartments = 4
	maxInlineBytes        = 2 << 10
)

var (
	deflaters = sync.Pool{New: func() any {
		w, _ := flate.NewWriter(nil, flate.BestSpeed) // BestSpeed is a valid level: no error
		return w
	}}
	inflaters = sync.Pool{New: func() any { return flate.NewReader(nil) }}
)

// inlineCopy returns the compartment copy of r's body, or nil when r's
// compartment items point at its scan item instead.
func inlineCopy(r *bulk.Resource, spilled bool) []byte {
	if spilled || len(r.Patients) == 0 || len(slices.Compact(slices.Sorted(slices.Values(r.Patients)))) > maxInlineCompartments {
		return nil
	}
	z := deflate(r.Body)
	if len(z)+listBytes(r.Patients)+listBytes(r.Members) > maxInlineBytes {
		return nil
	}
	return z
}

// listBytes is what a list of ids weighs in an item.
func listBytes(ids []string) int {
	size := 0
	for _, id := range ids {
		size += len(id) + 4
	}
	return size
}

func deflate(body []byte) []byte {
	var buf bytes.Buffer
	w := deflaters.Get().(*flate.Writer)
	defer deflaters.Put(w)
	w.Reset(&buf)
	w.Write(body) // writes to a bytes.Buffer do not fail
	w.Close()
	return buf.Bytes()
}

func inflate(z []byte) ([]byte, error) {
	r := inflaters.Get().(io.ReadCloser)
	defer inflaters.Put(r)
	if err := r.(flate.Resetter).Reset(bytes.NewReader(z), nil); err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// compartmentItem is the compartment index item of v's resource in
// patient's compartment: a pointer to the scan item (lu), and the inline
// copy if v has one.
func compartmentItem(patient string, v *version) map[string]types.AttributeValue {
	r := v.r
	item := map[string]types.AttributeValue{attrPK: sv(compartmentPK(patient)), attrSK: sv(r.Type + "#" + r.ID), attrLU: sv(v.lu)}
	if v.inline != nil {
		item[attrInline] = b(v.inline)
		if len(r.Patients) > 0 {
			item[attrPatients] = strList(r.Patients)
		}
		if len(r.Members) > 0 {
			item[attrMembers] = strList(r.Members)
		}
	}
	return item
}

// decodeInline builds a resource from a compartment item with a copy.
func decodeInline(typ string, item map[string]types.AttributeValue) (*bulk.Resource, error) {
	sk := getS(item, attrSK)
	_, id, _ := strings.Cut(sk, "#")
	t, err := parseLU(getS(item, attrLU))
	if err != nil {
		return nil, bulk.Wrapf(err, bulk.EINTERNAL, "Compartment item %q is unreadable.", sk)
	}
	body, err := inflate(getB(item, attrInline))
	if err != nil {
		return nil, bulk.Wrapf(err, bulk.EINTERNAL, "The body copy of compartment item %q is unreadable.", sk)
	}
	return &bulk.Resource{Type: typ, ID: id, LastUpdated: t, Body: body, Patients: getSS(item, attrPatients), Members: getSS(item, attrMembers)}, nil
}
