package dynamodb

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tranchehq/tranche/internal/bulk"
)

var _ bulk.JobStore = (*JobStore)(nil)

// JobStore is the DynamoDB bulk.JobStore. It uses two tables:
//
//   - Jobs: one item per job, pk = job id. "doc" is the job as JSON
//     (without its counters), "st" the status that conditions test, "ver" a
//     version for optimistic concurrency, "plan"/"parts"/"total" the stored
//     plan's id, chunk count and item count. "activeOwner" is "c#" and the
//     job's client id while the job is not terminal, and absent once it is:
//     the keys-only index "active" on it (ActiveIndex) is sparse, holding
//     only the running jobs, so ActiveJobs queries one client's handful
//     instead of scanning every job kept for the retention period.
//     "slot" is set on a job that is not terminal and counted in its
//     owner's counter item, pk = "active#" and the client id, whose "n"
//     is the number of such jobs: CreateJob adds 1 in the same
//     TransactWriteItems that puts the job (CreateJobWithin only while n
//     is below the limit), and the write that makes the job terminal, or
//     deletes it before, subtracts it in the same transaction and
//     REMOVEs "slot". So the quota is one atomic reservation, exact and
//     strongly consistent, which ActiveIndex's count is not. Jobs created
//     before the counter existed carry no slot: they are not counted and
//     never subtract, so n never goes below the jobs that hold a slot, at
//     the cost of a client exceeding its quota by the jobs it had running
//     during the deploy that adds the counter.
//     A request over 64 KiB of JSON is kept apart, in chunk items of
//     this table written with the job item (requests.go).
//   - JobItems: pk = job id, and sk "plan#{planID}#{chunk}" (the plan,
//     gzipped JSON in chunks under the 400 KB item limit), "item#{index}"
//     (an item's checkpoint) and "done#{index/1000}" (a number set of the
//     done item indexes; ItemsDone is the size of the sets).
//
// Every rule of the contract is one conditional write: a transition is a
// versioned UpdateItem (which also sets or removes activeOwner, so the
// index never disagrees with the status it was written with; the one to a
// terminal status of a job with a slot is a transaction with its
// counter's update); a checkpoint is a transaction conditioned on the job
// not being terminal; the first plan is the one whose id
// is set on the job item with attribute_not_exists; adding an index to a done
// set is idempotent, so a retried checkpoint never counts twice and a crash
// between two writes leaves nothing that a retry does not repair.
type JobStore struct {
	api    API
	jobs   string
	items  string
	random func() string
}

// NewJobStore returns a store over the Jobs and JobItems tables.
func NewJobStore(api API, jobsTable, itemsTable string) *JobStore {
	return &JobStore{api: api, jobs: jobsTable, items: itemsTable, random: randomID}
}

const (
	attrDoc   = "doc"
	attrState = "st"
	attrVer   = "ver"
	attrPlan  = "plan"
	attrParts = "parts"
	attrTotal = "total"
	attrData  = "data"
	attrIdx   = "ix"
	// attrActive is the partition key of ActiveIndex.
	attrActive = "activeOwner"
	// attrSlot is the pk of the counter item a job is counted in;
	// attrSlots is the counter's number of such jobs.
	attrSlot  = "slot"
	attrSlots = "n"
	// counterPrefix starts the pk of the counter items, which no job id
	// may start with.
	counterPrefix = "active#"

	// planChunkBytes keeps each plan chunk well under the 400 KB item limit.
	planChunkBytes = 300 << 10
	// doneSetSize is how many item indexes share one done set, so no set
	// item grows past a few KB however many items a plan has.
	doneSetSize = 1000
	// maxTransitionAttempts bounds the optimistic retries of Transition
	// under contention.
	maxTransitionAttempts = 50
)

// ActiveIndex is the Jobs table's global secondary index of the jobs that
// are not terminal, by owner (attribute activeOwner, keys only).
const ActiveIndex = "active"

// activeOwner is the activeOwner value of clientID's running jobs. The
// prefix keeps it non-empty: an index key cannot be the empty string, and
// a job's client id may be.
func activeOwner(clientID string) types.AttributeValue { return sv("c#" + clientID) }

// notTerminal is the condition that the job exists and is not terminal.
const notTerminal = "attribute_exists(pk) AND NOT (st IN (:c, :f, :x))"

