package importer

import (
	"context"

	"github.com/tranchehq/tranche/internal/bulk"
)

// Store is what an import reads and writes: the bulk.ResourceSink it loads
// into, the stored versions that `urn:uuid:` resolution rewrites (Get, as
// bulk.ResourceReader's), the member lists of the Groups it writes, for
// Report.GroupChanges (GroupMembers, as bulk.GroupReader's), and the
// deletions it re-creates resources over (bulk.TombstoneReader). Every
// bulk.ResourceStore is one.
//
// A Store that is also a bulk.Clock stamps the import's versions (see
// Options.Clock), and one that is a bulk.FHIRVersionStore records the
// release imported (Options.FHIR).
type Store interface {
	bulk.ResourceSink
	bulk.TombstoneReader
	// Get is bulk.ResourceReader.Get.
	Get(ctx context.Context, typ, id string) (*bulk.Resource, error)
	// GroupMembers is bulk.GroupReader.GroupMembers.
	GroupMembers(ctx context.Context, groupID string) ([]string, error)
}

var _ Store = bulk.ResourceStore(nil)
