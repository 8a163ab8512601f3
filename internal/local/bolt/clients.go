package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.etcd.io/bbolt"

	"github.com/tranchehq/tranche/internal/bulk"
)

// The client and replay buckets are created by the first write that needs
// them, so files made before they existed need no migration:
//
//	clients            client id → JSON
//	jti                key → expiry (8 bytes, UnixNano with the sign bit flipped)
var (
	bucketClients = []byte("clients")
	bucketJTI     = []byte("jti")
)

var (
	_ bulk.ClientStore = (*ClientStore)(nil)
	_ bulk.ReplayCache = (*ReplayCache)(nil)
)

// Clients returns the client store in the file.
func (db *DB) Clients() *ClientStore { return &ClientStore{db: db} }

// Replay returns a replay cache in the file that reads the time from now
// (time.Now if nil). Caches returned by separate calls share the records.
func (db *DB) Replay(now func() time.Time) *ReplayCache {
	if now == nil {
		now = time.Now
	}
	return &ReplayCache{db: db, now: now}
}

// ClientStore is the bulk.ClientStore in a DB file: each client is JSON
// under its id. Every method is one bbolt transaction, so each
// read-check-write is atomic.
type ClientStore struct {
	db *DB
}

// CreateClient stores c. Returns ECONFLICT if the id exists and EINVALID if
// it is empty.
func (s *ClientStore) CreateClient(ctx context.Context, c *bulk.Client) (err error) {
	defer bulk.Wrap(&err, "bolt.ClientStore.CreateClient(%q)", c.ID)
	if c.ID == "" || strings.IndexByte(c.ID, 0) >= 0 {
		return bulk.Errorf(bulk.EINVALID, "A client id must be non-empty and contain no NUL.")
	}
	v, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return s.db.update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketClients)
		if err != nil {
			return err
		}
		if b.Get([]byte(c.ID)) != nil {
			return bulk.Errorf(bulk.ECONFLICT, "Client %s already exists.", c.ID)
		}
		return b.Put([]byte(c.ID), v)
	})
}

// GetClient returns a client. Returns ENOTFOUND if it does not exist.
func (s *ClientStore) GetClient(ctx context.Context, id string) (c *bulk.Client, err error) {
	defer bulk.Wrap(&err, "bolt.ClientStore.GetClient(%q)", id)
	err = s.db.bolt.View(func(tx *bbolt.Tx) error {
		var v []byte
		if b := tx.Bucket(bucketClients); b != nil {
			v = b.Get([]byte(id))
		}
		if v == nil {
			return errClientNotFound(id)
		}
		c = new(bulk.Client)
		return json.Unmarshal(v, c)
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// UpdateClient replaces a stored client. Returns ENOTFOUND if it does not
// exist.
func (s *ClientStore) UpdateClient(ctx context.Context, c *bulk.Client) (err error) {
	defer bulk.Wrap(&err, "bolt.ClientStore.UpdateClient(%q)", c.ID)
	v, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return s.db.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketClients)
		if b == nil || b.Get([]byte(c.ID)) == nil {
			return errClientNotFound(c.ID)
		}
		return b.Put([]byte(c.ID), v)
	})
}

// DeleteClient removes a client. Returns ENOTFOUND if it does not exist.
func (s *ClientStore) DeleteClient(ctx context.Context, id string) (err error) {
	defer bulk.Wrap(&err, "bolt.ClientStore.DeleteClient(%q)", id)
	return s.db.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketClients)
		if b == nil || b.Get([]byte(id)) == nil {
			return errClientNotFound(id)
		}
		return b.Delete([]byte(id))
	})
}

// ListClients visits every client in id order. The clients are read first,
// so fn may call the store.
func (s *ClientStore) ListClients(ctx context.Context, fn func(*bulk.Client) error) error {
	cs, err := readJSON[bulk.Client](s.db, bucketClients, nil, "client")
	if err != nil {
		return fmt.Errorf("bolt.ClientStore.ListClients: %w", err)
	}
	return visitEach(ctx, cs, fn)
}