func terminalValues(extra map[string]types.AttributeValue) map[string]types.AttributeValue {
	if extra == nil {
		extra = map[string]types.AttributeValue{}
	}
	extra[":c"], extra[":f"], extra[":x"] = sv(string(bulk.StatusCompleted)), sv(string(bulk.StatusFailed)), sv(string(bulk.StatusCancelled))
	return extra
}

// CreateJob stores a new job. Returns ECONFLICT if the id exists.
func (s *JobStore) CreateJob(ctx context.Context, j *bulk.Job) (err error) {
	defer bulk.Wrap(&err, "dynamodb.JobStore.CreateJob(%q)", j.ID)
	return s.create(ctx, j, 0)
}

// CreateJobWithin is CreateJob whose counter update is conditioned on
// n < limit, in the same transaction as the job's put.
func (s *JobStore) CreateJobWithin(ctx context.Context, j *bulk.Job, limit int) (err error) {
	defer bulk.Wrap(&err, "dynamodb.JobStore.CreateJobWithin(%q, %d)", j.ID, limit)
	return s.create(ctx, j, limit)
}

// create puts a terminal job alone, and any other one with its counter's
// increment (see JobStore).
func (s *JobStore) create(ctx context.Context, j *bulk.Job, limit int) error {
	if j.ID == "" || reservedID(j.ID) {
		return bulk.Errorf(bulk.EINVALID, "A job id must be non-empty and not start with %q or %q.", counterPrefix, requestPrefix)
	}
	req, err := json.Marshal(j.Request)
	if err != nil {
		return err
	}
	doc, chunks, err := encodeJob(j, req)
	if err != nil {
		return err
	}
	ttl := ttlOf(j.ExpiresAt)
	item := map[string]types.AttributeValue{
		attrPK: sv(j.ID), attrDoc: sv(string(doc)), attrState: sv(string(j.Status)),
		attrVer: n(1), attrTotal: n(int64(j.ItemsTotal)), attrTTL: ttl,
	}
	var chunkPuts []types.TransactWriteItem // the request kept apart (requests.go)
	if len(chunks) > 0 {
		ref := requestRef{id: s.random(), parts: len(chunks)}
		item[attrReq], item[attrReqParts] = sv(ref.id), n(int64(ref.parts))
		chunkPuts = s.putRequest(j.ID, ref, chunks, ttl)
	}
	exists := fmt.Sprintf("Job %s already exists.", j.ID)
	put := types.TransactWriteItem{Put: &types.Put{TableName: aws.String(s.jobs), Item: item, ConditionExpression: aws.String("attribute_not_exists(pk)")}}
	if j.Status.Terminal() {
		if len(chunkPuts) == 0 {
			_, err = s.api.PutItem(ctx, &ddb.PutItemInput{TableName: put.Put.TableName, Item: item, ConditionExpression: put.Put.ConditionExpression})
			return translate(err, exists)
		}
		failed, err := s.transact(ctx, append([]types.TransactWriteItem{put}, chunkPuts...))
		if failed[0] {
			return bulk.Wrapf(err, bulk.ECONFLICT, "%s", exists)
		}
		return err
	}
	slot := counterPrefix + j.ClientID
	item[attrActive] = activeOwner(j.ClientID)
	item[attrSlot] = sv(slot)
	inc := s.count(slot, 1)
	if limit > 0 {
		inc.ConditionExpression = aws.String("attribute_not_exists(#n) OR #n < :limit")
		inc.ExpressionAttributeValues[":limit"] = n(int64(limit))
	}
	failed, err := s.transact(ctx, append([]types.TransactWriteItem{put, {Update: inc}}, chunkPuts...))
	switch {
	case failed[0]:
		return bulk.Wrapf(err, bulk.ECONFLICT, "%s", exists)
	case failed[1]:
		return bulk.Wrapf(err, bulk.ETOOMANYREQUESTS, "Client %s has %d unfinished jobs, its limit.", j.ClientID, limit)
	}
	return err
}

