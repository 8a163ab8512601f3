package dynamodb

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tranchehq/tranche/internal/bulk"
)

// version is one resource of a Put with what it replaces.
type version struct {
	// all are the versions of the resource in the Put, in order, with
	// their digests; r is the one written, the last that is not the same
	// as the one before it (see outcomes).
	all     []*bulk.Resource
	digests [][]byte
	r       *bulk.Resource
	lu      string
	shard   int
	ref     string    // spill key, if spilled
	inline  []byte    // the compartment items' copy of the body (inline.go)
	joined  []joining // Groups: members with join times
	old     *current
	oldPts  []string
	// outcome is what Put does with each of all, given old.
	outcome []bulk.PutOutcome
	// contended is set once a commit of this resource lost to another
	// writer: its index items are written again after its commit.
	contended bool
}

// outcomes sets v.outcome, what Put does with each of v.all given v.old,
// and returns the index of the version to write, or -1 if all are the
// same as the live one (which are set as done).
func (v *version) outcomes() int {
	if v.outcome == nil {
		v.outcome = make([]bulk.PutOutcome, len(v.all))
	}
	prev, last := []byte(nil), -1
	if v.old.live {
		prev = v.old.digest
	}
	for i, d := range v.digests {
		switch {
		case i == 0 && !v.old.live:
			v.outcome[i] = bulk.PutNew
		case prev != nil && bytes.Equal(d, prev):
			v.outcome[i] = bulk.PutUnchanged
		default:
			v.outcome[i] = bulk.PutReplaced
		}
		if v.outcome[i] != bulk.PutUnchanged {
			last = i
		}
		prev = d
	}
	if last < 0 {
		for _, r := range v.all {
			r.SetOutcome(bulk.PutUnchanged)
		}
	}
	return last
}

// versionDigest identifies a version's content, Patients and Members
// (bulk.SameContent): SHA-256 cut to 128 bits, as long as a UUID.
func versionDigest(r *bulk.Resource) []byte {
	h := sha256.New()
	h.Write(bulk.AppendContent(nil, r.Body))
	for _, ids := range [][]string{r.Patients, r.Members} {
		h.Write(binary.AppendUvarint(nil, uint64(len(ids))))
		for _, id := range ids {
			h.Write(binary.AppendUvarint(nil, uint64(len(id))))
			h.Write([]byte(id))
		}
	}
	return h.Sum(nil)[:16]
}

// maxPutAttempts bounds how often one resource's commit is retried when
// concurrent writers of the same resource keep winning.
const maxPutAttempts = 30

// Put stores resources: the last of several versions of one resource in rs
// wins (Groups keep the join times of the earlier ones). A version the
// same as the live one is not written (bulk.ResourceSink): the _id item
// it reads anyway holds the live version's digest, so telling costs no
// read.
func (s *ResourceStore) Put(ctx context.Context, rs []*bulk.Resource) (err error) {
	defer bulk.Wrap(&err, "dynamodb.ResourceStore.Put(%d resources)", len(rs))
	for _, r := range rs {
		if r.Type == "" || r.ID == "" {
			return bulk.Errorf(bulk.EINVALID, "A resource needs a type and an id.")
		}
		if strings.ContainsAny(r.Type, "#/") {
			return bulk.Errorf(bulk.EINVALID, "Resource type %q is invalid.", r.Type)
		}
	}
	if err := ctxErr(ctx); err != nil {
		return err
	}
	l, err := s.layout(ctx, true)
	if err != nil {
		return err
	}
	// Every version of each resource, in order: the one written is the
	// last that changes anything, and Groups keep the join times of the
	// earlier ones.
	type key struct{ typ, id string }
	byKey := map[key]*version{}
	var vs []*version
	for _, r := range rs {
		v := byKey[key{r.Type, r.ID}]
		if v == nil {
			v = &version{shard: s.shardOf(r.ID)}
			byKey[key{r.Type, r.ID}] = v
			vs = append(vs, v)
		}
		v.all = append(v.all, r)
		v.digests = append(v.digests, versionDigest(r))
	}
	for attempt := 1; len(vs) > 0; attempt++ {
		lost, err := s.put(ctx, l, vs)
		if err != nil {
			return err
		}
		if len(lost) > 0 && attempt >= maxPutAttempts {
			s.abandon(ctx, l, lost)
			return bulk.Errorf(bulk.ETRANSIENT, "%s/%s is being written concurrently; try again.", lost[0].r.Type, lost[0].r.ID)
		}
		for _, v := range lost {
			v.contended = true
		}
		if len(lost) > 0 {
			// Jittered, so writers that keep colliding spread out.
			d := time.Duration(rand.Int64N(int64(5*time.Millisecond) << min(attempt, 6)))
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctxErr(ctx)
			case <-t.C:
			}
		}
		vs = lost
	}
	return nil
}