// readJSON decodes the JSON values under prefix (the whole bucket for nil)
// of a bucket that may not exist yet, in key order, in one read
// transaction; what names a value in a decoding error. The List methods
// read this way first, so that their fn may call the store.
func readJSON[T any](db *DB, bucket, prefix []byte, what string) ([]*T, error) {
	var vs []*T
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil {
			return nil
		}
		cur := b.Cursor()
		for k, v := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
			x := new(T)
			if err := json.Unmarshal(v, x); err != nil {
				return fmt.Errorf("%s %q: %w", what, k, err)
			}
			vs = append(vs, x)
		}
		return nil
	})
	return vs, err
}

// visitEach calls fn on each of xs in turn: it stops at the first error fn
// returns, and returns ctx.Err() once ctx is done.
func visitEach[T any](ctx context.Context, xs []T, fn func(T) error) error {
	for _, x := range xs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(x); err != nil {
			return err
		}
	}
	return nil
}

func errClientNotFound(id string) error {
	return bulk.Errorf(bulk.ENOTFOUND, "Client %s not found.", id)
}

// replaySweepBatch is how many records each MarkUsed examines for expiry,
// resuming where the previous call stopped. Every call adds at most one
// record and looks at this many, so the bucket stays close to the live
// records without ever scanning it whole in one transaction.
const replaySweepBatch = 16

// ReplayCache is the bulk.ReplayCache in a DB file: each key maps to its
// expiry. Each MarkUsed is one write transaction that checks, records and
// sweeps a few expired records opportunistically.
type ReplayCache struct {
	db  *DB
	now func() time.Time

	mu     sync.Mutex
	cursor []byte // where the next sweep starts; nil for the beginning
}

// MarkUsed records key until expires. Returns ECONFLICT if key is recorded
// and has not expired; a record expires at its expiry time.
func (c *ReplayCache) MarkUsed(ctx context.Context, key string, expires time.Time) (err error) {
	defer bulk.Wrap(&err, "bolt.ReplayCache.MarkUsed")
	if key == "" {
		return bulk.Errorf(bulk.EINVALID, "A replay key must be non-empty.")
	}
	now := c.now()
	c.mu.Lock()
	from := c.cursor
	c.mu.Unlock()
	var next []byte
	err = c.db.update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketJTI)
		if err != nil {
			return err
		}
		if v := b.Get([]byte(key)); len(v) == 8 && now.Before(decodeExpiry(v)) {
			return bulk.Errorf(bulk.ECONFLICT, "This value has already been used.")
		}
		if err := b.Put([]byte(key), encodeExpiry(expires)); err != nil {
			return err
		}
		next, err = sweepExpired(b, from, now)
		return err
	})
	if err == nil {
		c.mu.Lock()
		c.cursor = next
		c.mu.Unlock()
	}
	return err
}

// sweepExpired deletes the expired records among the replaySweepBatch
// records from from (wrapping around at the end) and returns where the next
// sweep starts.
func sweepExpired(b *bbolt.Bucket, from []byte, now time.Time) ([]byte, error) {
	var dead [][]byte
	cur := b.Cursor()
	k, v := cur.Seek(from)
	if from == nil {
		k, v = cur.First()
	}
	for range replaySweepBatch {
		if k == nil {
			break
		}
		if len(v) != 8 || !now.Before(decodeExpiry(v)) {
			dead = append(dead, bytes.Clone(k))
		}
		k, v = cur.Next()
	}
	next := bytes.Clone(k) // nil at the end: start over next time
	// Collect first: deleting under a cursor skips entries.
	for _, k := range dead {
		if err := b.Delete(k); err != nil {
			return nil, err
		}
	}
	return next, nil
}

// encodeExpiry stores t as UnixNano with the sign bit flipped, like the other
// times in the file.
func encodeExpiry(t time.Time) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(t.UnixNano())^(1<<63))
}

func decodeExpiry(v []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(v)^(1<<63)))
}

// Len returns the number of records held, live or expired but not yet
// swept. For tests and metrics.
func (c *ReplayCache) Len() (n int, err error) {
	err = c.db.bolt.View(func(tx *bbolt.Tx) error {
		if b := tx.Bucket(bucketJTI); b != nil {
			n = b.Stats().KeyN
		}
		return nil
	})
	return n, err
}