// count is the update that adds delta to the counter item slot. Only a
// reservation is conditioned: a release must never fail, or the job could
// not finish.
func (s *JobStore) count(slot string, delta int64) *types.Update {
	return &types.Update{
		TableName:                 aws.String(s.jobs),
		Key:                       key(slot),
		UpdateExpression:          aws.String("ADD #n :d"),
		ExpressionAttributeNames:  map[string]string{"#n": attrSlots},
		ExpressionAttributeValues: map[string]types.AttributeValue{":d": n(delta)},
	}
}

// transact runs a TransactWriteItems, again with backoff while DynamoDB
// cancels it for a conflict with another transaction on one of its items
// (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html#transaction-conflict-handling).
// failed, as long as items, says whose condition failed, if any did; err
// is then ECONFLICT.
func (s *JobStore) transact(ctx context.Context, items []types.TransactWriteItem) (failed []bool, err error) {
	failed = make([]bool, len(items))
	for attempt := 1; ; attempt++ {
		_, err := s.api.TransactWriteItems(ctx, &ddb.TransactWriteItemsInput{TransactItems: items})
		var tce *types.TransactionCanceledException
		if !errors.As(err, &tce) {
			return failed, translate(err, "transaction failed")
		}
		conflict, cond := false, false
		for i, r := range tce.CancellationReasons {
			switch aws.ToString(r.Code) {
			case "ConditionalCheckFailed":
				failed[i], cond = true, true
			case "TransactionConflict":
				conflict = true
			}
		}
		if cond {
			return failed, bulk.Wrapf(err, bulk.ECONFLICT, "A condition of the write failed.")
		}
		if !conflict || attempt >= maxTransitionAttempts {
			return failed, bulk.Wrapf(err, bulk.ETRANSIENT, "The database is busy; try again later.")
		}
		if err := backoff(ctx, min(attempt, 3)); err != nil {
			return failed, err
		}
	}
}

// GetJob returns a job. Returns ENOTFOUND if it does not exist.
func (s *JobStore) GetJob(ctx context.Context, id string) (_ *bulk.Job, err error) {
	defer bulk.Wrap(&err, "dynamodb.JobStore.GetJob(%q)", id)
	item, err := s.jobItem(ctx, id)
	if err != nil {
		return nil, err
	}
	j, _, err := s.readJob(ctx, id, item)
	if err != nil {
		return nil, err
	}
	if j.ItemsDone, err = s.itemsDone(ctx, id); err != nil {
		return nil, err
	}
	return j, nil
}