// abandon undoes what a Put that gave up wrote for vs: its scan items, its
// compartment items where the version that won is not (they may carry a
// copy of the lost version, which readers would take for stored), and the
// compartment items it may have taken from the version that won
// (pointers: the winner's copy is not at hand).
func (s *ResourceStore) abandon(ctx context.Context, l layout, vs []*version) {
	var reqs []types.WriteRequest
	for _, v := range vs {
		c, err := s.getCurrent(ctx, l, v.r.Type, v.r.ID)
		if err != nil {
			continue
		}
		var winners []string // the compartments of the live version
		if c.live {
			if winners, err = s.oldPatients(ctx, c); err != nil {
				continue
			}
		}
		if !c.live || c.lu != v.lu {
			reqs = append(reqs, types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: key2(s.scanPK(v.r.Type, v.shard), scanSK(v.lu, v.r.ID))}})
			won := idSet(winners)
			for _, p := range slices.Compact(slices.Sorted(slices.Values(v.r.Patients))) {
				if !won[p] {
					reqs = append(reqs, types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: key2(compartmentPK(p), v.r.Type+"#"+v.r.ID)}})
				}
			}
		}
		if c.live {
			for _, p := range slices.Compact(slices.Sorted(slices.Values(winners))) {
				reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: map[string]types.AttributeValue{
					attrPK: sv(compartmentPK(p)), attrSK: sv(v.r.Type + "#" + v.r.ID), attrLU: sv(c.lu),
				}}})
			}
		}
	}
	_ = s.writeParallel(ctx, reqs)
}

// put writes vs once and returns the versions whose commit lost to a
// concurrent writer: it reads what each replaces, writes the new versions'
// items, commits each on its _id item, then removes what the replaced
// versions left (see ResourceStore).
func (s *ResourceStore) put(ctx context.Context, l layout, vs []*version) ([]*version, error) {
	if err := s.readOld(ctx, l, vs); err != nil {
		return nil, err
	}
	vs = toWrite(vs)
	if err := s.prepare(ctx, l, vs); err != nil {
		return nil, err
	}
	if err := s.writeItems(ctx, l, vs); err != nil {
		return nil, err
	}
	lost, won, err := s.commitAll(ctx, l, vs)
	if err != nil {
		return nil, err
	}
	if err := s.removeReplaced(ctx, l, won); err != nil {
		return nil, err
	}
	return lost, nil
}

// readOld sets each v.old: the _id item of what it replaces.
func (s *ResourceStore) readOld(ctx context.Context, l layout, vs []*version) error {
	keys := make([]map[string]types.AttributeValue, len(vs))
	byKey := make(map[string]*version, len(vs))
	for i, v := range vs {
		r := v.all[0]
		pk := l.idPK(r.Type, v.shard)
		keys[i] = key2(pk, r.ID)
		byKey[pk+"|"+r.ID] = v
		v.old = &current{typ: r.Type, id: r.ID}
	}
	return batchGet(ctx, s.api, s.table, keys, func(item map[string]types.AttributeValue) error {
		v := byKey[getS(item, attrPK)+"|"+getS(item, attrSK)]
		v.old = s.decodeCurrent(v.old.typ, v.old.id, item)
		return nil
	})
}

