package dynamodb

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"strings"

	"github.com/tranchehq/tranche/internal/bulk"
)

// spill is a spilled resource: a JSON header line with the index lists,
// then the body.
type spill struct {
	Patients []string `json:"patients,omitempty"`
	Members  []string `json:"members,omitempty"`
	body     []byte
}

func (s *ResourceStore) readSpill(ctx context.Context, ref string) (*spill, error) {
	if s.opts.Bodies == nil {
		return nil, bulk.Errorf(bulk.EINTERNAL, "A resource body is spilled but no body store is configured.")
	}
	o, err := s.opts.Bodies.Open(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer o.Close()
	raw, err := io.ReadAll(o)
	if err != nil {
		return nil, bulk.Wrapf(err, bulk.ETRANSIENT, "Reading a spilled body failed.")
	}
	head, body, ok := bytes.Cut(raw, []byte("\n"))
	var sp spill
	if !ok || json.Unmarshal(head, &sp) != nil {
		return nil, bulk.Errorf(bulk.EINTERNAL, "Spilled body %s is unreadable.", ref)
	}
	sp.body = body
	return &sp, nil
}

func (s *ResourceStore) writeSpill(ctx context.Context, ref string, r *bulk.Resource) error {
	if s.opts.Bodies == nil {
		return bulk.Errorf(bulk.EINVALID, "%s/%s is larger than %d bytes and no body store is configured.", r.Type, r.ID, s.opts.SpillBytes)
	}
	head, err := json.Marshal(spill{Patients: r.Patients, Members: r.Members})
	if err != nil {
		return err
	}
	w, err := s.opts.Bodies.Create(ctx, ref)
	if err != nil {
		return err
	}
	defer w.Abort()
	for _, p := range [][]byte{head, []byte("\n"), r.Body} {
		if _, err := w.Write(p); err != nil {
			return err
		}
	}
	return w.Close()
}

// spillKey names a version's spilled body. The id is hex-encoded: FHIR ids
// may hold ".." and other sequences object keys refuse.
func spillKey(typ, id, lastUpdated string) string {
	return typ + "/" + hex.EncodeToString([]byte(id)) + "/" + strings.NewReplacer(":", "", ".", "").Replace(lastUpdated)
}

func (s *ResourceStore) deleteSpills(ctx context.Context, refs []string) {
	for _, ref := range refs {
		// Best effort: an orphaned body costs storage, not correctness.
		_ = s.opts.Bodies.DeletePrefix(ctx, ref)
	}
}

// spillSize is what a resource's inline attributes would weigh.
func spillSize(r *bulk.Resource) int {
	size := len(r.Body)
	for _, p := range r.Patients {
		size += len(p) + 4
	}
	for _, m := range r.Members {
		size += len(m) + 4
	}
	return size
}