// jobItem reads the job's item (strongly consistent). Returns ENOTFOUND if
// there is none.
func (s *JobStore) jobItem(ctx context.Context, id string) (map[string]types.AttributeValue, error) {
	if id == "" || reservedID(id) {
		return nil, errJobNotFound(id)
	}
	out, err := s.api.GetItem(ctx, &ddb.GetItemInput{TableName: aws.String(s.jobs), Key: key(id), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, translate(err, "get job failed")
	}
	if len(out.Item) == 0 {
		return nil, errJobNotFound(id)
	}
	return out.Item, nil
}

func decodeJob(item map[string]types.AttributeValue) (*bulk.Job, error) {
	var j bulk.Job
	if err := json.Unmarshal([]byte(getS(item, attrDoc)), &j); err != nil {
		return nil, bulk.Wrapf(err, bulk.EINTERNAL, "Stored job is unreadable.")
	}
	j.ID = getS(item, attrPK)
	j.Status = bulk.Status(getS(item, attrState))
	j.ItemsTotal = int(getN(item, attrTotal))
	j.ItemsDone = 0
	return &j, nil
}

// itemsDone counts the indexes in the job's done sets.
func (s *JobStore) itemsDone(ctx context.Context, id string) (int, error) {
	done := 0
	err := queryAll(ctx, s.api, &ddb.QueryInput{
		TableName:                 aws.String(s.items),
		KeyConditionExpression:    aws.String("pk = :pk AND begins_with(sk, :p)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": sv(id), ":p": sv("done#")},
		ProjectionExpression:      aws.String(attrIdx),
		ConsistentRead:            aws.Bool(true),
	}, func(item map[string]types.AttributeValue) error {
		if v, ok := item[attrIdx].(*types.AttributeValueMemberNS); ok {
			done += len(v.Value)
		}
		return nil
	})
	return done, err
}

// Transition moves a job from one of from to to with a versioned conditional
// update, retrying when another writer changed the job in between. A
// terminal job never changes; mutate cannot change the id, the status or
// the counters. The same update sets activeOwner (to a status that is not
// terminal) or removes it (to a terminal one), so a job leaves the active
// index with the write that finishes it; setting it on every other
// transition also indexes a job created before the index existed. A
// terminal transition of a job with a slot is a transaction with its
// counter's release, as is one that writes request chunks (requestWrite).
func (s *JobStore) Transition(ctx context.Context, id string, from []bulk.Status, to bulk.Status, mutate func(*bulk.Job)) (_ *bulk.Job, err error) {
	defer bulk.Wrap(&err, "dynamodb.JobStore.Transition(%q, %v → %s)", id, from, to)
	for attempt := 1; ; attempt++ {
		item, err := s.jobItem(ctx, id)
		if err != nil {
			return nil, err
		}
		j, item, err := s.readJob(ctx, id, item)
		if err != nil {
			return nil, err
		}
		if j.Status.Terminal() || !slices.Contains(from, j.Status) {
			return nil, bulk.Errorf(bulk.ECONFLICT, "Job %s is %s, not %v.", id, j.Status, from)
		}
		if j.ItemsDone, err = s.itemsDone(ctx, id); err != nil {
			return nil, err
		}
		old, err := json.Marshal(j.Request)
		if err != nil {
			return nil, err
		}
		total, done := j.ItemsTotal, j.ItemsDone
		if mutate != nil {
			mutate(j)
		}
		j.ID, j.Status, j.ItemsTotal, j.ItemsDone = id, to, total, done
		in, actions, err := s.transition(id, j, old, item)
		if err != nil {
			return nil, err
		}
		if len(actions) > 0 {
			_, err = s.transact(ctx, append([]types.TransactWriteItem{{Update: &types.Update{
				TableName: in.TableName, Key: in.Key, UpdateExpression: in.UpdateExpression, ConditionExpression: in.ConditionExpression,
				ExpressionAttributeNames: in.ExpressionAttributeNames, ExpressionAttributeValues: in.ExpressionAttributeValues,
			}}}, actions...))
		} else {
			_, err = s.api.UpdateItem(ctx, in)
		}
		if (isConditionFailed(err) || bulk.ErrorCode(err) == bulk.ECONFLICT || isTxConflict(err)) && attempt < maxTransitionAttempts {
			if err := backoff(ctx, min(attempt, 3)); err != nil {
				return nil, err
			}
			continue // changed meanwhile: look again
		}
		if err != nil {
			return nil, translate(err, fmt.Sprintf("Job %s changed concurrently.", id))
		}
		return j, nil
	}
}

// transition returns the versioned update that stores j over item (whose
// request's JSON was old), and the other actions of its transaction, if it
// needs one: the counter's release, request chunks.
func (s *JobStore) transition(id string, j *bulk.Job, old []byte, item map[string]types.AttributeValue) (*ddb.UpdateItemInput, []types.TransactWriteItem, error) {
	req, err := json.Marshal(j.Request)
	if err != nil {
		return nil, nil, err
	}
	ver, ttl := getN(item, attrVer), ttlOf(j.ExpiresAt)
	u := &jobUpdate{
		set:    []string{"doc = :doc", "st = :to", "ver = :next", "#ttl = :ttl"},
		names:  map[string]string{"#ttl": attrTTL, "#active": attrActive},
		values: map[string]types.AttributeValue{":to": sv(string(j.Status)), ":ver": n(ver), ":next": n(ver + 1), ":ttl": ttl},
	}
	doc, actions, err := s.requestWrite(id, j, req, old, item, ttl, u)
	if err != nil {
		return nil, nil, err
	}
	u.values[":doc"] = sv(string(doc))
	if slot := getS(item, attrSlot); j.Status.Terminal() {
		u.remove = append(u.remove, "#active")
		if slot != "" {
			// The job leaves its owner's count with the same write.
			u.remove = append(u.remove, "#slot")
			u.names["#slot"] = attrSlot
			actions = append(actions, types.TransactWriteItem{Update: s.count(slot, -1)})
		}
	} else {
		u.set = append(u.set, "#active = :owner")
		u.values[":owner"] = activeOwner(j.ClientID)
	}
	return &ddb.UpdateItemInput{
		TableName:                 aws.String(s.jobs),
		Key:                       key(id),
		UpdateExpression:          aws.String(u.expression()),
		ConditionExpression:       aws.String("ver = :ver"),
		ExpressionAttributeNames:  u.names,
		ExpressionAttributeValues: u.values,
	}, actions, nil
}

// SavePlan stores p, unless the job has a plan, and returns the stored plan.
// The chunks are written under a fresh plan id first; setting that id on
// the job item (only if it has none and is not terminal) is what makes the
// plan the job's. A loser deletes its chunks and returns the winner's plan.
func (s *JobStore) SavePlan(ctx context.Context, id string, p *bulk.Plan) (_ *bulk.Plan, err error) {
	defer bulk.Wrap(&err, "dynamodb.JobStore.SavePlan(%q)", id)
	item, err := s.jobItem(ctx, id)
	if err != nil {
		return nil, err
	}
	if st := bulk.Status(getS(item, attrState)); st.Terminal() {
		return nil, bulk.Errorf(bulk.ECONFLICT, "Job %s is %s.", id, st)
	}
	if getS(item, attrPlan) != "" {
		return s.loadPlan(ctx, id, item)
	}
	raw, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(raw)
	if err := zw.Close(); err != nil {
		return nil, err
	}
	planID := s.random()
	ttl := ttlOf(jobExpiry(item))
	var reqs []types.WriteRequest
	for i, chunk := 0, buf.Bytes(); len(chunk) > 0 || i == 0; i++ {
		part := chunk[:min(planChunkBytes, len(chunk))]
		chunk = chunk[len(part):]
		reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: map[string]types.AttributeValue{
			attrPK: sv(id), attrSK: sv(planChunkKey(planID, i)), attrData: b(part), attrTTL: ttl,
		}}})
	}
	if err := batchWrite(ctx, s.api, s.items, reqs); err != nil {
		return nil, err
	}
	_, err = s.api.UpdateItem(ctx, &ddb.UpdateItemInput{
		TableName:                 aws.String(s.jobs),
		Key:                       key(id),
		UpdateExpression:          aws.String("SET #plan = :plan, parts = :parts, #total = :total"),
		ConditionExpression:       aws.String(notTerminal + " AND attribute_not_exists(#plan)"),
		ExpressionAttributeNames:  map[string]string{"#plan": attrPlan, "#total": attrTotal},
		ExpressionAttributeValues: terminalValues(map[string]types.AttributeValue{":plan": sv(planID), ":parts": n(int64(len(reqs))), ":total": n(int64(len(p.Items)))}),
	})
	if err == nil {
		var stored bulk.Plan
		if err := json.Unmarshal(raw, &stored); err != nil {
			return nil, err
		}
		return &stored, nil
	}
	if !isConditionFailed(err) {
		return nil, translate(err, "save plan failed")
	}
	// Lost to another planner, to a cancel or to a delete.
	s.deleteKeys(ctx, id, reqs)
	if item, err = s.jobItem(ctx, id); err != nil {
		return nil, err
	}
	if st := bulk.Status(getS(item, attrState)); st.Terminal() {
		return nil, bulk.Errorf(bulk.ECONFLICT, "Job %s is %s.", id, st)
	}
	return s.loadPlan(ctx, id, item)
}