// toWrite returns the versions of vs that change anything, each with the
// version to write chosen (v.r, v.lu); versions the same as the live one
// are done: nothing to write.
func toWrite(vs []*version) []*version {
	return slices.DeleteFunc(slices.Clone(vs), func(v *version) bool {
		last := v.outcomes()
		if last < 0 {
			return true
		}
		v.r, v.lu, v.ref = v.all[last], lu(v.all[last].LastUpdated), ""
		return false
	})
}

// prepare reads what each of vs needs before its items are written: the
// replaced version's Patients, a Group's join times; and spills the
// bodies too large for an item.
func (s *ResourceStore) prepare(ctx context.Context, l layout, vs []*version) error {
	return parallel(ctx, s.opts.Parallel, len(vs), func(i int) error {
		v := vs[i]
		pts, err := s.oldPatients(ctx, v.old)
		if err != nil {
			return err
		}
		v.oldPts = pts
		if v.r.Type == "Group" {
			if err := s.joinTimes(ctx, l, v, v.all[:slices.Index(v.all, v.r)+1]); err != nil {
				return err
			}
		}
		if spillSize(v.r) > s.opts.SpillBytes {
			v.ref = spillKey(v.r.Type, v.r.ID, v.lu)
			if err := s.writeSpill(ctx, v.ref, v.r); err != nil {
				return err
			}
		}
		v.inline = inlineCopy(v.r, v.ref != "")
		return nil
	})
}

// writeItems writes the new versions' items (step 1 of a Put): scan item,
// compartment index items, membership items, TypeOf item. Overwriting is
// idempotent.
func (s *ResourceStore) writeItems(ctx context.Context, l layout, vs []*version) error {
	var writes []types.WriteRequest
	put := func(item map[string]types.AttributeValue) {
		writes = append(writes, types.WriteRequest{PutRequest: &types.PutRequest{Item: item}})
	}
	for _, v := range vs {
		r := v.r
		put(s.scanItem(v))
		for _, p := range slices.Compact(slices.Sorted(slices.Values(r.Patients))) {
			put(compartmentItem(p, v))
		}
		for _, m := range v.joined {
			put(map[string]types.AttributeValue{attrPK: sv(l.membersPK(r.ID, s.shardOf(m.id))), attrSK: sv(m.id), attrSince: sv(m.since)})
		}
		if !v.old.live {
			put(map[string]types.AttributeValue{attrPK: sv(typesPK(r.ID)), attrSK: sv(r.Type)})
		}
	}
	return s.writeParallel(ctx, writes)
}

// scanItem is the scan item of v's resource: its body, Patients and
// Members, or its spill pointer.
func (s *ResourceStore) scanItem(v *version) map[string]types.AttributeValue {
	r := v.r
	item := map[string]types.AttributeValue{
		attrPK: sv(s.scanPK(r.Type, v.shard)), attrSK: sv(scanSK(v.lu, r.ID)), attrNPat: n(int64(len(r.Patients))),
	}
	if v.ref != "" {
		item[attrRef] = sv(v.ref)
		return item
	}
	item[attrBody] = b(bytes.Clone(r.Body))
	if len(r.Patients) > 0 {
		item[attrPatients] = strList(r.Patients)
	}
	if len(r.Members) > 0 {
		item[attrMembers] = strList(r.Members)
	}
	return item
}

