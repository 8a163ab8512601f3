package bolt

import (
	"context"
	"encoding/json"
	"strings"

	"go.etcd.io/bbolt"

	"github.com/tranchehq/tranche/internal/bulk"
)

// The cohort definitions (bulk.CohortStore), in a bucket the first write
// creates (older files need no migration):
//
//	cohorts            owner 0x00 cohort id → JSON
var bucketCohorts = []byte("cohorts")

var _ bulk.CohortStore = (*CohortStore)(nil)

// Cohorts returns the cohort store in the file.
func (db *DB) Cohorts() *CohortStore { return &CohortStore{db: db} }

// CohortStore is the bulk.CohortStore in a DB file. Every method is one
// bbolt transaction, so each read-check-write is atomic.
type CohortStore struct {
	db *DB
}

func cohortKey(owner, id string) []byte {
	return []byte(owner + "\x00" + id)
}

func validCohortKey(owner, id string) bool {
	return owner != "" && id != "" && !strings.ContainsRune(owner, 0) && !strings.ContainsRune(id, 0)
}

// CreateCohort implements bulk.CohortStore.
func (s *CohortStore) CreateCohort(ctx context.Context, c *bulk.Cohort) (err error) {
	defer bulk.Wrap(&err, "bolt.CohortStore.CreateCohort(%q)", c.ID)
	if !validCohortKey(c.Owner, c.ID) {
		return bulk.Errorf(bulk.EINVALID, "A cohort needs an id and an owner without NUL.")
	}
	nc := *c
	nc.Revision = 1
	v, err := json.Marshal(&nc)
	if err != nil {
		return err
	}
	err = s.db.update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketCohorts)
		if err != nil {
			return err
		}
		k := cohortKey(c.Owner, c.ID)
		if b.Get(k) != nil {
			return bulk.Errorf(bulk.ECONFLICT, "Cohort %s already exists.", c.ID)
		}
		return b.Put(k, v)
	})
	if err == nil {
		c.Revision = 1
	}
	return err
}

// GetCohort implements bulk.CohortStore.
func (s *CohortStore) GetCohort(ctx context.Context, owner, id string) (c *bulk.Cohort, err error) {
	defer bulk.Wrap(&err, "bolt.CohortStore.GetCohort(%q)", id)
	if !validCohortKey(owner, id) {
		return nil, errCohortNotFound(id)
	}
	err = s.db.bolt.View(func(tx *bbolt.Tx) error {
		var v []byte
		if b := tx.Bucket(bucketCohorts); b != nil {
			v = b.Get(cohortKey(owner, id))
		}
		if v == nil {
			return errCohortNotFound(id)
		}
		c = new(bulk.Cohort)
		return json.Unmarshal(v, c)
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// UpdateCohort implements bulk.CohortStore.
func (s *CohortStore) UpdateCohort(ctx context.Context, c *bulk.Cohort) (err error) {
	defer bulk.Wrap(&err, "bolt.CohortStore.UpdateCohort(%q)", c.ID)
	if !validCohortKey(c.Owner, c.ID) {
		return errCohortNotFound(c.ID)
	}
	nc := *c
	nc.Revision++
	v, err := json.Marshal(&nc)
	if err != nil {
		return err
	}
	err = s.db.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketCohorts)
		var old []byte
		if b != nil {
			old = b.Get(cohortKey(c.Owner, c.ID))
		}
		if old == nil {
			return errCohortNotFound(c.ID)
		}
		var stored struct {
			Revision int64 `json:"revision"`
		}
		if err := json.Unmarshal(old, &stored); err != nil {
			return err
		}
		if stored.Revision != c.Revision {
			return bulk.Errorf(bulk.ECONFLICT, "Cohort %s was changed meanwhile.", c.ID)
		}
		return b.Put(cohortKey(c.Owner, c.ID), v)
	})
	if err == nil {
		c.Revision = nc.Revision
	}
	return err
}

// DeleteCohort implements bulk.CohortStore.
func (s *CohortStore) DeleteCohort(ctx context.Context, owner, id string) (err error) {
	defer bulk.Wrap(&err, "bolt.CohortStore.DeleteCohort(%q)", id)
	if !validCohortKey(owner, id) {
		return errCohortNotFound(id)
	}
	return s.db.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketCohorts)
		k := cohortKey(owner, id)
		if b == nil || b.Get(k) == nil {
			return errCohortNotFound(id)
		}
		return b.Delete(k)
	})
}

// ListCohorts implements bulk.CohortStore: one prefix of the bucket (the
// whole bucket for owner ""), whose key order is (owner, id) order.
func (s *CohortStore) ListCohorts(ctx context.Context, owner string, fn func(*bulk.Cohort) error) (err error) {
	defer bulk.Wrap(&err, "bolt.CohortStore.ListCohorts(%q)", owner)
	if strings.ContainsRune(owner, 0) {
		return nil
	}
	var prefix []byte
	if owner != "" {
		prefix = []byte(owner + "\x00")
	}
	cs, err := readJSON[bulk.Cohort](s.db, bucketCohorts, prefix, "cohort")
	if err != nil {
		return err
	}
	return visitEach(ctx, cs, fn)
}

func errCohortNotFound(id string) error {
	return bulk.Errorf(bulk.ENOTFOUND, "Cohort %s not found.", id)
}