// deleteKeys deletes the items that reqs put, best effort: they are
// unreferenced, and TTL removes them if this fails.
func (s *JobStore) deleteKeys(ctx context.Context, id string, reqs []types.WriteRequest) {
	dels := make([]types.WriteRequest, len(reqs))
	for i, r := range reqs {
		dels[i] = types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: key2(id, getS(r.PutRequest.Item, attrSK))}}
	}
	_ = batchWrite(ctx, s.api, s.items, dels)
}

func planChunkKey(planID string, i int) string { return fmt.Sprintf("plan#%s#%05d", planID, i) }

// GetPlan returns the stored plan. Returns ENOTFOUND if there is none.
func (s *JobStore) GetPlan(ctx context.Context, id string) (_ *bulk.Plan, err error) {
	defer bulk.Wrap(&err, "dynamodb.JobStore.GetPlan(%q)", id)
	item, err := s.jobItem(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.loadPlan(ctx, id, item)
}

func (s *JobStore) loadPlan(ctx context.Context, id string, item map[string]types.AttributeValue) (*bulk.Plan, error) {
	planID := getS(item, attrPlan)
	if planID == "" {
		return nil, bulk.Errorf(bulk.ENOTFOUND, "Job %s has no plan.", id)
	}
	var buf bytes.Buffer
	chunks := 0
	err := queryAll(ctx, s.api, &ddb.QueryInput{
		TableName:                 aws.String(s.items),
		KeyConditionExpression:    aws.String("pk = :pk AND begins_with(sk, :p)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": sv(id), ":p": sv("plan#" + planID + "#")},
		ConsistentRead:            aws.Bool(true),
	}, func(item map[string]types.AttributeValue) error {
		chunks++
		buf.Write(getB(item, attrData))
		return nil
	})
	if err != nil {
		return nil, err
	}
	if int64(chunks) != getN(item, attrParts) {
		return nil, bulk.Errorf(bulk.EINTERNAL, "Job %s's plan has %d of %d chunks.", id, chunks, getN(item, attrParts))
	}
	zr, err := gzip.NewReader(&buf)
	if err != nil {
		return nil, bulk.Wrapf(err, bulk.EINTERNAL, "Stored plan is unreadable.")
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, bulk.Wrapf(err, bulk.EINTERNAL, "Stored plan is unreadable.")
	}
	var p bulk.Plan
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, bulk.Wrapf(err, bulk.EINTERNAL, "Stored plan is unreadable.")
	}
	return &p, nil
}