// commitAll commits each of vs on its _id item, conditional on what was
// read (step 2 of a Put), and sets the outcomes of those that won. lost
// are those a concurrent writer committed first.
func (s *ResourceStore) commitAll(ctx context.Context, l layout, vs []*version) (lost, won []*version, err error) {
	var mu sync.Mutex
	err = parallel(ctx, s.opts.Parallel, len(vs), func(i int) error {
		v := vs[i]
		err := s.commit(ctx, idItem(l, v), v.old)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case isConditionFailed(err):
			lost = append(lost, v)
			return nil
		case err != nil:
			return translate(err, "commit failed")
		}
		won = append(won, v)
		for i, r := range v.all {
			r.SetOutcome(v.outcome[i])
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return lost, won, nil
}

// idItem is the _id item that commits v: its lastUpdated, a new write
// token, its digest, and its Patients or spill pointer.
func idItem(l layout, v *version) map[string]types.AttributeValue {
	item := map[string]types.AttributeValue{
		attrPK: sv(l.idPK(v.r.Type, v.shard)), attrSK: sv(v.r.ID), attrLU: sv(v.lu), attrToken: sv(randomID()),
		attrDigest: b(v.digests[slices.Index(v.all, v.r)]),
	}
	if v.ref != "" {
		item[attrRef] = sv(v.ref)
	} else if len(v.r.Patients) > 0 {
		item[attrPatients] = strList(v.r.Patients)
	}
	return item
}

// removeReplaced removes what the versions replaced by won left, and
// counts (step 3 of a Put).
func (s *ResourceStore) removeReplaced(ctx context.Context, l layout, won []*version) error {
	dels, spills, counts := s.replacedItems(l, won)
	// A writer that raced this one may have deleted index items of this
	// version while removing its own predecessor's: write them again.
	for _, v := range won {
		if v.contended {
			for _, p := range slices.Compact(slices.Sorted(slices.Values(v.r.Patients))) {
				dels = append(dels, types.WriteRequest{PutRequest: &types.PutRequest{Item: compartmentItem(p, v)}})
			}
		}
	}
	if err := s.writeParallel(ctx, dels); err != nil {
		return err
	}
	for _, v := range won {
		if v.r.Type == "Group" && v.old.live {
			if err := s.dropMembers(ctx, l, v.r.ID, v.r.Members); err != nil {
				return err
			}
		}
	}
	s.deleteSpills(ctx, spills)
	return s.count(ctx, l, counts)
}

// replacedItems returns what the versions replaced by won left: the
// deletes of their items (tombstone, scan item, compartment items no
// longer in the new version), their spilled bodies, and the counters'
// deltas of the new resources.
func (s *ResourceStore) replacedItems(l layout, won []*version) (dels []types.WriteRequest, spills []string, counts map[counter]int64) {
	del := func(pk, sk string) {
		dels = append(dels, types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: key2(pk, sk)}})
	}
	counts = map[counter]int64{}
	for _, v := range won {
		r, old := v.r, v.old
		if old.del != "" {
			del(l.deletedPK(r.Type, v.shard), old.del)
		}
		if !old.live {
			counts[counter{r.Type, v.shard}]++
			continue
		}
		if old.lu != v.lu {
			del(s.scanPK(r.Type, v.shard), scanSK(old.lu, r.ID))
		}
		if old.ref != "" && old.ref != v.ref {
			spills = append(spills, old.ref)
		}
		if len(v.oldPts) > 0 {
			now := idSet(r.Patients)
			for _, p := range slices.Compact(slices.Sorted(slices.Values(v.oldPts))) {
				if !now[p] {
					del(compartmentPK(p), r.Type+"#"+r.ID)
				}
			}
		}
	}
	return dels, spills, counts
}

// commit writes a resource's _id item if it is still what was read.
func (s *ResourceStore) commit(ctx context.Context, item map[string]types.AttributeValue, old *current) error {
	in := &ddb.PutItemInput{TableName: aws.String(s.table), Item: item}
	if old.exists {
		in.ConditionExpression = aws.String("tok = :tok")
		in.ExpressionAttributeValues = map[string]types.AttributeValue{":tok": sv(old.token)}
	} else {
		in.ConditionExpression = aws.String("attribute_not_exists(pk)")
	}
	_, err := s.api.PutItem(ctx, in)
	return err
}
