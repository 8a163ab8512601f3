package bolt

import (
	"context"

	"go.etcd.io/bbolt"

	"github.com/tranchehq/tranche/internal/bulk"
)

var _ bulk.FHIRVersionStore = (*ResourceStore)(nil)

// keyFHIRVersion holds the store's FHIR release in meta (absent: none yet).
var keyFHIRVersion = []byte("fhirVersion")

// FHIRVersion implements bulk.FHIRVersionStore.
func (s *ResourceStore) FHIRVersion(ctx context.Context) (v string, err error) {
	defer bulk.Wrap(&err, "bolt.FHIRVersion")
	err = s.db.bolt.View(func(tx *bbolt.Tx) error {
		v = string(tx.Bucket(bucketMeta).Get(keyFHIRVersion))
		return nil
	})
	return v, err
}

// SetFHIRVersion implements bulk.FHIRVersionStore.
func (s *ResourceStore) SetFHIRVersion(ctx context.Context, v string) (err error) {
	defer bulk.Wrap(&err, "bolt.SetFHIRVersion(%q)", v)
	return s.db.update(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		switch old := string(meta.Get(keyFHIRVersion)); old {
		case "":
			return meta.Put(keyFHIRVersion, []byte(v))
		case v:
			return nil
		default:
			return bulk.VersionConflict(old, v)
		}
	})
}