// SaveProgress records an item's checkpoint and adds its index to (or, for
// a checkpoint that is not done, removes it from) the job's done set, in
// one transaction with a ConditionCheck that the job exists and is not
// terminal: a cancel that lands between reading the job and writing leaves
// no checkpoint. Returns ECONFLICT if the job is terminal.
func (s *JobStore) SaveProgress(ctx context.Context, id string, p *bulk.ItemProgress) (err error) {
	defer bulk.Wrap(&err, "dynamodb.JobStore.SaveProgress(%q, %d)", id, p.Index)
	if p.Index < 0 {
		return bulk.Errorf(bulk.EINVALID, "Item index %d is negative.", p.Index)
	}
	item, err := s.jobItem(ctx, id)
	if err != nil {
		return err
	}
	if st := bulk.Status(getS(item, attrState)); st.Terminal() {
		return bulk.Errorf(bulk.ECONFLICT, "Job %s is %s.", id, st)
	}
	doc, err := json.Marshal(p)
	if err != nil {
		return err
	}
	ttl := ttlOf(jobExpiry(item))
	op := "DELETE"
	if p.Done {
		op = "ADD"
	}
	failed, err := s.transact(ctx, []types.TransactWriteItem{
		{ConditionCheck: &types.ConditionCheck{
			TableName:                 aws.String(s.jobs),
			Key:                       key(id),
			ConditionExpression:       aws.String(notTerminal),
			ExpressionAttributeValues: terminalValues(nil),
		}},
		{Put: &types.Put{
			TableName: aws.String(s.items),
			Item:      map[string]types.AttributeValue{attrPK: sv(id), attrSK: sv(progressKey(p.Index)), attrDoc: sv(string(doc)), attrTTL: ttl},
		}},
		{Update: &types.Update{
			TableName:                 aws.String(s.items),
			Key:                       key2(id, fmt.Sprintf("done#%06d", p.Index/doneSetSize)),
			UpdateExpression:          aws.String(op + " ix :i SET #ttl = :ttl"),
			ExpressionAttributeNames:  map[string]string{"#ttl": attrTTL},
			ExpressionAttributeValues: map[string]types.AttributeValue{":i": &types.AttributeValueMemberNS{Value: []string{strconv.Itoa(p.Index)}}, ":ttl": ttl},
		}},
	})
	if failed[0] { // finished or deleted meanwhile
		if item, err = s.jobItem(ctx, id); err != nil {
			return err
		}
		return bulk.Errorf(bulk.ECONFLICT, "Job %s is %s.", id, getS(item, attrState))
	}
	return err
}

// progressKey sorts checkpoints by index: ten digits hold any int32.
func progressKey(index int) string { return fmt.Sprintf("item#%010d", index) }

// jobExpiry is the stored job's ExpiresAt (zero if unreadable).
func jobExpiry(item map[string]types.AttributeValue) time.Time {
	var j struct {
		ExpiresAt time.Time `json:"expiresAt"`
	}
	_ = json.Unmarshal([]byte(getS(item, attrDoc)), &j)
	return j.ExpiresAt
}

// Progress returns the job's checkpoints by index; none for an unknown job.
func (s *JobStore) ItemProgress(ctx context.Context, id string, index int) (_ *bulk.ItemProgress, err error) {
	defer bulk.Wrap(&err, "dynamodb.JobStore.ItemProgress(%q, %d)", id, index)
	out, err := s.api.GetItem(ctx, &ddb.GetItemInput{TableName: aws.String(s.items), Key: key2(id, progressKey(index)), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, translate(err, "get checkpoint failed")
	}
	if len(out.Item) == 0 {
		return nil, bulk.Errorf(bulk.ENOTFOUND, "No checkpoint of item %d of job %s.", index, id)
	}
	var p bulk.ItemProgress
	if err := json.Unmarshal([]byte(getS(out.Item, attrDoc)), &p); err != nil {
		return nil, bulk.Wrapf(err, bulk.EINTERNAL, "Stored checkpoint is unreadable.")
	}
	return &p, nil
}

// Progress returns a job's checkpoints by index.
func (s *JobStore) Progress(ctx context.Context, id string) (_ []*bulk.ItemProgress, err error) {
	defer bulk.Wrap(&err, "dynamodb.JobStore.Progress(%q)", id)
	ps := []*bulk.ItemProgress{}
	err = queryAll(ctx, s.api, &ddb.QueryInput{
		TableName:                 aws.String(s.items),
		KeyConditionExpression:    aws.String("pk = :pk AND begins_with(sk, :p)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": sv(id), ":p": sv("item#")},
		ConsistentRead:            aws.Bool(true),
	}, func(item map[string]types.AttributeValue) error {
		var p bulk.ItemProgress
		if err := json.Unmarshal([]byte(getS(item, attrDoc)), &p); err != nil {
			return bulk.Wrapf(err, bulk.EINTERNAL, "Stored checkpoint is unreadable.")
		}
		ps = append(ps, &p)
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Keys sort by index already; sorting again costs nothing and does not
	// depend on it.
	slices.SortFunc(ps, func(a, b *bulk.ItemProgress) int { return cmp.Compare(a.Index, b.Index) })
	return ps, nil
}

// ListJobs visits every job in id order. It scans the Jobs table, which
// holds one small item per job until purged (and the chunks of large
// requests, requests.go), and sorts in memory; fn runs after the scan, so
// it may call the store. A request kept apart is read for its job before
// fn; a job deleted since the scan is left out. ItemsDone is left zero (it
// would cost a query per job; GetJob has it).
func (s *JobStore) ListJobs(ctx context.Context, fn func(*bulk.Job) error) (err error) {
	defer bulk.Wrap(&err, "dynamodb.JobStore.ListJobs")
	// The counter and request chunk items decode as nil and are skipped.
	decode := func(item map[string]types.AttributeValue) (map[string]types.AttributeValue, error) {
		if reservedID(getS(item, attrPK)) {
			return nil, nil
		}
		return item, nil
	}
	return scanSorted(ctx, s.api, s.jobs, decode, func(item map[string]types.AttributeValue) string { return getS(item, attrPK) },
		func(item map[string]types.AttributeValue) error {
			if item == nil {
				return nil
			}
			j, _, err := s.readJob(ctx, getS(item, attrPK), item)
			if bulk.ErrorCode(err) == bulk.ENOTFOUND {
				return nil
			} else if err != nil {
				return err
			}
			return fn(j)
		})
}

// ActiveJobs counts clientID's jobs that are not terminal with a COUNT
// query of ActiveIndex, which holds only running jobs: it reads the client's
// few index entries (keys only), never the job documents, however many jobs
// the table keeps.
//
// A global secondary index is eventually consistent: a job created or
// finished a moment ago may be missing from, or still in, the count
// (typically for well under a second). The quota does not read it: it is
// CreateJobWithin's counter, updated in the same transactions as the jobs.
func (s *JobStore) ActiveJobs(ctx context.Context, clientID string) (_ int, err error) {
	defer bulk.Wrap(&err, "dynamodb.JobStore.ActiveJobs(%q)", clientID)
	in := &ddb.QueryInput{
		TableName:                 aws.String(s.jobs),
		IndexName:                 aws.String(ActiveIndex),
		KeyConditionExpression:    aws.String("#active = :owner"),
		ExpressionAttributeNames:  map[string]string{"#active": attrActive},
		ExpressionAttributeValues: map[string]types.AttributeValue{":owner": activeOwner(clientID)},
		Select:                    types.SelectCount,
	}
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return 0, bulk.Wrapf(err, bulk.ETRANSIENT, "Request cancelled.")
		}
		out, err := s.api.Query(ctx, in)
		if err != nil {
			return 0, translate(err, "count active jobs failed")
		}
		total += int(out.Count)
		if len(out.LastEvaluatedKey) == 0 {
			return total, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// DeleteJob removes the job item, then its plan, checkpoints and done sets.
// Deleting the item removes it from ActiveIndex too; a job that still holds
// a slot (one deleted before it finished) is deleted in a transaction that
// releases it.
func (s *JobStore) DeleteJob(ctx context.Context, id string) (err error) {
	defer bulk.Wrap(&err, "dynamodb.JobStore.DeleteJob(%q)", id)
	if id == "" || reservedID(id) {
		return nil
	}
	ref, err := s.deleteJobItem(ctx, id)
	if err != nil {
		return err
	}
	if err := s.dropRequest(ctx, id, ref); err != nil {
		return err
	}
	var dels []types.WriteRequest
	err = queryAll(ctx, s.api, &ddb.QueryInput{
		TableName:                 aws.String(s.items),
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": sv(id)},
		ProjectionExpression:      aws.String("pk, sk"),
		ConsistentRead:            aws.Bool(true),
	}, func(item map[string]types.AttributeValue) error {
		dels = append(dels, types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: key2(id, getS(item, attrSK))}})
		return nil
	})
	if err != nil {
		return err
	}
	return batchWrite(ctx, s.api, s.items, dels)
}

// deleteJobItem deletes the job item: at once if it holds no slot (the
// common case: a finished job), else with its counter's release,
// conditioned on the version read so that a transition in between is not
// lost. It returns where the deleted item kept its request.
func (s *JobStore) deleteJobItem(ctx context.Context, id string) (requestRef, error) {
	for attempt := 1; ; attempt++ {
		out, err := s.api.DeleteItem(ctx, &ddb.DeleteItemInput{
			TableName:                aws.String(s.jobs),
			Key:                      key(id),
			ConditionExpression:      aws.String("attribute_not_exists(#slot)"),
			ExpressionAttributeNames: map[string]string{"#slot": attrSlot},
			ReturnValues:             types.ReturnValueAllOld,
		})
		if err == nil {
			return requestRefOf(out.Attributes), nil
		}
		if !isConditionFailed(err) && !isTxConflict(err) {
			return requestRef{}, translate(err, "delete job failed")
		}
		item, err := s.jobItem(ctx, id)
		if bulk.ErrorCode(err) == bulk.ENOTFOUND {
			return requestRef{}, nil
		} else if err != nil {
			return requestRef{}, err
		}
		if slot := getS(item, attrSlot); slot != "" {
			failed, err := s.transact(ctx, []types.TransactWriteItem{
				{Delete: &types.Delete{
					TableName: aws.String(s.jobs), Key: key(id), ConditionExpression: aws.String("ver = :ver"),
					ExpressionAttributeValues: map[string]types.AttributeValue{":ver": n(getN(item, attrVer))},
				}},
				{Update: s.count(slot, -1)},
			})
			if err == nil {
				return requestRefOf(item), nil
			}
			if !failed[0] || attempt >= maxTransitionAttempts {
				return requestRef{}, err
			}
		}
		if err := backoff(ctx, min(attempt, 3)); err != nil {
			return requestRef{}, err
		}
	}
}

func errJobNotFound(id string) error {
	return bulk.Errorf(bulk.ENOTFOUND, "Job %s not found.", id)
}

// randomID returns 64 random bits in hex.
func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
